"""The CIFAR-10 ResnetVAE of Xu et al. (2020) B.5 trains at the paper's learning rate (B.3: Adam,
1e-3) on real CIFAR-10 images: finite, falling losses from the first steps.

Its first Adam step once sent the decoder's log-scale from 0.4 to ~100 and the loss to inf (the
residual branches' zero-initialised last kernels; see nets/conv.py, ResidualBlock). The default
suite runs the full-width encoder and decoder, whose fan-ins caused it, with a two-block prior;
VAE_JAX_SLOW_TESTS=1 adds the paper's 50-block prior.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vae_jax import config_files, train

from test_data import SHARED_DATA

xu2020 = config_files.module("configs/xu2020.py")


def _losses(cell: str, batch_size: int, num_steps: int):
  """Training losses of `cell` at the paper's settings, every step on the same real batch."""
  if not (SHARED_DATA / "cifar10").is_dir():
    pytest.skip(f"no CIFAR-10 files in {SHARED_DATA}")
  config = xu2020.get_config(cell)
  assert config.train.learning_rates[0] == 1e-3 and config.train.optimizer == "adam"
  config.data.data_dir = str(SHARED_DATA)
  config.train.batch_size = batch_size
  run = train.setup_run(config)
  optimizer = train.make_optimizer(config.train, run.total_steps)
  state = train.create_train_state(run, optimizer)
  step = jax.jit(train.make_train_step(run, optimizer))
  # The same `batch_size` training images at every step, so the loss must fall (the posterior
  # samples still differ from step to step).
  order = jnp.arange(run.train_images.shape[0]) % batch_size
  losses = []
  for _ in range(num_steps):
    state, metrics = step(state, run.train_images, order)
    losses.append(float(metrics["loss"]))
  return np.array(losses)


@pytest.mark.parametrize("flow", ["standard", "rnvp_prior,K=2"])
def test_b5_model_takes_finite_falling_steps_at_the_papers_learning_rate(flow):
  losses = _losses(f"resnet,{flow},cifar10", batch_size=8, num_steps=4)
  assert np.all(np.isfinite(losses)), losses
  assert losses[-1] < losses[0] - 500, losses  # nats per image; the first losses are ~22,700


@pytest.mark.slow
def test_b5_model_with_the_50_block_prior_trains_at_the_papers_learning_rate():
  losses = _losses("resnet,rnvp_prior,K=50,cifar10", batch_size=32, num_steps=10)
  assert np.all(np.isfinite(losses)), losses
  assert losses[-1] < losses[0] - 500, losses
