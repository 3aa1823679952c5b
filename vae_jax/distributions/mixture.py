"""Mixtures of diagonal Gaussians with shared event size: the MoG prior and the VampPrior
(Tomczak & Welling 2018, Eq. 9 and Section 4), whose components are the encoder's posteriors of
K pseudo-inputs.
"""
import math

import jax
import jax.numpy as jnp

from vae_jax.distributions.gaussian import _HALF_LOG_TWO_PI
# Rows of z evaluated against all K components at once: the [rows, K, D] block of differences
# stays near 16 MiB however many samples the importance-sampled NLL draws.
_BLOCK_ELEMENTS = 4 * 2**20


def mixture_log_prob(z, loc, log_scale, log_weights):
  """log sum_k w_k N(z; loc_k, diag exp(log_scale_k)^2) for z [..., D]; -> [...].

  loc, log_scale: [K, D]; log_weights: [K], normalised (log_softmax or -log K).
  The squared distances come from the differences themselves rather than the expanded square
  z^2/s^2 - 2 z m/s^2 + m^2/s^2, which cancels badly in float32 for small component scales;
  the cost, [rows, K, D] per block, is small next to encoding the K pseudo-inputs.
  """
  num_components, dim = loc.shape
  rows = z.reshape(-1, dim)
  inverse_scale = jnp.exp(-log_scale)
  # log w_k - sum_d (log s_kd + log sqrt(2 pi)): the part of each component's log-density
  # that does not depend on z.
  offset = log_weights - jnp.sum(log_scale + _HALF_LOG_TWO_PI, -1)

  def row_log_prob(row):
    scaled = (row - loc) * inverse_scale
    return jax.nn.logsumexp(offset - 0.5 * jnp.sum(jnp.square(scaled), -1))

  block_rows = max(1, _BLOCK_ELEMENTS // (num_components * dim))
  if rows.shape[0] <= block_rows:
    out = jax.vmap(row_log_prob)(rows)
  else:
    out = jax.lax.map(row_log_prob, rows, batch_size=block_rows)
  return out.reshape(z.shape[:-1])


def mixture_sample(key, n: int, loc, log_scale, log_weights):
  """n draws [n, D]: a component k ~ Categorical(w), then z ~ N(loc_k, exp(log_scale_k)^2)."""
  component_key, noise_key = jax.random.split(key)
  k = jax.random.categorical(component_key, log_weights, shape=(n,))
  noise = jax.random.normal(noise_key, (n, loc.shape[-1]), loc.dtype)
  return loc[k] + jnp.exp(log_scale[k]) * noise


def uniform_log_weights(num_components: int):
  """log (1/K) for each of K components: the paper's unweighted mixtures (Eq. 9)."""
  return jnp.full((num_components,), -math.log(num_components))
