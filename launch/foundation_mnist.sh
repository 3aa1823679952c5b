#!/usr/bin/env bash
# Reproduces results/README.md's DenseVAE comparison: standard vs RealNVP prior (K=20) on dynamically
# binarized MNIST, 50 epochs with the paper's schedule scaled to 50 epochs, test NLL with 1,000
# importance samples on one binarization of the 10,000 test images.
#   VAE_JAX_DATA_DIR=../shared/data bash launch/foundation_mnist.sh [runs]
set -euo pipefail
out="${1:-runs}"
for prior in standard realnvp; do
  python -m vae_jax.main --config="configs/mnist_${prior}.py" --workdir="${out}/mnist_${prior}_50ep" \
    --config.train.num_epochs=50 --config.data.test_binarizations=1
done
python launch/collect.py "${out}/mnist_standard_50ep" "${out}/mnist_realnvp_50ep"
