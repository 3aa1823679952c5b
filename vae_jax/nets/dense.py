"""Dense networks of the DenseVAE (Xu et al. 2020, Appendix B.2).

Naming convention: every non-linear layer is called `hidden_<i>`; the L2 penalty of Appendix B.3
applies to the kernels of exactly those layers (see `vae_jax.train.l2_penalty`).
"""
from typing import Sequence

import math

import flax.linen as nn
import jax

# B.2 says "leaky relu" without a slope; we use 0.2, TensorFlow's default (tf.nn.leaky_relu).
LEAKY_RELU_SLOPE = 0.2


class Dense(nn.Dense):
  """nn.Dense (the same parameters and outputs) applied to its input as a matrix [N, features]:
  for an input with several leading axes ([samples, batch, features]) XLA:CPU transposes the
  activations into copies to take the kernel gradient (issue #18)."""

  @nn.compact
  def __call__(self, x):
    y = super().__call__(x.reshape(-1, x.shape[-1]))
    return y.reshape(x.shape[:-1] + y.shape[-1:])


def leaky_relu(x):
  return jax.nn.leaky_relu(x, LEAKY_RELU_SLOPE)


class MLP(nn.Module):
  """Dense[features[0] -> ... -> features[-1]], all non-linear."""
  features: Sequence[int]

  @nn.compact
  def __call__(self, x):
    for i, width in enumerate(self.features):
      x = leaky_relu(Dense(width, name=f"hidden_{i}")(x))
    return x


class DenseEncoder(nn.Module):
  """h(x) = x -> Flatten -> Dense[500 -> 500]."""
  features: Sequence[int] = (500, 500)

  @nn.compact
  def __call__(self, x):
    return MLP(self.features, name="mlp")(x.reshape(x.shape[:-3] + (-1,)))


class DenseDecoder(nn.Module):
  """z -> Dense[500 -> 500] -> Linear[H*W*C] -> UnFlatten[H x W x C]: Bernoulli logits."""
  image_shape: Sequence[int]
  features: Sequence[int] = (500, 500)

  @nn.compact
  def __call__(self, z):
    h = MLP(self.features, name="mlp")(z)
    logits = Dense(math.prod(self.image_shape), name="logits")(h)
    return logits.reshape(z.shape[:-1] + tuple(self.image_shape))
