"""Standard-normal and RealNVP priors (Xu et al. 2020, Section 3 and Eq. 7).

Priors are over latent vectors [D] or latent tensors [H, W, C] (the CIFAR-10 model of B.5).
"""
from typing import Sequence

import distrax
import flax.linen as nn
import jax.numpy as jnp

from vae_jax.distributions import standard_normal
from vae_jax.flows import RealNVP


class StandardNormalPrior(nn.Module):
  """p(z) = N(0, I)."""
  latent_shape: Sequence[int]

  def log_prob(self, z):
    return standard_normal(tuple(self.latent_shape)).log_prob(z)

  def sample(self, key, n: int):
    return standard_normal(tuple(self.latent_shape)).sample(seed=key, sample_shape=n)


class RealNVPPrior(nn.Module):
  """p(z) = N(f(z); 0, I) |det df/dz| with f a K-block RealNVP (Eq. 6-7).

  The first `log_prob` call while initialising sees posterior samples, which set ActNorm's
  data-dependent initialisation.
  """
  latent_shape: Sequence[int]
  num_blocks: int
  coupling_hidden: int = 256
  pure: bool = False

  def setup(self):
    self.flow = RealNVP(self.num_blocks, self.coupling_hidden, len(self.latent_shape), self.pure)

  def _distribution(self, init_inputs):
    base = standard_normal(tuple(self.latent_shape))
    return distrax.Transformed(base, distrax.Inverse(self.flow(init_inputs)))

  def log_prob(self, z):
    return self._distribution(z).log_prob(z)

  def sample(self, key, n: int):
    shape_example = jnp.zeros((1,) + tuple(self.latent_shape))
    return self._distribution(shape_example).sample(seed=key, sample_shape=n)
