#!/usr/bin/env bash
# The Xu et al. (2020) runs that results/README.md reports for issue #3, at budgets a 2-core CPU
# affords. Each line is an ordinary cell command (configs/xu2020.py:<cell>) with overrides:
#   - Table 3, DenseVAE column, on StaticMNIST and MNIST: standard, RNVP q(z|x), RNVP p(z), K=20,
#     50 epochs (the MNIST standard and RNVP p(z) runs are launch/foundation_mnist.sh's);
#     test NLL with 1,000 importance samples on one binarization of the MNIST test set;
#   - a Table B.4-style check of the flow components with the DenseVAE: RealNVP prior K=12 with
#     and without InvertibleDense + ActNorm, B.4's constant lr 5e-4, no early stopping, 50 epochs;
#   - ResnetVAE training speed on this machine (0.05 epoch);
#   - CIFAR-10 (B.5), standard vs RealNVP prior K=50, 0.05 epoch at batch 32, 5 importance samples.
# Flow posteriors estimate E_q[z|x] for active units with 100 samples (B.3: 1,000).
#   VAE_JAX_DATA_DIR=../shared/data bash launch/xu2020_cpu_checks.sh [runs/xu2020]
set -euo pipefail
out="${1:-runs/xu2020}"
run() {  # run CELL WORKDIR_SUFFIX [overrides...]
  local cell="$1" suffix="$2"
  shift 2
  local workdir="${out}/$(python launch/xu2020.py slug "${cell}")-${suffix}"
  mkdir -p "${workdir}"
  local command="python -m vae_jax.main --config=configs/xu2020.py:${cell} --workdir=${workdir} $*"
  echo "${command}" > "${workdir}/command.txt"
  ${command}
}
DENSE="--config.train.num_epochs=50 --config.eval.active_unit_samples=100"
run dense,rnvp_posterior,K=20,mnist 50ep ${DENSE} --config.data.test_binarizations=1
for cell in dense,standard,static_mnist dense,rnvp_prior,K=20,static_mnist \
    dense,rnvp_posterior,K=20,static_mnist dense,rnvp_prior,K=12,pure,epochs=300,lr=0.0005,static_mnist \
    dense,rnvp_prior,K=12,epochs=300,lr=0.0005,static_mnist; do
  run "${cell}" 50ep ${DENSE}
done
run resnet,rnvp_prior,K=20,mnist 0.05ep --config.train.num_epochs=0.05 \
  --config.data.test_binarizations=1 --config.eval.num_samples=10 --config.eval.sample_chunk=10 \
  --config.eval.active_unit_images=1000 --config.train.log_every_steps=5
# CIFAR-10 at a constant lr of 1e-4: these runs predate issue #17's fix of the residual blocks;
# with the old blocks, B.3's 1e-3 made the first Adam step explode (results/README.md, issue #17).
# The CPU-budget CIFAR-10 runs are launch/cifar10_budget.sh's.
CIFAR="--config.train.num_epochs=0.05 --config.train.batch_size=32 --config.train.learning_rates=(1e-4,)
  --config.train.lr_boundaries=() --config.train.log_every_steps=10
  --config.eval.num_samples=5 --config.eval.sample_chunk=5 --config.eval.batch_size=100
  --config.eval.active_unit_images=1000 --config.eval.num_images=16"
run resnet,standard,cifar10 0.05ep ${CIFAR}
run resnet,rnvp_prior,K=50,cifar10 0.05ep ${CIFAR}
python launch/xu2020.py collect --runs_dir="${out}" --output="${out}/xu2020.md"
