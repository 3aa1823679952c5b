"""Discretized logistic likelihood (B.5) against brute force and a float64 reference."""
import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from vae_jax.distributions.discretized_logistic import DiscretizedLogistic

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
