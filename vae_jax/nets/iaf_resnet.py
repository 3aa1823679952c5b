"""The convolutional ResNet VAE networks of the IAF MNIST experiment (Kingma et al. 2016,
Appendix B), also the encoder and decoder of VLAE (Chen et al. 2017, Appendix A).

Appendix B: "three 2-strided resnet blocks with 3x3 filters and [16,32,32] feature maps. Between
every other strided convolution, there is another resnet block with stride 1 and same number
feature maps. There is one more fully-connected layer after convolutional layers with 450 hidden
units. The generation network has a symmetric structure with strided convolution replaced by
transposed convolution. [...] we use strided convolution or transposed convolution to replace the
identity connection [when the dimensionality changes]. ELU [...] Weight Normalization [...] with
data-dependent initialization."

Our reading where the text is silent:
  - encoder blocks (features, stride): (16, 2), (16, 1), (32, 2), (32, 1), (32, 2): 28 -> 14 -> 7
    -> 4 with 'SAME' padding; the decoder mirrors them: (32, 2), (32, 1), (16, 2), (16, 1),
    (16, 2), cropping its first 8x8 output to 7x7 (the mirror of 'SAME' padding 7 -> 4);
  - pre-activation blocks out = shortcut(x) + conv(elu(conv(elu(x)))), the branch's last
    convolution initialised at scale 0.1 so each block starts close to its shortcut;
  - the decoder starts with Dense[450] -> Dense[4 x 4 x 32], the mirror of the encoder's end.
"""
from typing import Sequence

import flax.linen as nn
import jax

from vae_jax.nets.weight_norm import WNConv, WNDense

ENCODER_BLOCKS = ((16, 2), (16, 1), (32, 2), (32, 1), (32, 2))
DECODER_BLOCKS = ((32, 2), (32, 1), (16, 2), (16, 1), (16, 2))
FC_UNITS = 450
_BOTTOM = (4, 4, 32)  # the encoder's last feature map for 28 x 28 inputs
_FIRST_DECODER_SIZE = 7  # 4 -> 8, cropped to 7, then 14 and 28
_BRANCH_INIT_SCALE = 0.1


class WNResidualBlock(nn.Module):
  """Pre-activation resnet block with ELU and weight normalization; strided (or, with
  `transpose`, upsampling) when stride is 2, with a strided 3x3 convolution as the shortcut."""
  features: int
  strides: int = 1
  transpose: bool = False

  @nn.compact
  def __call__(self, x):
    conv = lambda name, **kw: WNConv(self.features, transpose=self.transpose, name=name, **kw)
    shortcut = x
    if self.strides != 1 or x.shape[-1] != self.features:
      shortcut = conv("shortcut", strides=self.strides)(x)
    h = conv("conv_0", strides=self.strides)(jax.nn.elu(x))
    h = conv("conv_1", init_scale=_BRANCH_INIT_SCALE)(jax.nn.elu(h))
    return shortcut + h


class IAFResnetEncoder(nn.Module):
  """x [..., 28, 28, C] -> h [..., 450] (Appendix B); h is also the IAF context."""
  blocks: Sequence[tuple[int, int]] = ENCODER_BLOCKS

  @nn.compact
  def __call__(self, x):
    batch_shape = x.shape[:-3]
    h = x.reshape((-1,) + x.shape[-3:])
    for i, (features, strides) in enumerate(self.blocks):
      h = WNResidualBlock(features, strides, name=f"block_{i}")(h)
    h = jax.nn.elu(WNDense(FC_UNITS, name="fc")(jax.nn.elu(h.reshape(h.shape[0], -1))))
    return h.reshape(batch_shape + h.shape[-1:])


class IAFResnetDecoder(nn.Module):
  """z [..., D] -> features [..., 28, 28, 16] (the head maps them to p(x|z))."""
  blocks: Sequence[tuple[int, int]] = DECODER_BLOCKS

  @nn.compact
  def __call__(self, z):
    batch_shape = z.shape[:-1]
    h = jax.nn.elu(WNDense(FC_UNITS, name="fc_0")(z.reshape(-1, z.shape[-1])))
    h = WNDense(_BOTTOM[0] * _BOTTOM[1] * _BOTTOM[2], name="fc_1")(h).reshape((-1,) + _BOTTOM)
    for i, (features, strides) in enumerate(self.blocks):
      h = WNResidualBlock(features, strides, transpose=True, name=f"block_{i}")(h)
      if i == 0:
        h = h[:, :_FIRST_DECODER_SIZE, :_FIRST_DECODER_SIZE]
    h = jax.nn.elu(h)
    return h.reshape(batch_shape + h.shape[1:])
