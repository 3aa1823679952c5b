"""A VAE with one latent vector: encoder, Gaussian posterior, prior and decoder.

Everything the bounds need is `log_weights`: per sample, log p(x|z), log p(z) and log q(z|x)
(`vae_jax.bounds` turns them into the ELBO, the IWAE bound and the IS log-likelihood).
"""
from typing import Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from vae_jax.distributions import DiagonalGaussian, bernoulli_image


class LogWeights(NamedTuple):
  """Each [num_samples, batch]: the parts of log w = log p(x|z) + log p(z) - log q(z|x)."""
  log_likelihood: jax.Array
  log_prior: jax.Array
  log_posterior: jax.Array


class VAE(nn.Module):
  """q(z|x) = N(mu(h(x)), exp(logstd(h(x)))), logstd clipped below at `min_logstd` (B.6)."""
  encoder: nn.Module
  decoder: nn.Module
  prior: nn.Module
  latent_dim: int
  min_logstd: float = -11.0
  likelihood: Callable = bernoulli_image

  def setup(self):
    self.posterior_loc = nn.Dense(self.latent_dim)
    self.posterior_logstd = nn.Dense(self.latent_dim)

  def posterior(self, x) -> DiagonalGaussian:
    h = self.encoder(x)
    log_scale = jnp.maximum(self.posterior_logstd(h), self.min_logstd)
    return DiagonalGaussian(self.posterior_loc(h), log_scale)

  def log_weights(self, x, key, num_samples: int = 1) -> LogWeights:
    z, log_posterior = self.posterior(x).sample_and_log_prob(seed=key, sample_shape=num_samples)
    return LogWeights(log_likelihood=self.likelihood(self.decoder(z)).log_prob(x),
                      log_prior=self.prior.log_prob(z), log_posterior=log_posterior)

  def __call__(self, x, key):
    return self.log_weights(x, key)

  def posterior_mean(self, x):
    return self.posterior(x).mean()

  def generate(self, key, n: int):
    """Mean images E[x|z] for n prior samples z."""
    return self.likelihood(self.decoder(self.prior.sample(key, n))).mean()

  def reconstruct(self, x):
    """Mean images E[x|z] at the posterior means of x."""
    return self.likelihood(self.decoder(self.posterior_mean(x))).mean()
