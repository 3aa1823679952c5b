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

from vae_jax.models.base import LogWeights


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


FREE_BITS_GROUPS = ("dimension", "channel", "all")


def free_bits_kl(kl_per_unit, threshold: float, groups: str = "dimension"):
  """sum_j max(lambda, E_batch[KL_j]): the KL term of the free-bits objective (Kingma et al.
  2016, Eq. 15), to subtract from E[log p(x|z)].

  Args:
    kl_per_unit: [batch, *latent_shape], each latent unit's KL estimate per example (for a
      factorised q and p: log q(z_k|x) - log p(z_k) at a sample).
    threshold: lambda, in nats per group.
    groups: "dimension" (each unit), "channel" (each feature map: all but the last latent axis
      summed, IAF Appendix C) or "all" (one group; VLAE's 0.01 nats per data dimension is this
      with threshold = 0.01 * number of data dimensions).

  A group whose batch-mean KL is below lambda contributes the constant lambda: no gradient
  pushes its information further down.
  """
  if groups not in FREE_BITS_GROUPS:
    raise ValueError(f"free bits groups={groups!r}; valid: {', '.join(FREE_BITS_GROUPS)}.")
  latent_axes = tuple(range(1, kl_per_unit.ndim))
  if groups == "all":
    per_group = jnp.sum(kl_per_unit, latent_axes)[:, None]
  elif groups == "channel":
    per_group = jnp.sum(kl_per_unit, latent_axes[:-1]) if len(latent_axes) > 1 else kl_per_unit
  else:
    per_group = kl_per_unit.reshape(kl_per_unit.shape[0], -1)
  return jnp.sum(jnp.maximum(threshold, jnp.mean(per_group, 0)))
