"""PixelCNN part of the PixelVAE decoder (Xu et al. 2020, Appendix B.2).

h(z) = Concat[x, h~(z)] -> PixelCNN[28x28x33 -> 28x28x33 -> 28x28x33] -> LinearConv1x1: Bernoulli
logits. The PixelCNN layers are those of PixelCNN++ (Salimans et al. 2017): a vertical stack of
down-shifted convolutions and a horizontal stack of down-right-shifted ones (no blind spot), gated
residual blocks with dropout 0.5. The logits of pixel i see x only at pixels strictly before i in
raster order (all channels of a pixel together), and the z-features h~(z) at every position,
including i's own: a 1x1 convolution of them enters every residual block. We use leaky_relu like
the other networks of the paper, where PixelCNN++ uses concat_elu.

Naming: convolutions followed by a non-linearity are `hidden_*` (L2 penalty of B.3); the input
convolutions and `logits` are linear.
"""
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from vae_jax.distributions.discretized_logistic import MIN_LOG_SCALE
from vae_jax.nets.conv import Conv
from vae_jax.nets.dense import leaky_relu
from vae_jax.nets.dropout import Dropout
from vae_jax.nets.weight_norm import WNConv


def _down_shift(x):
  return jnp.pad(x[:, :-1], ((0, 0), (1, 0), (0, 0), (0, 0)))


def _right_shift(x):
  return jnp.pad(x[:, :, :-1], ((0, 0), (0, 0), (1, 0), (0, 0)))


def _down_shifted_conv(features, kernel, name):
  """Output (i, j) sees rows i-kh+1..i, columns centred on j."""
  kh, kw = kernel
  return Conv(features, kernel, padding=((kh - 1, 0), ((kw - 1) // 2, (kw - 1) // 2)), name=name)


def _down_right_shifted_conv(features, kernel, name):
  """Output (i, j) sees rows i-kh+1..i, columns j-kw+1..j."""
  kh, kw = kernel
  return Conv(features, kernel, padding=((kh - 1, 0), (kw - 1, 0)), name=name)


class GatedResidualBlock(nn.Module):
  """x + a * sigmoid(b), [a, b] = conv(dropout(act(conv(act(x)) + skip))) + cond (PixelCNN++).

  `skip` is a 1x1 conv of the vertical stack, used by horizontal blocks only (`vertical` is None
  in vertical blocks); `cond` is a 1x1 conv of the z-features.
  """
  horizontal: bool
  features: int
  dropout_rate: float

  @nn.compact
  def __call__(self, x, cond, vertical, deterministic: bool):
    conv = _down_right_shifted_conv if self.horizontal else _down_shifted_conv
    kernel = (2, 2) if self.horizontal else (2, 3)
    h = conv(self.features, kernel, "hidden_conv_0")(leaky_relu(x))
    if self.horizontal:
      h += Conv(self.features, 1, name="hidden_skip")(leaky_relu(vertical))
    h = Dropout(self.dropout_rate)(leaky_relu(h), deterministic=deterministic)
    h = conv(2 * self.features, kernel, "hidden_conv_1")(h)
    h += Conv(2 * self.features, 1, name="hidden_cond")(cond)
    a, b = jnp.split(h, 2, axis=-1)
    return x + a * jax.nn.sigmoid(b)


class PixelCNN(nn.Module):
  """features [..., H, W, Cf] (from z), x [..., H, W, C] in {0, 1} -> logits [..., H, W, out]."""
  num_layers: int = 3
  features: int = 33
  dropout_rate: float = 0.5
  out_channels: int = 1

  @nn.compact
  def __call__(self, features, x, deterministic: bool):
    batch = jnp.broadcast_shapes(features.shape[:-3], x.shape[:-3])
    cond = jnp.broadcast_to(features, batch + features.shape[-3:])
    cond = cond.reshape((-1,) + features.shape[-3:])
    x = jnp.broadcast_to(x, batch + x.shape[-3:]).reshape((-1,) + x.shape[-3:])
    # A channel of ones tells the zero padding apart from pixels equal to 0 (PixelCNN++).
    x = jnp.concatenate([x, jnp.ones_like(x[..., :1])], axis=-1)
    vertical = _down_shift(_down_shifted_conv(self.features, (2, 3), "input_vertical")(x))
    horizontal = (
        _down_shift(_down_shifted_conv(self.features, (1, 3), "input_horizontal_above")(x))
        + _right_shift(_down_right_shifted_conv(self.features, (2, 1), "input_horizontal_left")(x)))
    block = functools.partial(GatedResidualBlock, features=self.features,
                              dropout_rate=self.dropout_rate)
    for i in range(self.num_layers):
      vertical = block(False, name=f"vertical_{i}")(vertical, cond, None, deterministic)
      horizontal = block(True, name=f"horizontal_{i}")(horizontal, cond, vertical, deterministic)
    logits = Conv(self.out_channels, 1, name="logits")(horizontal)
    return logits.reshape(batch + logits.shape[1:])

  def sample(self, features, key):
    """Binary images [..., H, W, out_channels] drawn pixel by pixel in raster order, and the
    logits each pixel was drawn from (H * W network passes, deterministic=True)."""
    return raster_sample(self, lambda module, x: module(features, x, True), features.shape[:-1],
                         self.out_channels, key)


def bernoulli_pixel(logits, uniform):
  """x ~ Bernoulli(sigmoid(logits)) from uniform noise."""
  return (uniform < jax.nn.sigmoid(logits)).astype(uniform.dtype)


def discretized_logistic_pixel(params, uniform):
  """x ~ DiscretizedLogistic(loc, max(log_scale, -11)) on the 8-bit grid, from uniform noise;
  params [..., 2C] = Concat[loc, log_scale] as `DiscretizedLogistic` gets them from a PixelCNN."""
  loc, log_scale = jnp.split(params, 2, axis=-1)
  noise = jnp.log(uniform) - jnp.log1p(-uniform)  # Logistic(0, 1)
  x = loc + jnp.exp(jnp.maximum(log_scale, MIN_LOG_SCALE)) * noise
  return jnp.clip(jnp.round(x * 255) / 255, 0.0, 1.0)


def raster_sample(module, logits_fn, image_shape, channels: int, key, draw=bernoulli_pixel,
                  num_params=None):
  """x [*image_shape, channels] with x_i ~ p(x_i | params_i) for params = logits_fn(module, x),
  drawn in raster order by `draw(params_i, uniform_i)`: one network pass per pixel. Returns x and
  the parameters each pixel was drawn from ([..., num_params], default `channels` Bernoulli
  logits), equal to logits_fn on the returned x, since parameter i depends only on pixels
  before i."""
  height, width = image_shape[-2:]
  shape = tuple(image_shape) + (channels,)
  # Strictly inside (0, 1), so that a logistic draw stays finite.
  uniform = jax.random.uniform(key, shape, minval=1e-6, maxval=1.0 - 1e-6)

  def body(module, carry):
    step, x, logits = carry
    row, col = step // width, step % width
    step_logits = logits_fn(module, x)[..., row, col, :]
    pixel = draw(step_logits, uniform[..., row, col, :])
    return (step + 1, x.at[..., row, col, :].set(pixel),
            logits.at[..., row, col, :].set(step_logits))

  init = (0, jnp.zeros(shape), jnp.zeros(tuple(image_shape) + (num_params or channels,)))
  _, x, logits = nn.while_loop(lambda _, carry: carry[0] < height * width, body, module, init)
  return x, logits


def masked_kernel(kernel_size: int, in_channels: int, out_channels: int, include_centre: bool,
                  masked_inputs: int) -> np.ndarray:
  """PixelCNN mask [k, k, in, out] (van den Oord et al. 2016) for one-channel images: the first
  `masked_inputs` input channels are seen only above and to the left of the centre (type A) or
  also at it (type B, `include_centre`); the other input channels (features of z, which carry no
  information about x) are seen everywhere."""
  centre = kernel_size // 2
  mask = np.ones((kernel_size, kernel_size, in_channels, out_channels), np.float32)
  mask[centre, centre + (1 if include_centre else 0):, :masked_inputs] = 0
  mask[centre + 1:, :, :masked_inputs] = 0
  return mask


def _flat_batch(features, x):
  """(batch shape, features, x), both broadcast to the batch and flattened to [N, H, W, C]."""
  batch = jnp.broadcast_shapes(features.shape[:-3], x.shape[:-3])
  flat = lambda a: jnp.broadcast_to(a, batch + a.shape[-3:]).reshape((-1,) + a.shape[-3:])
  return batch, flat(features), flat(x)


class MaskedPixelCNN(nn.Module):
  """VLAE's PixelCNN (Chen et al. 2017, Appendix A): Concat[x, 1x1(features) -> 4 maps] ->
  6 masked 3x3 convolutions of 12 filters in resnet blocks, with the 5 type-B ones sharing their
  weights, and 4 1x1 resnet blocks between them; ELU and weight normalization throughout.

  Our reading where the appendix is silent: the first (type A) convolution is the input layer,
  the 5 tied type-B convolutions are residual blocks h + conv(elu(h)), a 1x1 block follows each
  of the first 4 of them, and the z-features are not masked (see `masked_kernel`). With 6 3x3
  layers each logit sees x in a window of at most 6 rows above and 6 columns to each side.
  """
  feature_maps: int = 4
  filters: int = 12
  masked_layers: int = 6
  pointwise_blocks: int = 4

  @nn.compact
  def __call__(self, features, x):
    """features [..., H, W, F] (from z) and x [..., H, W, 1] -> logits [..., H, W, 1]."""
    batch, features, x = _flat_batch(features, x)
    maps = WNConv(self.feature_maps, kernel_size=1, name="feature_maps")(features)
    inputs = jnp.concatenate([x, maps], -1)
    h = WNConv(self.filters, kernel_size=3, name="masked_a",
               mask=masked_kernel(3, inputs.shape[-1], self.filters, False, 1))(inputs)
    tied = WNConv(self.filters, kernel_size=3, name="masked_b",
                  mask=masked_kernel(3, self.filters, self.filters, True, self.filters))
    for i in range(self.masked_layers - 1):
      h = h + tied(jax.nn.elu(h))
      if i < self.pointwise_blocks:
        h = h + WNConv(self.filters, kernel_size=1, init_scale=0.1,
                       name=f"pointwise_{i}")(jax.nn.elu(h))
    logits = WNConv(1, kernel_size=1, init_scale=0.1, name="logits")(jax.nn.elu(h))
    return logits.reshape(batch + logits.shape[1:])

  def sample(self, features, key):
    """Binary images drawn pixel by pixel, and their logits (see `raster_sample`)."""
    return raster_sample(self, lambda module, x: module(features, x), features.shape[:-1], 1, key)


class VampPixelCNN(nn.Module):
  """The PixelHVAE decoder of Tomczak & Welling (2018), Section 5.3, as the authors' public
  code (models/PixelHVAE_2level.py): Concat[x, map of (z1, z2)] -> a type-A then type-B masked
  3x3 convolutions of 64 filters, ReLU -> 1x1 -> `outputs` maps: Bernoulli logits (1), or the
  discretized logistic's location and log-scale (2) for 8-bit images.

  Where we differ from that code: no batch normalisation (our networks are stateless functions of
  their parameters), and the map of (z1, z2), which carries no information about x, is not masked.
  """
  layers: int = 8
  filters: int = 64
  outputs: int = 1

  @nn.compact
  def __call__(self, features, x):
    """features [..., H, W, F] (from z) and x [..., H, W, 1] -> [..., H, W, outputs]."""
    batch, features, x = _flat_batch(features, x)
    h = jnp.concatenate([x, features], -1)
    for i in range(self.layers):
      mask = masked_kernel(3, h.shape[-1], self.filters, include_centre=i > 0,
                           masked_inputs=1 if i == 0 else self.filters)
      h = jax.nn.relu(Conv(self.filters, 3, mask=jnp.asarray(mask), name=f"hidden_{i}")(h))
    logits = Conv(self.outputs, 1, name="logits")(h)
    return logits.reshape(batch + logits.shape[1:])

  def sample(self, features, key):
    """Images drawn pixel by pixel, and the outputs they were drawn from (see `raster_sample`)."""
    draw = bernoulli_pixel if self.outputs == 1 else discretized_logistic_pixel
    return raster_sample(self, lambda module, x: module(features, x), features.shape[:-1], 1, key,
                         draw, self.outputs)
