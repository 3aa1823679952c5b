"""The estimators against exact answers: a 2-D latent model whose log p(x) is computed by quadrature."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vae_jax import bounds, evaluate
from vae_jax.models import VAE, create_model

from conftest import tiny_config


@pytest.fixture(scope="module")
def two_latent_model():
  config = tiny_config(prior="standard").model
  config.latent_dim = 2
  model = create_model(config, (8, 8, 1))
  x = jax.random.bernoulli(jax.random.PRNGKey(0), 0.3, (6, 8, 8, 1)).astype(jnp.float32)
  params = model.init({"params": jax.random.PRNGKey(1)}, x, jax.random.PRNGKey(2))["params"]
  return model, params, x


def _exact_log_likelihood(model, params, x):
  """log p(x) = log sum_grid p(x|z) p(z) dz on [-8, 8]^2 (the N(0, I) prior's mass outside is < 1e-14)."""
  axis = jnp.linspace(-8.0, 8.0, 321)
  cell = (axis[1] - axis[0]) ** 2
  grid = jnp.stack(jnp.meshgrid(axis, axis), -1).reshape(-1, 1, 2)

  def log_joint(module, z):
    log_px_z = module.likelihood(z, x).log_prob(x)
    return log_px_z + module.prior.log_prob(z)

  values = model.apply({"params": params}, grid, method=log_joint)  # [grid, batch]
  return jax.nn.logsumexp(values, axis=0) + jnp.log(cell)


def test_importance_sampled_log_likelihood_matches_quadrature(two_latent_model):
  model, params, x = two_latent_model
  exact = _exact_log_likelihood(model, params, x)
  # The untrained posterior is a poor proposal: 40,000 samples bring the estimate within 0.01.
  estimate = jax.jit(evaluate.make_bound_estimator(model, num_samples=40000, sample_chunk=2000))(
      params, x, jax.random.PRNGKey(3))
  np.testing.assert_allclose(estimate["log_likelihood"], exact, atol=0.03)
  assert np.all(estimate["elbo"] < exact)
  # The ELBO's parts add up: ELBO = reconstruction - KL.
  np.testing.assert_allclose(estimate["elbo"], estimate["reconstruction"] - estimate["kl"],
                             rtol=1e-5)


def test_bounds_are_ordered_on_average(two_latent_model):
  """ELBO <= IWAE-10 <= IWAE-100 <= log p(x), averaged over repeats (Burda et al. 2016)."""
  model, params, x = two_latent_model
  exact = _exact_log_likelihood(model, params, x)

  @jax.jit
  def bound_means(key):
    parts = model.apply({"params": params}, x, key, 100 * 64, method=VAE.log_weights)
    parts = jax.tree_util.tree_map(lambda a: a.reshape(64, 100, -1), parts)  # 64 repeats
    by_size = lambda size: jax.vmap(bounds.iwae_bound)(
        jax.tree_util.tree_map(lambda a: a[:, :size], parts)).mean(0)
    return bounds.elbo(jax.tree_util.tree_map(lambda a: a[:, 0], parts)), by_size(10), by_size(100)

  elbo, iwae10, iwae100 = bound_means(jax.random.PRNGKey(4))
  assert np.all(elbo < iwae10) and np.all(iwae10 < iwae100)
  assert np.all(iwae100 < exact + 0.01)


def test_streaming_log_mean_exp_equals_one_shot():
  values = jax.random.normal(jax.random.PRNGKey(5), (1000, 7)) * 50.0 - 300.0
  running = bounds.LogMeanExp.empty((7,))
  for chunk in jnp.split(values, 8):
    running = running.add(chunk)
  expected = jax.nn.logsumexp(values, axis=0) - jnp.log(1000.0)
  np.testing.assert_allclose(running.value(), expected, rtol=1e-6)


def test_estimator_memory_does_not_depend_on_num_samples(two_latent_model):
  """The chunked scan keeps one chunk of decoder outputs alive, whatever the sample count."""
  model, params, x = two_latent_model
  sizes = []
  for num_samples in (100, 10000):
    estimate = jax.jit(evaluate.make_bound_estimator(model, num_samples, sample_chunk=100))
    compiled = estimate.lower(params, x, jax.random.PRNGKey(0)).compile()
    sizes.append(compiled.memory_analysis().temp_size_in_bytes)
  assert sizes[1] < 1.5 * sizes[0]  # all 10,000 at once would need ~100x


def test_sample_chunk_sized_to_memory_is_the_largest_divisor_that_fits(two_latent_model):
  model, params, x = two_latent_model
  temp_bytes = lambda chunk: jax.jit(evaluate.make_bound_estimator(model, chunk, chunk)).lower(
      params, x, jax.random.PRNGKey(0)).compile().memory_analysis().temp_size_in_bytes
  budget = temp_bytes(50) * 1.2  # room for 50 samples at once, not for 100
  chunk = evaluate.sample_chunk_for_memory(model, params, x, 1000, budget)
  assert chunk == 50
  assert temp_bytes(chunk) <= budget < temp_bytes(100)
  assert evaluate.sample_chunk_for_memory(model, params, x, 1000, 1) == 1  # nothing fits: 1
  assert evaluate.sample_chunk_for_memory(model, params, x, 1000, 2**40) == 1000


def test_active_units_counts_dimensions_whose_posterior_mean_varies(two_latent_model):
  model, params, _ = two_latent_model
  images = jax.random.bernoulli(jax.random.PRNGKey(6), 0.4, (600, 8, 8, 1)).astype(jnp.uint8)
  means = model.apply({"params": params}, images.astype(jnp.float32), None, 1,
                      method=VAE.posterior_mean)
  variances = np.sort(np.var(np.asarray(means), axis=0))
  for threshold, expected in ((0.0, 2), (variances[0] * 1.01, 1), (variances[1] * 1.01, 0)):
    counts = evaluate.active_units(model, params, images, "binary", jax.random.PRNGKey(0),
                                   threshold, num_samples=1, batch_size=300)
    assert counts == {"active_units": expected}


@pytest.mark.parametrize("groups,expected_groups,threshold", [
    ("dimension", 12, 0.25), ("channel", 3, 1.0), ("all", 1, 10.0), ("all", 1, 50.0)])
def test_free_bits_gradient_is_zero_for_groups_below_lambda(groups, expected_groups, threshold):
  """IAF Eq. 15: groups using fewer than lambda nats (batch mean) get no gradient; the others
  get 1/batch per example, and the value is sum_j max(lambda, mean KL_j)."""
  kl = jax.random.uniform(jax.random.PRNGKey(0), (8, 2, 2, 3), maxval=0.5)
  kl = kl.at[..., 0].multiply(10.0)  # channel 0 well above lambda, the rest around it
  value, gradient = jax.value_and_grad(bounds.free_bits_kl)(kl, threshold, groups)
  if groups == "dimension":
    per_group = kl.reshape(8, -1).mean(0)
    gradient = gradient.reshape(8, -1)
  elif groups == "channel":
    per_group = kl.sum((1, 2)).mean(0)
    gradient = gradient.reshape(8, -1, 3)
  else:
    per_group = kl.sum((1, 2, 3)).mean(0)[None]
    gradient = gradient.reshape(8, 1, -1)
  assert per_group.shape == (expected_groups,)
  np.testing.assert_allclose(value, np.maximum(threshold, per_group).sum(), rtol=1e-6)
  above = np.asarray(per_group > threshold)
  if groups != "all":
    assert above.any() and not above.all()  # both cases occur
  if groups == "channel":
    np.testing.assert_allclose(gradient[..., above], 1 / 8)
    np.testing.assert_allclose(gradient[..., ~above], 0)
  else:
    np.testing.assert_allclose(gradient[:, above], 1 / 8)
    np.testing.assert_allclose(gradient[:, ~above], 0)


def test_free_bits_names_its_groups():
  with pytest.raises(ValueError, match="dimension, channel, all"):
    bounds.free_bits_kl(jnp.zeros((2, 3)), 0.1, "layer")
