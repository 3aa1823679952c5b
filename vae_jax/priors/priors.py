"""Standard-normal and RealNVP priors (Xu et al. 2020, Section 3 and Eq. 7), the
autoregressive-flow prior of VLAE (Chen et al. 2017, Section 3.2), and the mixture priors of
Tomczak & Welling (2018): MoG, VampPrior (Eq. 9), VampPrior-data and the weighted VampPrior (Eq. 16).

Priors are over latent vectors [D] or latent tensors [H, W, C] (the CIFAR-10 model of B.5). The
VampPrior's components are the model's own posteriors q(z|u_k): its `log_prob` and `sample` take
the model's `encode(x) -> DiagonalGaussian`; `log_prob` and `sample` below dispatch for any prior.
"""
from typing import Callable, Sequence

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp

from vae_jax.distributions import standard_normal
from vae_jax.distributions.mixture import mixture_log_prob, mixture_sample, uniform_log_weights
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


def _mixture_log_weights(logits, num_components: int):
  """log w_k: uniform 1/K (Eq. 9) without `logits`, else their softmax (Eq. 16)."""
  if logits is None:
    return uniform_log_weights(num_components)
  return jax.nn.log_softmax(logits)


def _weight_logits(module: nn.Module, learned: bool):
  """Learned mixture-weight logits, zero (uniform weights) at first; None when not learned."""
  if not learned:
    return None
  return module.param("weight_logits", nn.initializers.zeros, (module.num_components,))


class MixtureOfGaussiansPrior(nn.Module):
  """p(z) = sum_k w_k N(mu_k, diag sigma_k^2) with learned mu_k, sigma_k (Section 4, "MoG"); w
  uniform as in the paper, or learned with `learn_weights`.

  Our initialisation (the paper gives none): mu_k ~ N(0, I), so the components start spread like
  the standard prior, and sigma_k = 1.
  """
  latent_dim: int
  num_components: int
  learn_weights: bool = False

  def setup(self):
    shape = (self.num_components, self.latent_dim)
    self.loc = self.param("loc", nn.initializers.normal(1.0), shape)
    self.log_scale = self.param("log_scale", nn.initializers.zeros, shape)
    self.weight_logits = _weight_logits(self, self.learn_weights)

  def _components(self):
    return self.loc, self.log_scale, _mixture_log_weights(self.weight_logits, self.num_components)

  def log_prob(self, z):
    return mixture_log_prob(z, *self._components())

  def sample(self, key, n: int):
    return mixture_sample(key, n, *self._components())


class VampPrior(nn.Module):
  """p(z) = sum_k w_k q(z|u_k) over K pseudo-inputs u_k encoded by the model's own encoder
  (Eq. 9; weighted as Eq. 16 with `learn_weights`).

  The pseudo-inputs live in the data range [0, 1] through a hard tanh, whose gradient is zero
  outside it, and start at N(0.05, 0.01^2) per pixel: both as the authors' public code
  (github.com/jmtomczak/vae_vampprior, experiment.py). With `from_data` they are K training
  images, set by `vae_jax.train` at initialisation and never trained (VampPrior *data*).
  """
  image_shape: Sequence[int]
  num_components: int
  learn_weights: bool = False
  from_data: bool = False
  init_mean: float = 0.05
  init_std: float = 0.01

  def setup(self):
    init = lambda key, shape: self.init_mean + self.init_std * jax.random.normal(key, shape)
    self.pseudo_input_params = self.param(
        "pseudo_inputs", init, (self.num_components,) + tuple(self.image_shape))
    self.weight_logits = _weight_logits(self, self.learn_weights)

  def pseudo_inputs(self):
    """u [K, H, W, C]."""
    if self.from_data:
      return jax.lax.stop_gradient(self.pseudo_input_params)
    return jnp.clip(self.pseudo_input_params, 0.0, 1.0)

  def _components(self, encode: Callable):
    q = encode(self.pseudo_inputs())
    return q.loc, q.log_scale, _mixture_log_weights(self.weight_logits, self.num_components)

  def log_prob(self, z, encode: Callable):
    return mixture_log_prob(z, *self._components(encode))

  def sample(self, key, n: int, encode: Callable):
    """Pick u_k (with probability w_k), encode it, sample z ~ q(z|u_k)."""
    return mixture_sample(key, n, *self._components(encode))


def log_prob(prior: nn.Module, z, encode: Callable):
  """log p(z) for any prior; `encode` gives a VampPrior its components q(z|u_k)."""
  return prior.log_prob(z, encode) if isinstance(prior, VampPrior) else prior.log_prob(z)


def sample(prior: nn.Module, key, n: int, encode: Callable):
  """n draws from any prior; `encode` gives a VampPrior its components q(z|u_k)."""
  return prior.sample(key, n, encode) if isinstance(prior, VampPrior) else prior.sample(key, n)
