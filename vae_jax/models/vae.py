"""A VAE with one latent variable: encoder, posterior (Gaussian, optionally a RealNVP on top), prior,
decoder and likelihood head (Xu et al. 2020, Section 3 and Appendix B.2).

Everything the bounds need is `log_weights`: per sample, log p(x|z), log p(z) and log q(z|x)
(`vae_jax.bounds` turns them into the ELBO, the IWAE bound and the IS log-likelihood).
"""
import math
from typing import NamedTuple, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from vae_jax.distributions import DiagonalGaussian


class LogWeights(NamedTuple):
  """Each [num_samples, batch]: the parts of log w = log p(x|z) + log p(z) - log q(z|x).

  `z` holds the samples themselves, [num_samples, batch, *latent_shape], for regularizers and
  latent statistics.
  """
  log_likelihood: jax.Array
  log_prior: jax.Array
  log_posterior: jax.Array
  z: jax.Array


class VAE(nn.Module):
  """q(z|x) = N(mu(h(x)), std(h(x))) pushed through `posterior_flow` when given (Eq. B.1)."""
  encoder: nn.Module
  decoder: nn.Module
  head: nn.Module  # features (and x) -> p(x|z), see heads.py
  prior: nn.Module
  latent_shape: Sequence[int]
  min_logstd: float = -11.0
  posterior_flow: Optional[nn.Module] = None  # a RealNVP f: w -> z

  def setup(self):
    # Linear[D] heads for latent vectors (B.2), LinearConv1x1 heads for latent tensors (B.5).
    if len(self.latent_shape) == 1:
      linear = lambda: nn.Dense(self.latent_shape[0])
    else:
      linear = lambda: nn.Conv(self.latent_shape[-1], (1, 1))
    self.posterior_loc = linear()
    self.posterior_logstd = linear()

  @property
  def latent_groups(self) -> dict:
    """Named latent variables -> their columns in `posterior_mean`, for active units."""
    return {"z": slice(0, math.prod(self.latent_shape))}

  def gaussian_posterior(self, x) -> DiagonalGaussian:
    """N(mu(h), exp(max(logstd(h), min_logstd))): the log-std clip of B.6."""
    h = self.encoder(x)
    log_scale = jnp.maximum(self.posterior_logstd(h), self.min_logstd)
    return DiagonalGaussian(self.posterior_loc(h), log_scale, event_ndims=len(self.latent_shape))

  def sample_posterior(self, x, key, num_samples: int):
    """z ~ q(z|x) and log q(z|x), each with a leading sample axis."""
    w, log_q = self.gaussian_posterior(x).sample_and_log_prob(seed=key, sample_shape=num_samples)
    z, log_det = self.flow_posterior(w)
    # log q(z|x) = log q(w|x) - log|det df/dw| (Eq. B.1).
    return z, log_q - log_det

  def flow_posterior(self, w):
    """z = f(w) and log|det df/dw| for Gaussian samples w: the posterior flow, if any.

    The flow does not depend on x, so log q(z|x) = log N(f^-1(z); mu(x), std(x)) + log|det
    df^-1/dz| for every x at once (`unflow_posterior`); the analyses of aggregated posteriors
    rely on this."""
    if self.posterior_flow is None:
      return w, jnp.zeros(w.shape[:w.ndim - len(self.latent_shape)])
    return self.posterior_flow(w).forward_and_log_det(w)

  def unflow_posterior(self, z):
    """w = f^-1(z) and log|det df^-1/dz|."""
    if self.posterior_flow is None:
      return z, jnp.zeros(z.shape[:z.ndim - len(self.latent_shape)])
    return self.posterior_flow(z).inverse_and_log_det(z)

  def likelihood(self, z, x, deterministic: bool = True):
    return self.head(self.decoder(z), x, deterministic)

  def log_weights(self, x, key, num_samples: int = 1, deterministic: bool = True) -> LogWeights:
    z, log_posterior = self.sample_posterior(x, key, num_samples)
    return LogWeights(log_likelihood=self.likelihood(z, x, deterministic).log_prob(x),
                      log_prior=self.prior.log_prob(z), log_posterior=log_posterior, z=z)

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
    return self.decode(self.prior.sample(prior_key, n), image_key)

  def decode(self, z, key):
    """The images shown for latents z: E[x|z], or sequential samples for a PixelCNN head."""
    return self.head.images(self.decoder(z), key)

  def sample_images(self, z, key):
    """x ~ p(x|z)."""
    return self.head.sample(self.decoder(z), key)

  def reconstruct(self, x, key):
    """Images decoded from the mean of q(w|x), pushed through the posterior flow if any."""
    z = self.flow_posterior(self.gaussian_posterior(x).mean())[0]
    return self.decode(z, key)
