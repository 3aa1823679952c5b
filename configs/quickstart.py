"""Quickstart: scikit-learn's bundled 8x8 digits (offline), DenseVAE with a RealNVP prior.

Sized to train and evaluate in under 3 minutes on 2 CPU cores. The digits are tiny (1,497 training
images of 8x8 pixels), so the networks are narrower than Xu et al.'s (2020); their training
settings (configs/xu2020.py) keep the paper's schedule shape: warm-up over the first 1/24,
learning-rate drops at 1/3 and 2/3.
"""
from vae_jax import config_files
from vae_jax.models.factory import component


def get_config():
  config = config_files.module("configs/xu2020.py").paper_defaults()
  config.data.name = "digits"
  config.model.latent_dim = 8
  config.model.encoder.features = config.model.decoder.features = (128, 128)
  config.model.prior = component("prior", "realnvp", num_blocks=4, coupling_hidden=64)
  config.train.num_epochs = 100
  config.train.batch_size = 64
  config.train.log_every_steps = 200
  config.train.checkpoint_every_steps = 1000
  config.eval.num_samples = 1000
  return config
