"""DenseVAE with a RealNVP prior (K=20) on dynamically binarized MNIST: Xu et al. (2020),
Section 5.1 and Appendices B.1-B.3, with the paper's 2,400-epoch schedule. The same model as
--config=configs/xu2020.py:dense,rnvp_prior,K=20,mnist.

The data come from $VAE_JAX_DATA_DIR (or --config.data.data_dir) when set, else from TFDS.
A shorter run keeps the schedule's shape: --config.train.num_epochs=50 scales the KL warm-up
and the learning-rate boundaries with it.
"""
from vae_jax import config_files


def get_config():
  return config_files.load("configs/xu2020.py:dense,rnvp_prior,K=20,mnist")
