"""ELBO, IWAE bound and importance-sampled log-likelihood, in terms of per-sample log weights.

`log_weight` and the streaming `LogMeanExp` are what evaluation uses; `elbo` and `iwae_bound` are
the one-shot forms of the same quantities (training weights the KL part by beta, so it keeps the
parts apart).

log w = log p(x|z) + log p(z) - log q(z|x) with z ~ q(z|x). E[log w] is the ELBO; for L samples,
log (1/L) sum_j w_j is the IWAE bound, which grows with L towards log p(x) (Burda et al. 2016);
with L = 1000 it is the paper's test log-likelihood estimate (Xu et al. 2020, Appendix B.3).
"""
from typing import NamedTuple

import jax
import jax.numpy as jnp

from vae_jax.models import LogWeights


def log_weight(parts: LogWeights):
  return parts.log_likelihood + parts.log_prior - parts.log_posterior


def elbo(parts: LogWeights):
  return jnp.mean(log_weight(parts), axis=0)


def iwae_bound(parts: LogWeights):
  log_w = log_weight(parts)
  return jax.nn.logsumexp(log_w, axis=0) - jnp.log(log_w.shape[0])


class LogMeanExp(NamedTuple):
  """Running log mean exp over sample chunks: max-subtracted, so memory is one chunk."""
  max: jax.Array
  sum_exp: jax.Array
  count: jax.Array

  @classmethod
  def empty(cls, shape):
    return cls(jnp.full(shape, -jnp.inf), jnp.zeros(shape), jnp.zeros(()))

  def add(self, values):
    """Adds values [num_samples, ...]."""
    new_max = jnp.maximum(self.max, jnp.max(values, axis=0))
    rescaled = jnp.where(jnp.isneginf(self.max), 0.0, self.sum_exp * jnp.exp(self.max - new_max))
    return LogMeanExp(new_max, rescaled + jnp.sum(jnp.exp(values - new_max), axis=0),
                      self.count + values.shape[0])

  def value(self):
    return self.max + jnp.log(self.sum_exp) - jnp.log(self.count)
