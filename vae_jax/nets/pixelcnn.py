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

from vae_jax.nets.dense import leaky_relu


def _down_shift(x):
  return jnp.pad(x[:, :-1], ((0, 0), (1, 0), (0, 0), (0, 0)))


def _right_shift(x):
  return jnp.pad(x[:, :, :-1], ((0, 0), (0, 0), (1, 0), (0, 0)))


def _down_shifted_conv(features, kernel, name):
  """Output (i, j) sees rows i-kh+1..i, columns centred on j."""
  kh, kw = kernel
  return nn.Conv(features, kernel, padding=((kh - 1, 0), ((kw - 1) // 2, (kw - 1) // 2)),
                 name=name)


def _down_right_shifted_conv(features, kernel, name):
  """Output (i, j) sees rows i-kh+1..i, columns j-kw+1..j."""
  kh, kw = kernel
  return nn.Conv(features, kernel, padding=((kh - 1, 0), (kw - 1, 0)), name=name)


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
      h += nn.Conv(self.features, (1, 1), name="hidden_skip")(leaky_relu(vertical))
    h = nn.Dropout(self.dropout_rate)(leaky_relu(h), deterministic=deterministic)
    h = conv(2 * self.features, kernel, "hidden_conv_1")(h)
    h += nn.Conv(2 * self.features, (1, 1), name="hidden_cond")(cond)
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
    logits = nn.Conv(self.out_channels, (1, 1), name="logits")(horizontal)
    return logits.reshape(batch + logits.shape[1:])

  def sample(self, features, key):
    """Binary images [..., H, W, out_channels] drawn pixel by pixel in raster order.

    Runs the network (deterministic=True) once per pixel: H * W forward passes. Returns the
    images and the logits each pixel was drawn from (equal to the network's logits on the
    returned images).
    """
    height, width = features.shape[-3:-1]
    shape = features.shape[:-1] + (self.out_channels,)
    uniform = jax.random.uniform(key, shape)

    def body(module, carry):
      step, x, logits = carry
      row, col = step // width, step % width
      step_logits = module(features, x, True)[..., row, col, :]
      pixel = (uniform[..., row, col, :] < jax.nn.sigmoid(step_logits)).astype(x.dtype)
      return (step + 1, x.at[..., row, col, :].set(pixel),
              logits.at[..., row, col, :].set(step_logits))

    init = (0, jnp.zeros(shape), jnp.zeros(shape))
    _, x, logits = nn.while_loop(lambda _, carry: carry[0] < height * width, body, self, init)
    return x, logits
