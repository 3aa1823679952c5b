"""DenseVAE with the standard normal prior on dynamically binarized MNIST: the baseline of
configs/mnist_realnvp.py, identical but for the prior (Xu et al. 2020, Section 5.1)."""
from vae_jax import configuration


def get_config():
  return configuration.dense_vae_mnist(prior="standard")
