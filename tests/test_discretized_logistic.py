"""Discretized logistic likelihood (B.5) and PixelCNN++'s mixture of them, against brute force and
float64 references."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from vae_jax.distributions.discretized_logistic import (DiscretizedLogistic,
                                                        DiscretizedLogisticMixture)

GRID = np.arange(256, dtype=np.float32) / 255


def per_subpixel(loc, log_scale):
  """One distribution per sub-pixel: event shape [1, 1, 1]."""
  return DiscretizedLogistic(jnp.reshape(loc, (-1, 1, 1, 1)), jnp.reshape(log_scale, (-1, 1, 1, 1)))


def reference_log_prob(x, loc, log_scale):
  """Slow float64 log-probability of each sub-pixel, via scipy's logistic log-cdf / log-sf."""
  x, loc, scale = (np.asarray(v, np.float64) for v in (x, loc, np.exp(np.float64(log_scale))))
  lower, upper = (x - 0.5 / 255 - loc) / scale, (x + 0.5 / 255 - loc) / scale
  dist = stats.logistic()
  with np.errstate(divide="ignore", invalid="ignore"):
    # log(F(u) - F(l)) in whichever tail keeps both terms away from 1.
    left = dist.logcdf(upper) + np.log1p(-np.exp(dist.logcdf(lower) - dist.logcdf(upper)))
    right = dist.logsf(lower) + np.log1p(-np.exp(dist.logsf(upper) - dist.logsf(lower)))
    interior = np.where(lower > 0, right, left)
  return np.where(x == 0, dist.logcdf(upper), np.where(x == 1, dist.logsf(lower), interior))


def test_probabilities_of_each_subpixel_sum_to_one():
  key_loc, key_scale = jax.random.split(jax.random.PRNGKey(0))
  loc = jax.random.uniform(key_loc, (2, 2, 2, 1), minval=-0.5, maxval=1.5)
  log_scale = jax.random.uniform(key_scale, (2, 2, 2, 1), minval=-11.0, maxval=1.0)
  dist = per_subpixel(loc, log_scale)
  x = jnp.broadcast_to(GRID[:, None, None, None, None], (256,) + dist.loc.shape)
  np.testing.assert_allclose(jnp.exp(dist.log_prob(x)).sum(0), np.ones(8), atol=1e-5)


def test_log_prob_matches_float64_reference():
  n = 600
  key_loc, key_scale, key_x = jax.random.split(jax.random.PRNGKey(1), 3)
  loc = jax.random.uniform(key_loc, (n,), minval=-0.5, maxval=1.5)
  log_scale = jax.random.uniform(key_scale, (n,), minval=-11.0, maxval=2.0).at[:200].set(-11.0)
  pixels = jax.random.randint(key_x, (n,), 0, 256).at[::5].set(0).at[1::5].set(255)
  x = pixels.astype(jnp.float32) / 255
  # Tiny scales with loc right at a bin centre, and at the edges of [0, 1].
  loc = loc.at[200:260].set(x[200:260]).at[260:280].set(0.0).at[280:300].set(1.0)
  log_scale = log_scale.at[200:300].set(-11.0)
  actual = per_subpixel(loc, log_scale).log_prob(x.reshape(-1, 1, 1, 1))
  expected = reference_log_prob(x, loc, log_scale)
  assert np.all(np.isfinite(expected))
  np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5)
  # The event sums its sub-pixels.
  full = DiscretizedLogistic(loc.reshape(6, 10, 10, 1), log_scale.reshape(6, 10, 10, 1))
  np.testing.assert_allclose(full.log_prob(x.reshape(6, 10, 10, 1)),
                             expected.reshape(6, -1).sum(-1), rtol=1e-5)


def test_gradients_are_finite_at_extremes():
  loc = jnp.array([-50.0, -1.0, 0.0, 0.3, 1.0, 2.0, 50.0, 0.5])
  log_scale = jnp.array([-11.0, -11.0, -11.0, -11.0, -11.0, -11.0, -11.0, 5.0])

  def total(loc, log_scale, x):
    return per_subpixel(loc, log_scale).log_prob(x).sum()

  for pixel in (0, 1, 77, 254, 255):
    x = jnp.full((8, 1, 1, 1), pixel / 255, jnp.float32)
    value = per_subpixel(loc, log_scale).log_prob(x)
    grads = jax.grad(total, argnums=(0, 1))(loc, log_scale, x)
    assert np.all(np.isfinite(value)), pixel
    assert all(np.all(np.isfinite(g)) for g in grads), pixel


def test_sample_shape_and_grid():
  dist = DiscretizedLogistic(jnp.full((2, 4, 4, 3), 0.5), jnp.full((2, 4, 4, 3), -1.0))
  x = dist.sample(seed=jax.random.PRNGKey(2), sample_shape=5)
  assert x.shape == (5, 2, 4, 4, 3)
  assert np.all((x >= 0) & (x <= 1))
  np.testing.assert_allclose(x * 255, np.round(x * 255), atol=1e-4)
  # Wide scale: both clipped edge values occur.
  assert np.any(x == 0) and np.any(x == 1)
  assert np.all(np.isfinite(dist.log_prob(x)))


def _mixture_params(key, batch, channels, num_mixtures, log_scale_range=(-4.0, -1.0)):
  """Raw per-pixel parameters: logits, locations in [0, 1], log-scales, channel coefficients."""
  keys = jax.random.split(key, 4)
  k, c = num_mixtures, channels
  logits = jax.random.normal(keys[0], (batch, k))
  loc = jax.random.uniform(keys[1], (batch, k, c), minval=-0.2, maxval=1.2)
  log_scale = jax.random.uniform(keys[2], (batch, k, c), minval=log_scale_range[0],
                                 maxval=log_scale_range[1])
  coefficients = jax.random.normal(keys[3], (batch, k, c * (c - 1) // 2))
  rest = jnp.concatenate([loc, log_scale, coefficients], -1).reshape(batch, -1)
  return jnp.concatenate([logits, rest], -1)


def reference_mixture_log_prob(x, params, channels):
  """float64 PixelCNN++ mixture: per component, channel c's location mu_c + sum_j<c tanh(a) x_j,
  each channel's discretized logistic from scipy, then a log-sum-exp over components."""
  params, x = np.asarray(params, np.float64), np.asarray(x, np.float64)
  k = params.shape[-1] // (1 + 2 * channels + channels * (channels - 1) // 2)
  log_weights = params[:, :k] - np.log(np.exp(params[:, :k]).sum(-1, keepdims=True))
  rest = params[:, k:].reshape(params.shape[0], k, -1)
  loc, log_scale = rest[..., :channels], np.maximum(rest[..., channels:2 * channels], -11.0)
  coefficients = np.tanh(rest[..., 2 * channels:])
  total = log_weights.copy()
  pair = 0
  for c in range(channels):
    centre = loc[..., c] + sum(coefficients[..., pair + j] * x[:, None, j] for j in range(c))
    pair += c
    total += reference_log_prob(np.broadcast_to(x[:, None, c], centre.shape), centre,
                                log_scale[..., c])
  top = total.max(-1, keepdims=True)
  return (top + np.log(np.exp(total - top).sum(-1, keepdims=True)))[:, 0]


def test_logistic_mixture_matches_float64_reference():
  params = _mixture_params(jax.random.PRNGKey(3), 300, 3, 5, log_scale_range=(-11.0, 0.5))
  pixels = jax.random.randint(jax.random.PRNGKey(4), (300, 3), 0, 256).at[::7].set(0).at[1::7].set(255)
  x = pixels.astype(jnp.float32) / 255
  actual = DiscretizedLogisticMixture(params, 3).log_prob(x)
  np.testing.assert_allclose(actual, reference_mixture_log_prob(x, params, 3), rtol=1e-4,
                             atol=1e-4)


def test_logistic_mixture_sums_to_one_and_its_samples_have_its_moments():
  """The 256^3 probabilities of an RGB pixel sum to 1; E[x_c] and E[x_r x_g], E[x_g x_b] of
  100,000 samples match the same sums (the channel coupling shows in the cross moments)."""
  params = _mixture_params(jax.random.PRNGKey(5), 1, 3, 3)
  dist = DiscretizedLogisticMixture(params, 3)
  grid = jnp.asarray(GRID)
  green_blue = jnp.stack(jnp.meshgrid(grid, grid, indexing="ij"), -1).reshape(-1, 2)

  def sums_for_red(red):
    x = jnp.concatenate([jnp.full((green_blue.shape[0], 1), red), green_blue], -1)
    p = jnp.exp(dist.log_prob(x))
    return jnp.stack([p.sum(), (p[:, None] * x).sum(0)[0], (p[:, None] * x).sum(0)[1],
                      (p[:, None] * x).sum(0)[2], (p * x[:, 0] * x[:, 1]).sum(),
                      (p * x[:, 1] * x[:, 2]).sum()])

  sums = jax.lax.map(sums_for_red, grid).sum(0)
  np.testing.assert_allclose(sums[0], 1.0, atol=1e-4)
  samples = dist.sample(seed=jax.random.PRNGKey(6), sample_shape=100_000)[:, 0]
  assert samples.shape == (100_000, 3)
  np.testing.assert_allclose(samples * 255, np.round(samples * 255), atol=1e-3)
  empirical = [samples[:, 0].mean(), samples[:, 1].mean(), samples[:, 2].mean(),
               (samples[:, 0] * samples[:, 1]).mean(), (samples[:, 1] * samples[:, 2]).mean()]
  # Standard errors are below 1e-3 for values in [0, 1]; 4e-3 is four of them.
  np.testing.assert_allclose(empirical, sums[1:], atol=4e-3)


def test_logistic_mixture_rejects_a_wrong_number_of_outputs():
  with pytest.raises(ValueError, match="do not make a mixture over 3 channels"):
    DiscretizedLogisticMixture(jnp.zeros((2, 11)), 3)
