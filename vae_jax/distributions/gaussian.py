"""Diagonal Gaussian parameterised by its log standard deviation."""
import math

import distrax
import jax
import jax.numpy as jnp

_HALF_LOG_TWO_PI = 0.5 * math.log(2 * math.pi)


class DiagonalGaussian(distrax.Distribution):
  """N(loc, diag(exp(log_scale))^2) over the last `event_ndims` axes.

  The density is computed from `log_scale` directly, never from exp(log_scale) (Xu et al. 2020,
  Appendix B.6): with log-std clipped at -11 this keeps exp(-2 log_scale) <= 3.6e9, finite in
  float32. Samples and their log-density come together from the same standard-normal noise, so
  log q(z|x) does not suffer the cancellation of (z - loc) when the std is tiny.
  """

  def __init__(self, loc, log_scale, event_ndims: int = 1):
    super().__init__()
    self.loc = jnp.asarray(loc)
    self.log_scale = jnp.broadcast_to(log_scale, self.loc.shape)
    self._event_ndims = event_ndims

  @property
  def event_shape(self):
    return self.loc.shape[self.loc.ndim - self._event_ndims:]

  @property
  def batch_shape(self):
    return self.loc.shape[:self.loc.ndim - self._event_ndims]

  def _sum_event(self, x):
    return jnp.sum(x, axis=tuple(range(-self._event_ndims, 0)))

  def _log_prob_from_noise(self, noise):
    return self._sum_event(self._unit_log_prob_from_noise(noise))

  def _unit_log_prob_from_noise(self, noise):
    return -0.5 * jnp.square(noise) - self.log_scale - _HALF_LOG_TWO_PI

  def _noise(self, key, n):
    return jax.random.normal(key, (n,) + self.loc.shape, self.loc.dtype)

  def reparameterize(self, noise):
    """loc + scale * noise: the sample at standard-normal `noise` (any leading sample axes)."""
    return self.loc + jnp.exp(self.log_scale) * noise

  def standardize(self, value):
    """(value - loc) / scale, N(0, I) for value from this Gaussian: reparameterize's inverse."""
    return (value - self.loc) * jnp.exp(-self.log_scale)

  def _sample_n(self, key, n):
    return self.reparameterize(self._noise(key, n))

  def _sample_n_and_log_prob(self, key, n):
    samples, unit_log_prob = self.sample_and_unit_log_prob(key, n)
    return samples, self._sum_event(unit_log_prob)

  def sample_and_unit_log_prob(self, seed, sample_shape: int):
    """Samples [sample_shape, ...] and the log-density of each unit (not summed over events)."""
    noise = self._noise(seed, sample_shape)
    return self.reparameterize(noise), self._unit_log_prob_from_noise(noise)

  def log_prob(self, value):
    return self._sum_event(self.unit_log_prob(value))

  def unit_log_prob(self, value):
    """log N(value_i; loc_i, scale_i) for each unit i: log_prob before the sum over events."""
    return self._unit_log_prob_from_noise(self.standardize(value))

  def unit_kl_divergence(self, other: "DiagonalGaussian"):
    """KL(self || other) for each unit i, in closed form: the KL before the sum over events."""
    log_ratio = self.log_scale - other.log_scale
    return 0.5 * (jnp.exp(2 * log_ratio) + jnp.square(other.standardize(self.loc)) - 1.0) - log_ratio

  def mean(self):
    return self.loc

  def stddev(self):
    return jnp.exp(self.log_scale)

  def entropy(self):
    return self._sum_event(0.5 + _HALF_LOG_TWO_PI + self.log_scale)


def standard_normal(shape) -> DiagonalGaussian:
  """N(0, I) with event shape `shape`."""
  return DiagonalGaussian(jnp.zeros(shape), jnp.zeros(shape), event_ndims=len(shape))
