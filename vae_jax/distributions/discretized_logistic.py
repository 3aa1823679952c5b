"""Discretized logistic likelihood over 8-bit images (Xu et al. 2020, Appendix B.5)."""
import math

import distrax
import jax
import jax.numpy as jnp

_MAX_PIXEL = 255
# B.5: log s of the discretized logistic is clipped below at -11, like the posterior's log-std.
MIN_LOG_SCALE = -11.0
_HALF_BIN = 0.5 / _MAX_PIXEL


def _log1mexp(d):
  """log(1 - exp(-d)) for d > 0, accurate for small and large d (Maechler 2012)."""
  small = d < math.log(2.0)
  # Each branch sees only its own range, so the unused one has a finite gradient under `where`.
  return jnp.where(small, jnp.log(-jnp.expm1(-jnp.minimum(d, math.log(2.0)))),
                   jnp.log1p(-jnp.exp(-jnp.maximum(d, math.log(2.0)))))


def log_prob_per_subpixel(value, loc, log_scale):
  """log P(value) for each sub-pixel under Logistic(loc, exp(log_scale)) rounded to the grid of
  255ths, the edge bins extended to +-inf (see DiscretizedLogistic)."""
  inv_scale = jnp.exp(-log_scale)
  centered = value - loc
  lower = (centered - _HALF_BIN) * inv_scale
  upper = (centered + _HALF_BIN) * inv_scale
  interior = (jax.nn.log_sigmoid(upper) + jax.nn.log_sigmoid(-lower)
              + _log1mexp(inv_scale / _MAX_PIXEL))
  return jnp.where(value < _HALF_BIN, jax.nn.log_sigmoid(upper),
                   jnp.where(value > 1 - _HALF_BIN, jax.nn.log_sigmoid(-lower), interior))


def _round_to_grid(x):
  return jnp.clip(jnp.round(x * _MAX_PIXEL) / _MAX_PIXEL, 0.0, 1.0)


class DiscretizedLogistic(distrax.Distribution):
  """Logistic(loc, exp(log_scale)) rounded to the grid {k / 255}, event [..., H, W, C].

  Data convention: x = pixel / 255 in [0, 1]; the bin of pixel k is k/255 +- 0.5/255. B.5 cites
  Kingma et al. (2016), whose edge bins also have width 1/255, so mass leaks outside [0, 1]. As in
  PixelCNN++ (Salimans et al. 2017) we extend the first and last bins to -inf and +inf: the 256
  probabilities of each sub-pixel sum to exactly 1, and each is at least the un-extended one, so
  this is a proper distribution whose likelihood is never lower.

  With a < b the standardised bin edges, sigmoid(b) - sigmoid(a) =
  sigmoid(b) sigmoid(-a) (1 - exp(a - b)), and b - a = 1 / (255 s) has no cancellation. So
  log_prob is exact in log space, needs no mid-point fallback, and stays finite in value and
  gradient for log_scale down to -11 (the clip of B.5) and for x far in the tails.
  """

  def __init__(self, loc, log_scale):
    super().__init__()
    self.loc = jnp.asarray(loc)
    self.log_scale = jnp.broadcast_to(log_scale, self.loc.shape)

  @property
  def event_shape(self):
    return self.loc.shape[-3:]

  @property
  def batch_shape(self):
    return self.loc.shape[:-3]

  def log_prob(self, value):
    return jnp.sum(log_prob_per_subpixel(value, self.loc, self.log_scale), axis=(-3, -2, -1))

  def _sample_n(self, key, n):
    noise = jax.random.logistic(key, (n,) + self.loc.shape, self.loc.dtype)
    return _round_to_grid(self.loc + jnp.exp(self.log_scale) * noise)

  def mean(self):
    """loc clipped to [0, 1]: an approximation, as the discretized mean has no closed form."""
    return jnp.clip(self.loc, 0.0, 1.0)


def mixture_params_per_pixel(channels: int, num_mixtures: int) -> int:
  """Outputs per pixel of a DiscretizedLogisticMixture: a logit, C locations, C log-scales and
  C (C - 1) / 2 channel coefficients per component."""
  return num_mixtures * (1 + 2 * channels + channels * (channels - 1) // 2)


class DiscretizedLogisticMixture(distrax.Distribution):
  """PixelCNN++'s mixture of discretized logistics over the C channels of a pixel (Salimans et
  al. 2017, Section 2.2), on the [0, 1] grid of DiscretizedLogistic; event [..., C].

  In component k, channel c has location mu_kc + sum_{j<c} tanh(a_kcj) x_j: the channels of a pixel
  depend on each other linearly, as in PixelCNN++ (red, then green given red, then blue). Each
  component's channels are discretized logistics with the edge bins extended, so the 256^C
  probabilities of a pixel sum to 1.
  """

  def __init__(self, params, channels: int):
    """params [..., num_mixtures * (1 + 2 C + C (C - 1) / 2)], as a network outputs them."""
    super().__init__()
    num_mixtures = params.shape[-1] // mixture_params_per_pixel(channels, 1)
    if params.shape[-1] != mixture_params_per_pixel(channels, num_mixtures):
      raise ValueError(f"{params.shape[-1]} outputs per pixel do not make a mixture over "
                       f"{channels} channels.")
    self.channels = channels
    self.logits = params[..., :num_mixtures]
    rest = params[..., num_mixtures:].reshape(params.shape[:-1] + (num_mixtures, -1))
    self.loc = rest[..., :channels]
    self.log_scale = jnp.maximum(rest[..., channels:2 * channels], MIN_LOG_SCALE)
    self.coefficients = jnp.tanh(rest[..., 2 * channels:])  # [..., K, C (C - 1) / 2]

  @property
  def event_shape(self):
    return (self.channels,)

  @property
  def batch_shape(self):
    return self.logits.shape[:-1]

  def _coupled_loc(self, x, loc, coefficients):
    """mu_c + sum_{j<c} a_cj x_j for every channel c; x broadcasts against loc [..., C]."""
    shape = jnp.broadcast_shapes(loc.shape, x.shape)[:-1]
    coupled, pair = [], 0
    for c in range(self.channels):
      shift = sum(coefficients[..., pair + j] * x[..., j] for j in range(c))
      coupled.append(jnp.broadcast_to(loc[..., c] + shift, shape))
      pair += c
    return jnp.stack(coupled, -1)

  def log_prob(self, value):
    x = value[..., None, :]  # against every component
    loc = self._coupled_loc(x, self.loc, self.coefficients)
    per_component = jnp.sum(log_prob_per_subpixel(x, loc, self.log_scale), -1)
    return jax.nn.logsumexp(jax.nn.log_softmax(self.logits) + per_component, -1)

  def _component(self, index):
    """Each pixel's parameters in component `index` [n, ...]."""
    one_hot = jax.nn.one_hot(index, self.logits.shape[-1])[..., None]
    pick = lambda a: jnp.sum(one_hot * a, -2)
    return pick(self.loc), pick(self.log_scale), pick(self.coefficients)

  def _sample_n(self, key, n):
    component_key, noise_key = jax.random.split(key)
    index = jax.random.categorical(component_key, self.logits, shape=(n,) + self.batch_shape)
    loc, log_scale, coefficients = self._component(index)
    noise = jax.random.logistic(noise_key, loc.shape, loc.dtype)
    x = jnp.zeros_like(loc)
    for c in range(self.channels):  # each channel given the ones drawn before it
      centre = self._coupled_loc(x, loc, coefficients)[..., c]
      x = x.at[..., c].set(_round_to_grid(centre + jnp.exp(log_scale[..., c]) * noise[..., c]))
    return x

  def mean(self):
    """The mean of the continuous mixture, each component's channels coupled to that
    component's own means of the channels before them, clipped to [0, 1]: an approximation for
    display (the discretization and the clipping are ignored)."""
    means = jnp.zeros(self.loc.shape)  # [..., K, C]
    for c in range(self.channels):
      means = means.at[..., c].set(self._coupled_loc(means, self.loc, self.coefficients)[..., c])
    weights = jax.nn.softmax(self.logits)[..., None]
    return jnp.clip(jnp.sum(weights * means, -2), 0.0, 1.0)
