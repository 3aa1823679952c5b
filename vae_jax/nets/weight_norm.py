"""Weight-normalized layers with data-dependent initialisation (Salimans & Kingma 2016), as used
throughout the IAF models (Kingma et al. 2016, Appendices B and C.6) and VLAE (Chen et al. 2017,
Appendix A).

y = g * (x conv v / ||v||) + b, with the norm over each output unit's incoming weights. At
initialisation g and b are set from the first batch so that every output unit has zero mean and
standard deviation `init_scale` over that batch (Salimans & Kingma 2016, Section 3). An optional
fixed 0/1 `mask` multiplies v first (masked convolutions of a PixelCNN or a MADE).
"""
from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from vae_jax.nets.conv import drawn_as_matrix

_V_INIT_STD = 0.05  # Salimans & Kingma's code draws v from N(0, 0.05^2); only its direction matters


def _unit_directions(v, mask):
  """v (masked) divided by the norm of each output unit's weights (the last axis)."""
  if mask is not None:
    v = v * jnp.asarray(mask, v.dtype)
  # A unit whose mask removes every input (a MADE unit of degree 0) has v = 0: clipping the
  # squared norm before the square root keeps its gradient finite.
  squared_norm = jnp.sum(jnp.square(v), axis=tuple(range(v.ndim - 1)), keepdims=True)
  return v * jax.lax.rsqrt(jnp.maximum(squared_norm, 1e-24))


class _WeightNormalized(nn.Module):
  """Shared part: `linear(x, directions)` is the layer without scale and bias."""
  features: int
  init_scale: float = 1.0
  mask: Optional[np.ndarray] = None

  def _scale_and_shift(self, pre_activation):
    """g * pre_activation + b, with g, b set from `pre_activation`'s statistics at init."""
    initializing = self.is_initializing()
    axes = tuple(range(pre_activation.ndim - 1))
    if initializing:
      mean = jnp.mean(pre_activation, axes)
      variance = jnp.var(pre_activation, axes)
      # A unit that is constant on the init batch keeps scale init_scale: dividing by its ~0
      # std would make g huge, and the first update that moves it would blow up.
      scale = self.init_scale * jnp.where(variance > 1e-6, jax.lax.rsqrt(variance + 1e-8), 1.0)
    g = self.param("g", (lambda *_: scale) if initializing else nn.initializers.ones,
                   (self.features,))
    b = self.param("b", (lambda *_: -mean * scale) if initializing else nn.initializers.zeros,
                   (self.features,))
    return pre_activation * g + b


class WNDense(_WeightNormalized):
  """Weight-normalized dense layer: x [..., in] -> [..., features]."""

  @nn.compact
  def __call__(self, x):
    v = self.param("v", nn.initializers.normal(_V_INIT_STD), (x.shape[-1], self.features))
    return self._scale_and_shift(x @ _unit_directions(v, self.mask))


class WNConv(_WeightNormalized):
  """Weight-normalized 2-D convolution on [N, H, W, C] with 'SAME' padding; with `transpose`, a
  transposed convolution that multiplies H and W by `strides`."""
  kernel_size: int = 3
  strides: int = 1
  transpose: bool = False

  @nn.compact
  def __call__(self, x):
    shape = (self.kernel_size, self.kernel_size, x.shape[-1], self.features)
    v = self.param("v", drawn_as_matrix(nn.initializers.normal(_V_INIT_STD)), shape)
    kernel = _unit_directions(v, self.mask)
    numbers = ("NHWC", "HWIO", "NHWC")
    strides = (self.strides, self.strides)
    if self.transpose:
      y = jax.lax.conv_transpose(x, kernel, strides, "SAME", dimension_numbers=numbers)
    else:
      y = jax.lax.conv_general_dilated(x, kernel, strides, "SAME", dimension_numbers=numbers)
    return self._scale_and_shift(y)
