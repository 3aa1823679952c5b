"""Gated networks of the VampPrior paper (Tomczak & Welling 2018, Section 5.1): every layer is
h = Linear(x) * sigmoid(Linear'(x)), the gating of Dauphin et al. (2017), dense or convolutional.

Widths follow Section 5.1 (two gated layers of 300 units) and, where the paper is silent (the
convolutional shapes of ConvHVAE/PixelHVAE), the authors' public code
(github.com/jmtomczak/vae_vampprior, models/convHVAE_2level.py); `configs/vampprior.py` lists them.
Each gated layer is named `hidden_<i>` like the other networks' non-linear layers.
"""
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from vae_jax.nets.conv import lecun_normal
from vae_jax.nets.dense import Dense

# Section 5.1: "MLPs with two hidden layers of 300 hidden units".
MLP_WIDTH = 300
# The convolutional encoders of the authors' convHVAE_2level: (features, kernel, stride).
CONV_ENCODER_Z2 = ((32, 7, 1), (32, 3, 2), (64, 5, 1), (64, 3, 2), (6, 3, 1))
CONV_ENCODER_Z1 = ((32, 3, 1), (32, 3, 2), (64, 3, 1), (64, 3, 2), (6, 3, 1))
# The decoder's gated convolutions after the dense layers map (z1, z2) to one image-sized map.
CONV_DECODER = ((64, 3, 1),) * 4


class GatedDense(nn.Module):
  features: int

  @nn.compact
  def __call__(self, x):
    return Dense(self.features, name="linear")(x) * jax.nn.sigmoid(
        Dense(self.features, name="gate")(x))


class GatedConv(nn.Module):
  features: int
  kernel_size: int
  strides: int = 1

  @nn.compact
  def __call__(self, x):
    layer = lambda name: nn.Conv(self.features, (self.kernel_size,) * 2, (self.strides,) * 2,
                                 padding="SAME", kernel_init=lecun_normal, name=name)
    return layer("linear")(x) * jax.nn.sigmoid(layer("gate")(x))


class GatedMLP(nn.Module):
  """x [..., *dims] flattened over `flatten_dims` trailing axes -> gated layers of `features`."""
  features: Sequence[int] = (MLP_WIDTH, MLP_WIDTH)
  flatten_dims: int = 0

  @nn.compact
  def __call__(self, x):
    if self.flatten_dims:
      x = x.reshape(x.shape[:x.ndim - self.flatten_dims] + (-1,))
    for i, width in enumerate(self.features):
      x = GatedDense(width, name=f"hidden_{i}")(x)
    return x


def image_encoder(features: Sequence[int] = (MLP_WIDTH, MLP_WIDTH)) -> GatedMLP:
  """The VAE's (L = 1) and HVAE's q network of Section 5.1: images flattened, gated layers."""
  return GatedMLP(features, flatten_dims=3)


class GatedConvNet(nn.Module):
  """Images [..., H, W, C] -> gated convolutions of `layers` (features, kernel, stride) ->
  flattened [..., F]."""
  layers: Sequence[Sequence[int]]

  @nn.compact
  def __call__(self, x):
    batch = x.shape[:-3]
    h = x.reshape((-1,) + x.shape[-3:])
    for i, (features, kernel, strides) in enumerate(self.layers):
      h = GatedConv(features, kernel, strides, name=f"hidden_{i}")(h)
    return h.reshape(batch + (-1,))


class GatedDecoder(nn.Module):
  """z [..., D] -> gated MLP -> Linear[H*W*out_channels] -> [..., H, W, out_channels]: the VAE
  (L=1) decoder of Section 5.1, whose output is the likelihood's parameters per pixel."""
  image_shape: Sequence[int]
  out_channels: int
  features: Sequence[int] = (MLP_WIDTH, MLP_WIDTH)

  @nn.compact
  def __call__(self, z):
    h = GatedMLP(self.features, name="mlp")(z)
    height, width = self.image_shape[:2]
    out = Dense(height * width * self.out_channels, name="out")(h)
    return out.reshape(z.shape[:-1] + (height, width, self.out_channels))


class TwoLatentDecoder(nn.Module):
  """p(x|z1, z2) of the HVAE (Eq. 11), from Concat[z1, z2] [..., 2D] (as `HierarchicalVAE`
  passes it): gated z1 and z2 branches, a gated joint layer, then

  - `conv=False` (HVAE): Linear[H*W*out_channels] -> [..., H, W, out_channels];
  - `conv=True` (ConvHVAE, PixelHVAE): branches and joint layer of H*W units, reshaped to an
    [H, W, 1] map, then `conv_layers` gated convolutions -> [..., H, W, F] features (none for
    PixelHVAE, whose PixelCNN reads the map).
  """
  latent_dim: int
  image_shape: Sequence[int]
  out_channels: int = 1
  conv: bool = False
  conv_layers: Sequence[Sequence[int]] = CONV_DECODER

  @nn.compact
  def __call__(self, z):
    z1, z2 = z[..., :self.latent_dim], z[..., self.latent_dim:]
    height, width = self.image_shape[:2]
    width_units = height * width if self.conv else MLP_WIDTH
    joint = jnp.concatenate([GatedDense(width_units, name="hidden_z1")(z1),
                             GatedDense(width_units, name="hidden_z2")(z2)], -1)
    h = GatedDense(width_units, name="hidden_joint")(joint)
    batch = z.shape[:-1]
    if not self.conv:
      out = Dense(height * width * self.out_channels, name="out")(h)
      return out.reshape(batch + (height, width, self.out_channels))
    h = h.reshape((-1, height, width, 1))
    for i, (features, kernel, strides) in enumerate(self.conv_layers):
      h = GatedConv(features, kernel, strides, name=f"hidden_conv_{i}")(h)
    return h.reshape(batch + h.shape[1:])


def conv_image_encoder(layers: Sequence[Sequence[int]] = CONV_ENCODER_Z2) -> "GatedConvNet":
  """The ConvHVAE's and PixelHVAE's q(z2|x) network: gated convolutions of x."""
  return GatedConvNet(layers)
