#!/usr/bin/env bash
# Issue #18 part 4: Table 3's DenseVAE column (Xu et al. 2020) at 200 epochs on a 2-core CPU.
# Standard prior, RealNVP posterior and RealNVP prior (K = 20) on static and dynamic MNIST, each
# at the paper's settings (B.2-B.3: batch 128, Adam 1e-3 / 1e-4 / 1e-5 over thirds of the run,
# KL warm-up) but 200 epochs instead of 2,400; test NLL by importance sampling with 1,000 samples,
# dynamic MNIST over 10 binarizations of the test set (configs/xu2020.py). Active units use 100
# posterior samples per image (the default 1,000 costs more than the rest of a static evaluation).
# Two queues of three runs, each pinned to one core; a finished run (eval_test.json) is skipped
# and an interrupted one resumes from its last checkpoint, so rerunning the same command goes on:
#   VAE_JAX_DATA_DIR=../shared/data bash launch/table3_dense.sh [runs/table3_200ep]
# then: python launch/xu2020.py collect --runs_dir=runs/table3_200ep --output=results/xu2020.md
set -euo pipefail
out="${1:-runs/table3_200ep}"
EPOCHS=200
queue() {  # queue CORE CELL...
  local core="$1"
  shift
  local pin=()
  if command -v taskset > /dev/null && [[ "$(nproc)" -ge 2 ]]; then pin=(taskset -c "${core}"); fi
  for cell in "$@"; do
    local workdir="${out}/$(python launch/xu2020.py slug "${cell}")-${EPOCHS}ep"
    if [[ -f "${workdir}/eval_test.json" ]]; then
      echo "finished, skipped: ${workdir}"
      continue
    fi
    local command=(python -m vae_jax.main "--config=configs/xu2020.py:${cell}"
                   "--workdir=${workdir}" "--config.train.num_epochs=${EPOCHS}"
                   --config.eval.active_unit_samples=100)
    mkdir -p "${workdir}"
    local commit
    commit="$(git rev-parse --short HEAD 2> /dev/null || true)"
    echo "${command[*]}${commit:+ (code of commit ${commit})}" > "${workdir}/command.txt"
    echo "running: ${command[*]}"
    "${pin[@]}" "${command[@]}" >> "${workdir}/log.txt" 2>&1
  done
}
queue 0 dense,standard,static_mnist dense,rnvp_posterior,K=20,static_mnist \
  dense,rnvp_posterior,K=20,mnist &
queue 1 dense,rnvp_prior,K=20,static_mnist dense,standard,mnist dense,rnvp_prior,K=20,mnist &
wait
