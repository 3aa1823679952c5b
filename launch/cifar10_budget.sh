#!/usr/bin/env bash
# Issue #17: the CPU-budget CIFAR-10 protocol. The B.5 ResnetVAE at a quarter of its channels
# (width=0.25), standard prior and RealNVP prior K=50, 9 epochs of the 50,000 training images at
# B.3's batch 128 and Adam lr 1e-3, with lr 1e-4 for the last quarter (B.3's thirds at 1e-3/1e-4/
# 1e-5 suit 2,400 epochs; at 9 the 1e-5 third would be wasted). The two runs go side by side,
# each pinned to one core of a 2-core machine (one-core speeds on JAX 0.12: 95 and 70
# images/s, so about 1.5 and 2 hours; results/README.md, issue #17). Test bits/dim: importance
# sampling with 100 samples on the test images in $VAE_JAX_DATA_DIR/cifar10.
# Rerunning the same command resumes both runs from their last checkpoints (every 200 steps).
#   VAE_JAX_DATA_DIR=../shared/data bash launch/cifar10_budget.sh [runs/cifar10_budget]
set -euo pipefail
out="${1:-runs/cifar10_budget}"
BUDGET=(--config.train.learning_rates="(1e-3,1e-4)" --config.train.lr_boundaries="(0.75,)"
  --config.train.checkpoint_every_steps=200 --config.train.log_every_steps=50
  --config.eval.num_samples=100 --config.eval.sample_chunk=10 --config.eval.num_images=64)
run() {  # run CORE CELL
  local core="$1" cell="$2"
  local workdir="${out}/$(python -c "from vae_jax import xu2020; print(xu2020.cell_slug('${cell}'))")"
  local command=(python -m vae_jax.main "--config=configs/xu2020.py:${cell}"
                 "--workdir=${workdir}" "${BUDGET[@]}")
  mkdir -p "${workdir}"
  echo "${command[*]}" > "${workdir}/command.txt"
  local pin=()
  if command -v taskset > /dev/null && [[ "$(nproc)" -ge 2 ]]; then pin=(taskset -c "${core}"); fi
  "${pin[@]}" "${command[@]}" >> "${workdir}/train.log" 2>&1
}
run 0 resnet,standard,cifar10,width=0.25,epochs=9 &
run 1 resnet,rnvp_prior,K=50,cifar10,width=0.25,epochs=9 &
wait
