"""Standard-normal and RealNVP priors (Xu et al. 2020, Section 3 and Eq. 7), and the
autoregressive-flow prior of VLAE (Chen et al. 2017, Section 3.2).

Priors are over latent vectors [D] or latent tensors [H, W, C] (the CIFAR-10 model of B.5).
"""
from typing import Sequence

import distrax
import flax.linen as nn
import jax.numpy as jnp

from vae_jax.distributions import standard_normal
from vae_jax.flows import RealNVP, autoregressive
from vae_jax.flows.made import MADE


class StandardNormalPrior(nn.Module):
  """p(z) = N(0, I)."""
  latent_shape: Sequence[int]

  def log_prob(self, z):
    return standard_normal(tuple(self.latent_shape)).log_prob(z)

  def unit_log_prob(self, z):
    """log N(z_i; 0, 1) per unit (the prior factorises), for free bits per unit."""
    return standard_normal(tuple(self.latent_shape)).unit_log_prob(z)

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


class AutoregressiveFlowPrior(nn.Module):
  """p(z) = u(eps) |d eps/dz| with z = f(eps), f an AF of `num_steps` MADE steps and u = N(0, I)
  (VLAE Section 3.2 and Appendix A: 4 steps of a 3-layer MADE of 640 ReLU units, mean-only).

  The MADE outputs start at zero, so the prior starts as N(0, I).
  """
  latent_dim: int
  num_steps: int = 4
  hidden: Sequence[int] = (640, 640, 640)
  mean_only: bool = True

  def setup(self):
    self.mades = [MADE(self.hidden, 1 if self.mean_only else 2,
                       order=tuple(autoregressive.step_order(self.latent_dim, t)), activation="relu",
                       zero_init_output=True, name=f"made_{t}")
                  for t in range(self.num_steps)]

  def _distribution(self):
    steps = [autoregressive.AutoregressiveAffineStep(made, self.mean_only) for made in self.mades]
    return distrax.Transformed(standard_normal((self.latent_dim,)), distrax.Chain(steps[::-1]))

  def log_prob(self, z):
    return self._distribution().log_prob(z)

  def sample(self, key, n: int):
    return self._distribution().sample(seed=key, sample_shape=n)
