"""A VAE with one latent variable: encoder, posterior (Gaussian, optionally a RealNVP on top), prior,
decoder and likelihood head (Xu et al. 2020, Section 3 and Appendix B.2).

Everything the bounds need is `log_weights`: per sample, log p(x|z), log p(z) and log q(z|x)
(`vae_jax.bounds` turns them into the ELBO, the IWAE bound and the IS log-likelihood).
"""
import math
from typing import Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from vae_jax import priors
from vae_jax.distributions import DiagonalGaussian
from vae_jax.models.base import LogWeights
from vae_jax.nets import conv
from vae_jax.nets.dense import Dense


class VAE(nn.Module):
  """q(z|x) = N(mu(h(x)), std(h(x))) pushed through `posterior_flow` when given: a RealNVP
  (Xu et al. 2020, Eq. B.1) or an IAF that also sees the encoder features h (Kingma et al. 2016,
  Algorithm 1)."""
  encoder: nn.Module
  decoder: nn.Module
  head: nn.Module  # features (and x) -> p(x|z), see heads.py
  prior: nn.Module
  latent_shape: Sequence[int]
  min_logstd: float = -11.0
  posterior_flow: Optional[nn.Module] = None  # RealNVP()(w) or IAF()(w, h): a bijector w -> z
  # Capabilities (vae_jax.models.base.LatentVariableModel).
  has_posterior_sampler = True
  has_flow_posterior = True
  has_kl_per_layer = False

  def setup(self):
    # Linear[D] heads for latent vectors (B.2), LinearConv1x1 heads for latent tensors (B.5).
    if len(self.latent_shape) == 1:
      linear = lambda: Dense(self.latent_shape[0])
    else:
      linear = lambda: nn.Conv(self.latent_shape[-1], (1, 1), kernel_init=conv.lecun_normal)
    self.posterior_loc = linear()
    self.posterior_logstd = linear()

  @property
  def latent_groups(self) -> dict:
    """Named latent variables -> their columns in `posterior_mean`, for active units."""
    return {"z": slice(0, math.prod(self.latent_shape))}

  @property
  def has_pseudo_inputs(self) -> bool:
    return isinstance(self.prior, priors.VampPrior)

  @property
  def flow_depends_on_x(self) -> bool:
    """True for an IAF posterior, whose every step sees the encoder's context h(x)."""
    return getattr(self.posterior_flow, "takes_context", False)

  def _encode(self, x):
    """(q(w|x), h(x)): N(mu(h), exp(max(logstd(h), min_logstd))) with the log-std clip of B.6,
    and the encoder features, which are the IAF's context h (Algorithm 1)."""
    h = self.encoder(x)
    log_scale = jnp.maximum(self.posterior_logstd(h), self.min_logstd)
    q = DiagonalGaussian(self.posterior_loc(h), log_scale, event_ndims=len(self.latent_shape))
    return q, h

  def gaussian_posterior(self, x) -> DiagonalGaussian:
    return self._encode(x)[0]

  def prior_log_prob(self, z):
    """log p(z); a VampPrior's components are this encoder's q(z|u_k) (Eq. 9)."""
    return priors.log_prob(self.prior, z, self.gaussian_posterior)

  def prior_sample(self, key, n: int):
    return priors.sample(self.prior, key, n, self.gaussian_posterior)

  def sample_posterior(self, x, key, num_samples: int):
    """z ~ q(z|x) and log q(z|x), each with a leading sample axis."""
    z, log_q, _ = self._sample_posterior_units(x, key, num_samples)
    return z, log_q

  def _sample_posterior_units(self, x, key, num_samples: int):
    """z ~ q(z|x), log q(z|x), and log q(z|x) per latent unit where q factorises (else None)."""
    q, h = self._encode(x)
    w, log_q_units = q.sample_and_unit_log_prob(key, num_samples)
    z, log_det = self.flow_posterior(w, h)
    # log q(z|x) = log q(w|x) - log|det df/dw| (Eq. B.1).
    log_q = jnp.sum(log_q_units, tuple(range(-len(self.latent_shape), 0))) - log_det
    return z, log_q, (log_q_units if self.posterior_flow is None else None)

  def flow_posterior(self, w, context=None):
    """z = f(w) and log|det df/dw| for Gaussian samples w: the posterior flow, if any.

    A RealNVP flow does not depend on x, so log q(z|x) = log N(f^-1(z); mu(x), std(x)) +
    log|det df^-1/dz| for every x at once (`unflow_posterior`); the analyses of aggregated
    posteriors rely on this. An IAF needs the context h(x) of the same x as w."""
    if self.posterior_flow is None:
      return w, jnp.zeros(w.shape[:w.ndim - len(self.latent_shape)])
    if self.flow_depends_on_x:
      if context is None:
        raise ValueError("The IAF posterior needs the encoder context h(x) of each sample.")
      return self.posterior_flow(w, context).forward_and_log_det(w)
    return self.posterior_flow(w).forward_and_log_det(w)

  def unflow_posterior(self, z):
    """w = f^-1(z) and log|det df^-1/dz|, for an x-independent posterior flow."""
    if self.posterior_flow is None:
      return z, jnp.zeros(z.shape[:z.ndim - len(self.latent_shape)])
    if self.flow_depends_on_x:
      raise ValueError("An IAF posterior depends on x through its context h(x): q(z|x) has no "
                       "x-independent inverse, so analyses of the aggregated posterior q(z) "
                       "(overlap, low_posterior, aggregate_kl) need a Gaussian or RealNVP "
                       "posterior.")
    return self.posterior_flow(z).inverse_and_log_det(z)

  def likelihood(self, z, x, deterministic: bool = True):
    return self.head(self.decoder(z), x, deterministic)

  def log_weights(self, x, key, num_samples: int = 1, deterministic: bool = True) -> LogWeights:
    z, log_posterior, log_q_units = self._sample_posterior_units(x, key, num_samples)
    log_p_units = getattr(self.prior, "unit_log_prob", None)
    kl_per_unit = None
    if log_q_units is not None and log_p_units is not None:
      kl_per_unit = log_q_units - log_p_units(z)
    return LogWeights(log_likelihood=self.likelihood(z, x, deterministic).log_prob(x),
                      log_prior=self.prior_log_prob(z), log_posterior=log_posterior, z=z,
                      kl_per_unit=kl_per_unit)

  def __call__(self, x, key, deterministic: bool = True):
    return self.log_weights(x, key, deterministic=deterministic)

  def posterior_mean(self, x, key, num_samples: int):
    """E_q[z|x], flattened to [batch, D]: exact for a Gaussian q, else a mean of samples."""
    if self.posterior_flow is None:
      mean = self.gaussian_posterior(x).mean()
    else:
      mean = jnp.mean(self.sample_posterior(x, key, num_samples)[0], axis=0)
    return mean.reshape(x.shape[0], -1)

  def generate(self, key, n: int):
    """Images for n prior samples z: E[x|z], or sequential samples for a PixelCNN head."""
    prior_key, image_key = jax.random.split(key)
    return self.decode(self.prior_sample(prior_key, n), image_key)

  def decode(self, z, key):
    """The images shown for latents z: E[x|z], or sequential samples for a PixelCNN head."""
    return self.head.images(self.decoder(z), key)

  def sample_images(self, z, key):
    """x ~ p(x|z)."""
    return self.head.sample(self.decoder(z), key)

  def reconstruct(self, x, key):
    """Images decoded from the mean of q(w|x), pushed through the posterior flow if any."""
    q, h = self._encode(x)
    return self.decode(self.flow_posterior(q.mean(), h)[0], key)

  def decompress(self, x, key):
    """x' ~ p(x|z) with z ~ q(z|x): VLAE's "decompression" (Chen et al. 2017, Fig. 1a)."""
    posterior_key, image_key = jax.random.split(key)
    z = self.sample_posterior(x, posterior_key, 1)[0][0]
    return self.sample_images(z, image_key)
