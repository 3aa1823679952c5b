#!/usr/bin/env bash
# Issue #17: the CPU-budget CIFAR-10 protocol. The B.5 ResnetVAE at a quarter of its channels
# (width=0.25), standard prior and RealNVP prior K=50, EPOCHS epochs of the 50,000 training images
# at batch 32 and B.3's Adam lr 1e-3, with 1e-4 for the last quarter (B.3's thirds at
# 1e-3/1e-4/1e-5 suit 2,400 epochs; at this length the 1e-5 third would be wasted). B.3's batch
# 128 is for 2,400 epochs; in a few epochs the model is short of updates, not of images per
# update: at the same images/s batch 32 takes 4x the steps; after 32,000 images it was at 6.01
# training bits/dim against batch 128's 6.85 (both at lr 2e-3; results/README.md, issue #17).
# (lr 2e-3 also learns faster than 1e-3 with the standard prior, but made the RealNVP prior's
# loss non-finite at step 308.)
# The two runs go side by side, each pinned to one core of a 2-core machine. Test bits/dim:
# importance sampling with 100 samples on the test images in $VAE_JAX_DATA_DIR/cifar10.
# Rerunning the same command resumes both runs from their last checkpoints.
#   VAE_JAX_DATA_DIR=../shared/data bash launch/cifar10_budget.sh [runs/cifar10_budget]
# `full_width` instead trains the full B.5 model with the RealNVP prior K=50 with the same flags,
# configured for 1 epoch; for results/README.md it was stopped after its checkpoint at step 1,000
# (73 min on one core, the width=0.25 run's training time) and evaluated there
# (python -m vae_jax.evaluate --workdir=<its workdir> --num_samples=10), so a reader sees what
# the width reduction buys at equal time. Its test bound uses 10 importance samples (100 would
# take about 20 minutes at full width: 10 took 124 s on 2 cores, eval_test.json's "seconds"):
#   VAE_JAX_DATA_DIR=../shared/data bash launch/cifar10_budget.sh runs/cifar10_budget full_width
set -euo pipefail
out="${1:-runs/cifar10_budget}"
EPOCHS=4
BUDGET=(--config.train.batch_size=32
  --config.train.learning_rates="(1e-3,1e-4)" --config.train.lr_boundaries="(0.75,)"
  --config.train.checkpoint_every_steps=500 --config.train.log_every_steps=100
  --config.eval.sample_chunk=10 --config.eval.num_images=64)
run() {  # run CORE CELL IMPORTANCE_SAMPLES
  local core="$1" cell="$2" num_samples="$3"
  local workdir="${out}/$(python launch/xu2020.py slug "${cell}")"
  local command=(python -m vae_jax.main "--config=configs/xu2020.py:${cell}"
                 "--workdir=${workdir}" "${BUDGET[@]}" "--config.eval.num_samples=${num_samples}")
  mkdir -p "${workdir}"
  echo "${command[*]}" > "${workdir}/command.txt"
  local pin=()
  if command -v taskset > /dev/null && [[ "$(nproc)" -ge 2 ]]; then pin=(taskset -c "${core}"); fi
  "${pin[@]}" "${command[@]}" >> "${workdir}/train.log" 2>&1
}
if [[ "${2:-}" == full_width ]]; then
  run 0 resnet,rnvp_prior,K=50,cifar10,epochs=1 10
  exit
fi
run 0 resnet,standard,cifar10,width=0.25,epochs=${EPOCHS} 100 &
run 1 resnet,rnvp_prior,K=50,cifar10,width=0.25,epochs=${EPOCHS} 100 &
wait
