"""Prior training strategies (B.3, Algorithm B.1), beta-VAE and the Reg[q(z)] regularizer."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vae_jax import checkpoints, train, train_state

from conftest import tiny_config


def _prior_config(strategy: str, iterations: int = 2):
  config = tiny_config()
  config.train.strategy = strategy
  config.train.iterations = iterations
  config.train.learning_rates = (1e-3, 1e-4)
  config.train.lr_boundaries = (0.5,)
  config.train.kl_warmup_fraction = 0.0
  return config


def _changed_groups(config, total_steps):
  """Per step, which parameter groups the optimizer moved, under constant gradients."""
  optimizer = train.make_optimizer(config.train, total_steps)
  params = {"prior": {"w": jnp.ones(3)}, "encoder": {"w": jnp.ones(2)}}
  state = optimizer.init(params)
  grads = jax.tree_util.tree_map(jnp.ones_like, params)
  moved = []
  for _ in range(total_steps):
    updates, state = optimizer.update(grads, state, params)
    moved.append({k: bool(jnp.any(updates[k]["w"] != 0)) for k in params})
    params = jax.tree_util.tree_map(lambda p, u: p + u, params, updates)
  return moved


def test_iterative_phases_follow_algorithm_b1():
  """I = 2 iterations over 8 steps: M = 2. Iteration 1b trains the prior for 2M steps, then
  iteration 2 trains the VAE for M and the prior for M."""
  moved = _changed_groups(_prior_config("iterative"), 8)
  assert [m["prior"] for m in moved] == [True] * 4 + [False] * 2 + [True] * 2
  assert [m["encoder"] for m in moved] == [False] * 4 + [True] * 2 + [False] * 2
  prior_active, _, learning_rate = train_state.prior_training_phases(_prior_config("iterative").train, 8)
  assert [float(learning_rate(s)) for s in range(4)] == pytest.approx([1e-3, 1e-3, 1e-4, 1e-4])
  assert bool(prior_active(0)) and not bool(prior_active(4))


def test_posthoc_moves_only_the_prior():
  moved = _changed_groups(_prior_config("posthoc"), 6)
  assert all(m["prior"] and not m["encoder"] for m in moved)


def test_frozen_group_keeps_its_adam_moments():
  """A VAE phase must not decay the prior's Adam moments: they resume where they stopped."""
  config = _prior_config("iterative")
  optimizer = train.make_optimizer(config.train, 8)
  params = {"prior": {"w": jnp.ones(3)}, "encoder": {"w": jnp.ones(2)}}
  state = optimizer.init(params)
  grads = jax.tree_util.tree_map(jnp.ones_like, params)
  snapshots = []
  for _ in range(6):
    _, state = optimizer.update(grads, state, params)
    snapshots.append(jax.tree_util.tree_leaves(state))
  # Steps 4 and 5 are the VAE phase: the prior's moments after step 5 equal those after step 3.
  leaves_after_3, leaves_after_5 = snapshots[3], snapshots[5]
  assert any(np.array_equal(a, b) and a.size == 3 for a, b in zip(leaves_after_3, leaves_after_5))


def test_latent_regularizer_closed_form():
  """Reg[q(z)] = mean_k Mean(z_k)^2 + (Var(z_k) - 1)^2 on samples with known moments."""
  base = jnp.array([-1.0, 1.0, -1.0, 1.0])  # mean 0, variance 1
  z = jnp.stack([base, 2.0 + 3.0 * base], axis=-1)[None]  # [1 sample, 4 points, 2 dims]
  expected = ((0.0 + 0.0) + (2.0 ** 2 + (9.0 - 1.0) ** 2)) / 2
  np.testing.assert_allclose(train.latent_regularizer(z), expected, rtol=1e-6)


def test_posthoc_training_keeps_the_pretrained_vae(tmp_path):
  """Post-hoc training from a standard-prior run: encoder and decoder stay bit-identical to the
  pre-trained ones, the RealNVP prior learns."""
  pretrain_dir = str(tmp_path / "standard")
  pretrain = tiny_config(prior="standard")
  pretrain.train.num_epochs = 1
  train.train(train.setup_run(pretrain), pretrain_dir)
  pretrained = checkpoints.restore_params(pretrain_dir)

  config = _prior_config("posthoc")
  config.train.num_epochs = 2
  config.train.init_from = pretrain_dir
  # With validation, as every StaticMNIST cell (B.3): the state holds the parameters twice.
  config.data.validation = True
  config.train.validate_every_epochs = 1
  run = train.setup_run(config)
  initial = train.create_train_state(run, train.make_optimizer(config.train, run.total_steps))
  state = train.train(run, str(tmp_path / "posthoc"))
  for name in ("encoder", "decoder", "posterior_loc", "posterior_logstd"):
    jax.tree_util.tree_map(np.testing.assert_array_equal, state.params[name], pretrained[name])
  changes = jax.tree_util.tree_map(lambda a, b: float(jnp.max(jnp.abs(a - b))),
                                   state.params["prior"], initial.params["prior"])
  assert max(jax.tree_util.tree_leaves(changes)) > 1e-4


def test_strategy_needs_a_pretrained_workdir():
  config = _prior_config("posthoc")
  run = train.setup_run(config)
  with pytest.raises(ValueError, match="init_from"):
    train.create_train_state(run, train.make_optimizer(config.train, run.total_steps))
