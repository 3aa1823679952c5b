#!/usr/bin/env bash
# Reproduces results/README.md's DenseVAE comparison: standard vs RealNVP prior (K=20) on dynamically
# binarized MNIST, 50 epochs with the paper's schedule scaled to 50 epochs. Test NLL with 1,000
# importance samples: during training on one binarization of the 10,000 test images, then with the
# paper's protocol (B.1) of 10 binarizations on the same checkpoints.
#   VAE_JAX_DATA_DIR=../shared/data bash launch/foundation_mnist.sh [runs]
set -euo pipefail
out="${1:-runs}"
for prior in standard realnvp; do
  workdir="${out}/mnist_${prior}_50ep"
  python -m vae_jax.main --config="configs/mnist_${prior}.py" --workdir="${workdir}" \
    --config.train.num_epochs=50 --config.data.test_binarizations=1
  python -m vae_jax.evaluate --workdir="${workdir}" --test_binarizations=10 \
    --output=eval_test_10binarizations.json
done
for eval_file in eval_test.json eval_test_10binarizations.json; do
  python launch/collect.py "${out}/mnist_standard_50ep" "${out}/mnist_realnvp_50ep" --eval_file="${eval_file}"
done
