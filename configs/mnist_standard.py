"""DenseVAE with the standard normal prior on dynamically binarized MNIST: the baseline of
configs/mnist_realnvp.py, identical but for the prior (Xu et al. 2020, Section 5.1). The same model
as --config=configs/xu2020.py:dense,standard,mnist."""
from vae_jax import config_files


def get_config():
  return config_files.load("configs/xu2020.py:dense,standard,mnist")
