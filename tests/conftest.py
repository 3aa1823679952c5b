"""Shared fixtures: a tiny config on the embedded digits, so training tests take seconds."""
import os

import pytest

from vae_jax import configuration


def tiny_config(prior: str = "realnvp"):
  config = configuration.base_config()
  config.data.name = "digits"
  config.data.test_binarizations = 1
  config.model.latent_dim = 4
  config.model.hidden_units = (32,)
  config.model.prior = prior
  config.model.flow_depth = 2
  config.model.coupling_hidden = 16
  config.train.num_epochs = 3
  config.train.batch_size = 64
  config.train.log_every_steps = 10
  config.train.checkpoint_every_steps = 20
  config.eval.num_samples = 20
  config.eval.sample_chunk = 10
  config.eval.batch_size = 160
  config.eval.num_images = 8
  return config


@pytest.fixture
def config():
  return tiny_config()


def pytest_configure(config):
  config.addinivalue_line("markers", "slow: longer tests, run with VAE_JAX_SLOW_TESTS=1")


def pytest_collection_modifyitems(config, items):
  """The default suite stays under 10 minutes on 2 cores; VAE_JAX_SLOW_TESTS=1 adds the rest."""
  del config
  if os.environ.get("VAE_JAX_SLOW_TESTS") == "1":
    return
  skip = pytest.mark.skip(reason="slow: set VAE_JAX_SLOW_TESTS=1 to run")
  for item in items:
    if "slow" in item.keywords:
      item.add_marker(skip)
