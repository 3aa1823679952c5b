"""Likelihood heads: decoder features (and, for PixelCNN, the image) -> p(x|z).

Each head maps features [..., H', W', C'] to a distribution over images [..., H, W, C] and can draw
the images shown in sample grids (`images`): the distribution's mean, or for the autoregressive
PixelCNN head a sequential sample.
"""
import flax.linen as nn
import jax
import jax.numpy as jnp

from vae_jax.distributions import bernoulli_image
from vae_jax.distributions.discretized_logistic import MIN_LOG_SCALE, DiscretizedLogistic
from vae_jax.nets import conv
from vae_jax.nets.pixelcnn import MaskedPixelCNN, PixelCNN, VampPixelCNN
from vae_jax.nets.weight_norm import WNConv


def _linear_1x1(channels: int, name: str):
  return nn.Conv(channels, (1, 1), kernel_init=conv.lecun_normal, name=name)


class BernoulliHead(nn.Module):
  """Bernoulli pixels: the features are the logits (the DenseVAE decoder ends in Linear[784]), or
  with `project`, logits = LinearConv1x1[H x W x C](features) (B.2, conv decoders),
  weight-normalized with `weight_norm` (IAF Appendix B)."""
  channels: int = 1
  project: bool = False
  weight_norm: bool = False

  @nn.compact
  def __call__(self, features, x=None, deterministic: bool = True):
    del x, deterministic
    if not self.project:
      return bernoulli_image(features)
    if self.weight_norm:
      flat = features.reshape((-1,) + features.shape[-3:])
      logits = WNConv(self.channels, kernel_size=1, init_scale=0.1, name="logits")(flat)
      return bernoulli_image(logits.reshape(features.shape[:-1] + logits.shape[-1:]))
    return bernoulli_image(_linear_1x1(self.channels, "logits")(features))

  def images(self, features, key):
    del key
    return self(features).mean()

  def sample(self, features, key):
    """x ~ p(x|z)."""
    return self(features).sample(seed=key)


class DiscretizedLogisticHead(nn.Module):
  """8-bit pixels: DiscretizedLogistic(LinearConv1x1(h), max(LinearConv1x1(h), -11)) (B.5)."""
  channels: int = 3

  @nn.compact
  def __call__(self, features, x=None, deterministic: bool = True):
    del x, deterministic
    loc = _linear_1x1(self.channels, "loc")(features)
    log_scale = jnp.maximum(_linear_1x1(self.channels, "log_scale")(features), MIN_LOG_SCALE)
    return DiscretizedLogistic(loc, log_scale)

  def images(self, features, key):
    del key
    return self(features).mean()

  def sample(self, features, key):
    """x ~ p(x|z), on the [0, 1] grid of 8-bit values."""
    return self(features).sample(seed=key)


def _sequential_samples(pixelcnn, features, key):
  """x ~ p(x|z) from an autoregressive `pixelcnn`, for features with any leading axes."""
  flat = features.reshape((-1,) + features.shape[-3:])
  samples = pixelcnn.sample(flat, key)[0]
  return jax.lax.stop_gradient(samples).reshape(features.shape[:-1] + samples.shape[-1:])


class MaskedPixelCNNHead(nn.Module):
  """A masked PixelCNN over Concat[x, decoder features] -> p(x|z); log p(x|z) is exact, in one
  pass. VLAE's (Chen et al. 2017, Appendix A: features -> 28x28x4 maps, 6 masked layers,
  Bernoulli), or with `vampprior` the PixelHVAE's (Tomczak & Welling 2018: 8 masked layers of 64),
  Bernoulli or, with `discretized_logistic`, over 8-bit gray images."""
  vampprior: bool = False
  discretized_logistic: bool = False

  def setup(self):
    if self.discretized_logistic and not self.vampprior:
      raise ValueError("VLAE's masked PixelCNN is Bernoulli only.")
    self.pixelcnn = (VampPixelCNN(outputs=2 if self.discretized_logistic else 1)
                     if self.vampprior else MaskedPixelCNN())

  def __call__(self, features, x=None, deterministic: bool = True):
    del deterministic
    out = self.pixelcnn(features, x)
    if self.discretized_logistic:
      loc, log_scale = jnp.split(out, 2, axis=-1)
      return DiscretizedLogistic(loc, jnp.maximum(log_scale, MIN_LOG_SCALE))
    return bernoulli_image(out)

  def images(self, features, key):
    """Samples drawn pixel by pixel (H x W network passes)."""
    return _sequential_samples(self.pixelcnn, features, key)

  def sample(self, features, key):
    return self.images(features, key)


class PixelCNNHead(nn.Module):
  """PixelVAE (B.2): Concat[x, h(z)] -> PixelCNN[28x28x33 x 3] -> Bernoulli logits.

  The likelihood is exact: log p(x|z) = sum_i log p(x_i | x_<i, z), all pixels in one pass.
  """
  num_layers: int = 3
  features: int = 33
  dropout_rate: float = 0.5  # B.2, as Salimans et al. (2017)

  def setup(self):
    self.pixelcnn = PixelCNN(self.num_layers, self.features, self.dropout_rate)

  def __call__(self, features, x=None, deterministic: bool = True):
    x = jnp.broadcast_to(x, features.shape[:-1] + x.shape[-1:])
    return bernoulli_image(self.pixelcnn(features, x, deterministic))

  def images(self, features, key):
    """Binary samples drawn pixel by pixel (H x W network passes)."""
    return _sequential_samples(self.pixelcnn, features, key)

  def sample(self, features, key):
    """x ~ p(x|z): the sequential samples of `images`."""
    return self.images(features, key)
