"""Convolutional networks of the ConvVAE and ResnetVAE (Xu et al. 2020, Appendix B.2 and B.5).

Naming convention (as in `dense.py`): every non-linear layer is called `hidden_*`, so the L2
penalty of Appendix B.3 applies to its kernel; the linear 1x1 shortcuts of the resnet blocks are
called `shortcut` and the blocks `block_<i>`, so no shortcut kernel lies under a `hidden_*` name.
"""
import functools
import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from vae_jax.nets.dense import Dense, leaky_relu

# B.2, ResnetVAE on MNIST-like 28 x 28 x 1 images: hφ(x) = x -> Resnet[...] -> Flatten.
MNIST_ENCODER_SHAPES = ((28, 28, 32), (28, 28, 32), (14, 14, 64), (14, 14, 64), (7, 7, 64),
                        (7, 7, 16))
# B.2: hθ(z) = z -> Dense[784] -> UnFlatten[7 x 7 x 16] -> DeResnet[...].
MNIST_DECODER_UNFLATTEN = (7, 7, 16)
MNIST_DECODER_SHAPES = ((7, 7, 64), (14, 14, 64), (14, 14, 64), (28, 28, 32), (28, 28, 32))
# B.5, ResnetVAE on CIFAR-10; z is an 8 x 8 x 32 tensor, so the decoder has no Dense/UnFlatten.
CIFAR_ENCODER_SHAPES = ((32, 32, 96),) * 3 + ((16, 16, 192),) * 3 + ((8, 8, 256),) * 2
CIFAR_DECODER_SHAPES = ((8, 8, 256),) * 2 + ((16, 16, 192),) * 3 + ((32, 32, 96),) * 2
# B.7, the "low complexity" ResnetVAE matching Huang et al. (2017): 3 resnet layers in q and 4
# layers in p (Dense -> UnFlatten[MNIST_DECODER_UNFLATTEN], then 3 deconvolutional resnet layers).
# The paper does not list these shapes; they are our reading, reusing the widths of B.2.
SMALL_ENCODER_SHAPES = ((28, 28, 32), (14, 14, 64), (7, 7, 16))
SMALL_DECODER_SHAPES = ((14, 14, 64), (28, 28, 32), (28, 28, 32))


def scaled_channels(channels: int, width: float) -> int:
  """A channel count multiplied by `width` (the width=<fraction> token), at least one."""
  return max(1, round(channels * width))


def scale_channels(shapes, width: float):
  """The layer shapes with each channel count scaled by `width` (scaled_channels)."""
  return tuple((height, w, scaled_channels(channels, width)) for height, w, channels in shapes)


_NUMBERS = ("NHWC", "HWIO", "NHWC")


def drawn_as_matrix(initializer):
  """`initializer` for a [..., in, out] kernel, bit for bit, drawn as the 2-D [fan-in, out]
  matrix and reshaped (threefry's counters are the flattened indices; a fan-in-scaled draw sees
  the same fan-in). XLA:CPU compiles the random draw of a 4-D shape 2-12x slower (JAX 0.12: 7.9 s
  against 0.7 s for a 3x3x16x16 kernel), and B.5's RealNVP prior has 200 such kernels: its
  initialisation took 11 minutes to compile on one core."""
  def init(key, shape, dtype=jnp.float32):
    return initializer(key, (math.prod(shape[:-1]), shape[-1]), dtype).reshape(shape)
  return init


lecun_normal = drawn_as_matrix(nn.initializers.lecun_normal())  # nn.Conv's default kernel_init

# XLA:CPU computes a convolution's kernel gradient over a large batch several times slower than
# the same sum over chunks of the batch: at batch 128 on 2 cores, 5.7x the forward time against
# 2.1x in chunks of 16 images for B.5's 32x32x96 layers, 5.2x against 2.1x at 16x16x192; no gain
# at 8x8x256 or 16x16x48 (`python launch/conv_gradients.py --scan_chunks=4,8,16,32`, and with
# --width=0.25; results/README.md, issue #17). Those were measured while convolutions ran in
# YNNPACK; in XLA's own kernels (vae_jax/__init__.py) the chunks change the MNIST PixelVAE's,
# ConvVAE's and B.5's steps by 0-2% (results/issue17/chunks_xla_convolutions.txt), and they stay
# for the jaxlibs on which YNNPACK still takes the convolutions. So on a single CPU device,
# layers whose input images hold at least _CHUNKED_MIN_ELEMENTS numbers take their kernel
# gradient in chunks of _CHUNK_IMAGES images (an unrolled loop: XLA:CPU runs convolutions inside
# device loops far slower). Elsewhere the layers are plain lax convolutions.
_CHUNK_IMAGES = 16
_CHUNKED_MIN_ELEMENTS = 20_000


def kernel_gradient_chunk(image_shape) -> int | None:
  """Images per chunk of the kernel gradient for inputs of shape [N, H, W, C]; None: no chunks."""
  batch, height, width, channels = image_shape
  if (jax.default_backend() != "cpu" or jax.device_count() > 1 or batch <= _CHUNK_IMAGES
      or height * width * channels < _CHUNKED_MIN_ELEMENTS):
    return None
  return _CHUNK_IMAGES


def _chunked_kernel_vjp(fn, inputs, kernel, cotangent, chunk: int):
  """The kernel VJP of W -> fn(inputs, W) at `cotangent`, summed over batch chunks."""
  kernel_vjp = lambda s: jax.vjp(lambda k: fn(inputs[s:s + chunk], k), kernel)[1]
  return sum(kernel_vjp(s)(cotangent[s:s + chunk])[0] for s in range(0, inputs.shape[0], chunk))


def _convolved(x, kernel, strides: int, padding):
  return lax.conv_general_dilated(x, kernel, (strides, strides), padding,
                                  dimension_numbers=_NUMBERS)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _chunked_conv(x, kernel, strides: int, padding, chunk: int):
  return _convolved(x, kernel, strides, padding)


def _chunked_conv_forward(x, kernel, strides, padding, chunk):
  return _convolved(x, kernel, strides, padding), (x, kernel)


def _chunked_conv_backward(strides, padding, chunk, residuals, dy):
  x, kernel = residuals
  convolve = lambda v, k: _convolved(v, k, strides, padding)
  dx = jax.vjp(lambda v: convolve(v, kernel), x)[1](dy)[0]
  return dx, _chunked_kernel_vjp(convolve, x, kernel, dy, chunk)


_chunked_conv.defvjp(_chunked_conv_forward, _chunked_conv_backward)


def conv2d(x, kernel, strides: int = 1, padding="SAME"):
  """lax.conv_general_dilated (NHWC, HWIO; padding "SAME", "VALID" or ((top, bottom), (left,
  right))), its kernel gradient taken in batch chunks where kernel_gradient_chunk says so (the
  same numbers up to summation order)."""
  padding = padding if isinstance(padding, str) else tuple(map(tuple, padding))
  chunk = kernel_gradient_chunk(x.shape)
  if chunk is None:
    return _convolved(x, kernel, strides, padding)
  return _chunked_conv(x, kernel, strides, padding, chunk)


def _transposed(x, kernel, strides: int):
  return lax.conv_transpose(x, kernel, (strides, strides), "SAME", dimension_numbers=_NUMBERS)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def strided_conv_transpose(x, kernel, strides: int):
  """lax.conv_transpose with 'SAME' padding (NHWC, HWIO) whose kernel gradient is taken through
  the adjoint, a strided convolution of the output gradient: <dy, T(x, W)> = <T*(dy, W), x>, so
  dW is the kernel gradient of W -> T*(dy, W) at cotangent x (in batch chunks where
  kernel_gradient_chunk says so). The same numbers; XLA:CPU computes the transposed convolution's
  own kernel gradient 11-15x slower (results/README.md)."""
  return _transposed(x, kernel, strides)


def _strided_conv_transpose_forward(x, kernel, strides):
  return _transposed(x, kernel, strides), (x, kernel)


def _strided_conv_transpose_backward(strides, residuals, dy):
  x, kernel = residuals
  adjoint = lambda g, k: jax.vjp(lambda v: _transposed(v, k, strides), x[:g.shape[0]])[1](g)[0]
  dx = adjoint(dy, kernel)
  chunk = kernel_gradient_chunk(dy.shape) or dy.shape[0]
  return dx, _chunked_kernel_vjp(adjoint, dy, kernel, x, chunk)


strided_conv_transpose.defvjp(_strided_conv_transpose_forward, _strided_conv_transpose_backward)


class Conv(nn.Module):
  """nn.Conv, or with `transpose` nn.ConvTranspose (the same parameters, initialisation and
  outputs), on [..., H, W, C], through conv2d and strided_conv_transpose. `padding` is "SAME" or,
  for convolutions, ((top, bottom), (left, right)); `mask` multiplies the kernel (nn.Conv's)."""
  features: int
  kernel_size: int | tuple[int, int]
  strides: int = 1
  transpose: bool = False
  padding: str | tuple[tuple[int, int], tuple[int, int]] = "SAME"
  mask: jax.Array | None = None

  @nn.compact
  def __call__(self, x):
    size = ((self.kernel_size,) * 2 if isinstance(self.kernel_size, int)
            else tuple(self.kernel_size))
    kernel = self.param("kernel", lecun_normal,
                        size + (x.shape[-1], self.features))
    bias = self.param("bias", nn.initializers.zeros, (self.features,))
    if self.mask is not None:
      kernel = kernel * self.mask
    images = x.reshape((-1,) + x.shape[-3:])
    if not self.transpose:
      y = conv2d(images, kernel, self.strides, self.padding)
    elif self.padding != "SAME":
      raise ValueError("Transposed convolutions take 'SAME' padding only.")
    elif self.strides > 1:
      y = strided_conv_transpose(images, kernel, self.strides)
    elif size[0] % 2 and size[1] % 2:  # lax does not flip the kernel: stride 1 is a convolution
      y = conv2d(images, kernel)
    else:
      y = _transposed(images, kernel, 1)
    return y.reshape(x.shape[:-3] + y.shape[1:]) + bias


def layer_strides(in_height: int, out_height: int, transpose: bool) -> int:
  """The stride B.2 derives from a layer's input and output heights: 1 or 2."""
  if in_height == out_height:
    return 1
  if (transpose and out_height == 2 * in_height) or (not transpose and in_height == 2 * out_height):
    return 2
  kind = ("deconvolutional layer (doubles or keeps H)" if transpose
          else "convolutional layer (halves or keeps H)")
  raise ValueError(f"Cannot derive the strides of a {kind} mapping height {in_height} to "
                   f"{out_height}.")


class ResidualBlock(nn.Module):
  """Pre-activation resnet layer (Zagoruyko & Komodakis 2016) of B.2, without normalization.

  out = shortcut(x) + branch_scale * hidden_1(leaky_relu(hidden_0(leaky_relu(x)))), where hidden_0
  carries the strides and the shortcut is the identity, or a linear 1x1 (transposed) convolution
  when the shape changes. With `transpose`, all three are transposed convolutions (DeResnet) and
  the block upsamples by `strides`.

  The paper does not state its initialisation. Each block starts as its shortcut, so that deep
  stacks without normalization keep their activations' scale (with default initialisation the
  B.5 encoder's posterior log-std starts as high as 7), through a learned scalar `branch_scale`
  that starts at zero (ReZero, Bachlechner et al. 2020; SkipInit, De & Smith 2020), not through a
  zero-initialised hidden_1. Under Adam the latter fails: the first update moves every weight by
  the learning rate with its gradient's sign, and a zero kernel's gradient signs follow the
  input's pattern, so each output moves by about lr * fan-in * E|input| in unison -- 0.9 to 2.3
  times the activations' scale for the 3x3 kernels of B.5 (fan-in 864 to 2,304) at lr 1e-3,
  compounded over 8 encoder and 7 decoder blocks. Measured on a CIFAR-10 batch, that one update
  alone took the posterior log-std's RMS from 0.53 to 4.2 and the decoder's log-scale's from 0.38
  to 3.6, and the loss to inf (results/README.md). With the scalar, hidden_1 starts random and
  learns at the branch's own scale: the first update moves branch_scale by lr, the branch by
  lr times its output.

  With `full_rank_shortcut`, a resampling shortcut's kernel is `strides` wide instead of 1x1:
  a space-to-depth (or, transposed, depth-to-space) linear map through which every input pixel
  reaches the output. A 1x1 stride-2 convolution reads 1 pixel in 4, and its transpose writes 1
  pixel in 4 with zeros between; while the branches are still nearly shut, B.5's two stride-2
  levels then leave 15 of every 16 decoder outputs without a linear path from z (issue #17).
  """
  features: int
  strides: int = 1
  transpose: bool = False
  kernel_size: int = 3
  full_rank_shortcut: bool = False

  @nn.compact
  def __call__(self, x):
    if self.strides == 1 and x.shape[-1] == self.features:
      shortcut = x
    else:
      width = self.strides if self.full_rank_shortcut else 1
      shortcut = Conv(self.features, width, self.strides, self.transpose, name="shortcut")(x)
    h = Conv(self.features, self.kernel_size, self.strides, self.transpose,
             name="hidden_0")(leaky_relu(x))
    h = Conv(self.features, self.kernel_size, 1, self.transpose, name="hidden_1")(leaky_relu(h))
    branch_scale = self.param("branch_scale", nn.initializers.zeros, ())
    return shortcut + branch_scale * h


class ConvStack(nn.Module):
  """Resnet[...] / DeResnet[...] of B.2, or Conv[...] / DeConv[...] when not `residual`.

  `output_shapes` lists each layer's H x W x C output; strides follow from the heights.
  """
  output_shapes: Sequence[tuple[int, int, int]]
  residual: bool
  transpose: bool
  full_rank_shortcuts: bool = False  # see ResidualBlock

  @nn.compact
  def __call__(self, x):
    """x: [N, H, W, C] -> [N, *output_shapes[-1]]."""
    for i, shape in enumerate(self.output_shapes):
      height, _, features = shape
      strides = layer_strides(x.shape[-3], height, self.transpose)
      if self.residual:
        x = ResidualBlock(features, strides, self.transpose,
                          full_rank_shortcut=self.full_rank_shortcuts, name=f"block_{i}")(x)
      else:
        x = leaky_relu(Conv(features, 3, strides, self.transpose, name=f"hidden_{i}")(x))
      if x.shape[-3:] != tuple(shape):
        raise ValueError(f"Layer {i} outputs shape {x.shape[-3:]}, but {tuple(shape)} was "
                         "requested.")
    return x


class ConvEncoder(nn.Module):
  """hφ(x) = x -> Resnet[output_shapes] (or Conv[...]) -> Flatten (B.2; B.5 without Flatten)."""
  output_shapes: Sequence[tuple[int, int, int]]
  residual: bool
  flatten: bool = True
  full_rank_shortcuts: bool = False  # see ResidualBlock

  @nn.compact
  def __call__(self, x):
    """x: [..., H, W, C] -> [..., h * w * c], or [..., h, w, c] without `flatten`."""
    batch_shape = x.shape[:-3]
    h = ConvStack(self.output_shapes, self.residual, transpose=False,
                  full_rank_shortcuts=self.full_rank_shortcuts,
                  name="stack")(x.reshape((-1,) + x.shape[-3:]))
    return h.reshape(batch_shape + ((-1,) if self.flatten else h.shape[1:]))


class ConvDecoder(nn.Module):
  """hθ(z) = z -> Dense -> UnFlatten[unflatten_shape] -> DeResnet[output_shapes] (B.2).

  With `unflatten_shape` None, z is already a tensor [..., h, w, c] (B.5, CIFAR-10). The linear
  1x1 convolution to the likelihood's parameters is not part of this module.
  """
  output_shapes: Sequence[tuple[int, int, int]]
  residual: bool
  unflatten_shape: tuple[int, int, int] | None
  full_rank_shortcuts: bool = False  # see ResidualBlock

  @nn.compact
  def __call__(self, z):
    """z: [..., D] (or [..., h, w, c]) -> [..., *output_shapes[-1]]."""
    if self.unflatten_shape is None:
      batch_shape, h = z.shape[:-3], z.reshape((-1,) + z.shape[-3:])
    else:
      batch_shape = z.shape[:-1]
      h = leaky_relu(Dense(math.prod(self.unflatten_shape), name="hidden_dense")(z))
      h = h.reshape((-1,) + tuple(self.unflatten_shape))
    h = ConvStack(self.output_shapes, self.residual, transpose=True,
                  full_rank_shortcuts=self.full_rank_shortcuts, name="stack")(h)
    return h.reshape(batch_shape + h.shape[1:])


# The layer shapes of each paper setting: (encoder shapes, decoder shapes, decoder's UnFlatten
# shape or None where z is already a tensor).
LAYERS = {"mnist": (MNIST_ENCODER_SHAPES, MNIST_DECODER_SHAPES, MNIST_DECODER_UNFLATTEN),
          "small": (SMALL_ENCODER_SHAPES, SMALL_DECODER_SHAPES, MNIST_DECODER_UNFLATTEN),
          "cifar": (CIFAR_ENCODER_SHAPES, CIFAR_DECODER_SHAPES, None)}


def _check_layers(layers: str, image_shape) -> None:
  if layers not in LAYERS:
    raise ValueError(f"layers={layers!r}; valid values: {', '.join(LAYERS)}.")
  size = (32, 32) if layers == "cifar" else (28, 28)
  if tuple(image_shape[:2]) != size:
    raise ValueError(f"The {layers!r} convolutional layers (Xu et al. 2020, B.2, B.5, B.7) are "
                     f"for {size[0]}x{size[1]} images; the data are {tuple(image_shape)}. Use a "
                     "'dense' encoder and decoder for other sizes.")


def encoder(image_shape, layers: str = "mnist", residual: bool = True,
            width: float = 1.0) -> ConvEncoder:
  """The ConvVAE (residual=False) or ResnetVAE encoder of `layers` (LAYERS), channel counts
  multiplied by `width`. CIFAR-10's (B.5) keeps its 8x8 map (the latent is a tensor) and has
  full-rank resampling shortcuts (issue #17, ResidualBlock)."""
  _check_layers(layers, image_shape)
  cifar = layers == "cifar"
  return ConvEncoder(scale_channels(LAYERS[layers][0], width), residual, flatten=not cifar,
                     full_rank_shortcuts=cifar)


def decoder(image_shape, layers: str = "mnist", residual: bool = True,
            width: float = 1.0) -> ConvDecoder:
  """The decoder matching `encoder(image_shape, layers, residual, width)`."""
  _check_layers(layers, image_shape)
  _, shapes, unflatten = LAYERS[layers]
  return ConvDecoder(scale_channels(shapes, width), residual, unflatten_shape=unflatten,
                     full_rank_shortcuts=layers == "cifar")
