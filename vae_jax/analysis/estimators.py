"""The estimators behind the analyses of Xu et al. (2020), Sections 4-5 and Appendices B.4, B.8, B.14.

All work on whole arrays: jitted, in fixed-size chunks under `lax.map`/`lax.scan`, never a Python
loop per example. Chunks are padded (wrap-around) to full size and the padding is dropped or
masked, so any number of points works.

The models they take are one-latent VAEs (`vae_jax.models.VAE`): q(z|x) is N(w; mu(x), std(x))
pushed through a posterior flow f that does not depend on x (Eq. B.1), so
log q(z|x) = log N(f^-1(z); mu(x), std(x)) + log|det df^-1/dz| for all x at once. Posteriors are
summarised by their Gaussian parameters (`encode`); samples and densities follow from those.
"""
import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from vae_jax.data import batching

_HALF_LOG_TWO_PI = 0.5 * math.log(2 * math.pi)


def map_chunks(fn, arrays, chunk: int):
  """fn over the leading axis of `arrays` (a tuple), `chunk` rows at a time; rows as given.

  The last chunk wraps around to the first rows, and those extra rows are dropped.
  """
  n = arrays[0].shape[0]
  chunk = min(chunk, n)
  num_chunks = -(-n // chunk)
  index = jnp.arange(num_chunks * chunk) % n
  chunked = tuple(a[index].reshape((num_chunks, chunk) + a.shape[1:]) for a in arrays)
  out = jax.lax.map(lambda c: fn(*c), chunked)
  return jax.tree_util.tree_map(lambda o: o.reshape((-1,) + o.shape[2:])[:n], out)


def require_one_latent_vae(model) -> None:
  if not model.has_flow_posterior:
    raise ValueError(f"This analysis needs a VAE with one latent variable (Gaussian q(z|x), "
                     f"optionally with a posterior flow); {type(model).__name__} has "
                     f"{len(model.latent_groups)} latent variables.")
  if model.flow_depends_on_x:
    raise ValueError("This analysis maps Gaussian samples w through the posterior flow for many x "
                     "at once, which needs an x-independent flow; the IAF posterior depends on "
                     "x through its context h(x). Use a Gaussian or RealNVP posterior.")


class Posteriors(NamedTuple):
  """Gaussian parameters of q(w|x) for a set of points, each [N, D] (latents flattened)."""
  loc: jax.Array
  log_scale: jax.Array


@functools.partial(jax.jit, static_argnums=(0, 3, 5))
def encode(model, params, images, encoding: str, key, chunk: int = 500) -> Posteriors:
  """q(w|x) of each image (uint8, binarized per `encoding` with `key`)."""
  def one_chunk(index, batch):
    x = batching.model_input(jax.random.fold_in(key, index[0]), batch, encoding)
    q = model.apply({"params": params}, x, method="gaussian_posterior")
    return q.loc.reshape(x.shape[0], -1), q.log_scale.reshape(x.shape[0], -1)
  return Posteriors(*map_chunks(one_chunk, (jnp.arange(images.shape[0]), images), chunk))


def _gaussian_samples(posteriors: Posteriors, key, num_samples: int):
  """w ~ q(w|x) for each point, and the standard-normal noise behind it: [num_samples, N, D]."""
  noise = jax.random.normal(key, (num_samples,) + posteriors.loc.shape)
  return posteriors.loc + jnp.exp(posteriors.log_scale) * noise, noise


def posterior_samples(model, params, posteriors: Posteriors, key, num_samples: int):
  """z ~ q(z|x) for each point: [num_samples, N, D]."""
  w, _ = _gaussian_samples(posteriors, key, num_samples)
  z = model.apply({"params": params}, w.reshape(w.shape[:2] + tuple(model.latent_shape)),
                  method="flow_posterior")[0]
  return z.reshape(w.shape)


@functools.partial(jax.jit, static_argnums=(0, 4, 5))
def posterior_moments(model, params, posteriors: Posteriors, key, num_samples: int,
                      chunk: int = 100):
  """(E_q[z|x], Std_q[z_k|x]) per point and dimension, each [N, D].

  Exact for a Gaussian posterior; with a posterior flow, from `num_samples` samples per point.
  """
  if model.posterior_flow is None:
    return posteriors.loc, jnp.exp(posteriors.log_scale)

  def one_chunk(index, loc, log_scale):
    z = posterior_samples(model, params, Posteriors(loc, log_scale),
                          jax.random.fold_in(key, index[0]), num_samples)
    return jnp.mean(z, 0), jnp.std(z, 0)
  n = posteriors.loc.shape[0]
  return map_chunks(one_chunk, (jnp.arange(n),) + tuple(posteriors), chunk)


@functools.partial(jax.jit, static_argnums=(3,))
def nearest_neighbours(queries, keys, exclude=None, chunk: int = 256):
  """For each query row, the index of the nearest `keys` row in L2 and its distance.

  `exclude` [M] optionally names, per query, one key row that is not a candidate (the query
  itself, when queries are drawn from keys). Squared distances come from one matmul per chunk;
  the winner's distance is then recomputed directly, free of the matmul form's cancellation.
  """
  key_norms = jnp.sum(jnp.square(keys), -1)
  if exclude is None:
    exclude = jnp.full(queries.shape[:1], -1)

  def one_chunk(q, excluded):
    # Full float32 matmul: TF32 (the GPU default) would blur the gaps between candidates.
    cross = jnp.matmul(q, keys.T, precision=jax.lax.Precision.HIGHEST)
    squared = jnp.sum(jnp.square(q), -1, keepdims=True) - 2 * cross + key_norms
    squared = jnp.where(excluded[:, None] == jnp.arange(keys.shape[0]), jnp.inf, squared)
    nearest = jnp.argmin(squared, -1)
    return nearest, jnp.linalg.norm(q - keys[nearest], axis=-1)
  return map_chunks(one_chunk, (queries, exclude), chunk)


@functools.partial(jax.jit, static_argnums=(0, 5, 6))
def directional_std(model, params, posteriors: Posteriors, directions, key, num_samples: int,
                    chunk: int = 100):
  """Std[i; d_i] of Eq. B.4: the std of (z - E z) . d_i / |d_i| under z ~ q(z|x_i), [N].

  Monte Carlo with `num_samples` samples per point (1,000 in B.4).
  """
  def one_chunk(index, loc, log_scale, direction):
    z = posterior_samples(model, params, Posteriors(loc, log_scale),
                          jax.random.fold_in(key, index[0]), num_samples)
    norm = jnp.linalg.norm(direction, axis=-1, keepdims=True)
    unit = direction / jnp.where(norm > 0, norm, 1.0)  # d = 0 (identical centres): std 0
    return jnp.std(jnp.sum(z * unit, -1), axis=0)
  n = posteriors.loc.shape[0]
  return map_chunks(one_chunk, (jnp.arange(n),) + tuple(posteriors) + (directions,), chunk)


class Overlap(NamedTuple):
  """Closest pairs of posteriors (B.4), one row per query point i."""
  neighbour: jax.Array  # j: argmin_{j != i} |mu(x_j) - mu(x_i)|
  distance: jax.Array  # d_ij
  normalized_distance: jax.Array  # 2 d_ij / (Std[i; j] + Std[j; i]) (Eq. B.3)
  std_i: jax.Array  # Std[i; j]
  std_j: jax.Array  # Std[j; i]


def posterior_overlap(model, params, posteriors: Posteriors, centres, num_queries: int, key,
                      num_samples: int) -> Overlap:
  """B.4 for the first `num_queries` points, searching neighbours among all of them.

  `centres` are the posterior means E_q[z|x] (`posterior_moments`).
  """
  queries = centres[:num_queries]
  neighbour, distance = nearest_neighbours(queries, centres, jnp.arange(num_queries))
  direction = centres[neighbour] - queries  # d_ij = mu(x_j) - mu(x_i)
  own = Posteriors(*(p[:num_queries] for p in posteriors))
  other = Posteriors(*(p[neighbour] for p in posteriors))
  key_i, key_j = jax.random.split(key)
  # Std[j; i] projects on d_ji = -d_ij: the same std as on d_ij.
  std_i = directional_std(model, params, own, direction, key_i, num_samples)
  std_j = directional_std(model, params, other, direction, key_j, num_samples)
  # Identical centres (duplicate images, a collapsed encoder) overlap completely: distance 0.
  normalized = jnp.where(distance > 0, 2 * distance / (std_i + std_j), 0.0)
  return Overlap(neighbour, distance, normalized, std_i, std_j)


def _gaussian_log_density(w, posteriors: Posteriors):
  """log N(w_m; loc_n, std_n) for every pair: [M, N], from the differences themselves (no
  expanded square, which cancels badly for stds near exp(-11))."""
  scaled = (w[:, None, :] - posteriors.loc[None]) * jnp.exp(-posteriors.log_scale)[None]
  return -0.5 * jnp.sum(jnp.square(scaled), -1) - jnp.sum(
      posteriors.log_scale + _HALF_LOG_TWO_PI, -1)[None]


@functools.partial(jax.jit, static_argnums=(2, 3))
def log_mixture_density(w, posteriors: Posteriors, w_chunk: int = 256, component_chunk: int = 2048):
  """log (1/N) sum_n N(w_m; loc_n, std_n) for each row of w [M, D]: [M].

  Streams over components in chunks with a running max-subtracted sum, so memory is one
  [w_chunk, component_chunk, D] block whatever M and N are.
  """
  n = posteriors.loc.shape[0]
  component_chunk = min(component_chunk, n)
  num_chunks = -(-n // component_chunk)
  index = jnp.arange(num_chunks * component_chunk)
  valid = (index < n).reshape(num_chunks, component_chunk)
  chunked = Posteriors(*(p[index % n].reshape((num_chunks, component_chunk) + p.shape[1:])
                         for p in posteriors))

  def for_w_chunk(w_rows):
    def add(carry, block):
      running_max, sum_exp = carry
      components, mask = block
      log_density = jnp.where(mask[None], _gaussian_log_density(w_rows, components), -jnp.inf)
      new_max = jnp.maximum(running_max, jnp.max(log_density, -1))
      sum_exp = sum_exp * jnp.exp(running_max - new_max) + jnp.sum(
          jnp.exp(log_density - new_max[:, None]), -1)
      return (new_max, sum_exp), None
    init = (jnp.full(w_rows.shape[:1], -jnp.inf), jnp.zeros(w_rows.shape[:1]))
    # The first block always has a valid component, so running_max is finite from then on.
    (running_max, sum_exp), _ = jax.lax.scan(add, init, (chunked, valid))
    return running_max + jnp.log(sum_exp) - jnp.log(n)
  return map_chunks(for_w_chunk, (w,), w_chunk)


def _prior_log_prob(module, z):
  return module.prior_log_prob(z)


def _prior_sample(module, key, n):
  return module.prior_sample(key, n)


@functools.partial(jax.jit, static_argnums=(0, 2, 4))
def map_latents(model, params, method, z, chunk: int = 1024):
  """model.apply(params, z_chunk, method=method) over the rows of z, `chunk` at a time."""
  return map_chunks(lambda rows: model.apply({"params": params}, rows, method=method), (z,), chunk)


def prior_log_prob(model, params, z):
  """log p(z) for each row of z [M, *latent_shape]."""
  return map_latents(model, params, _prior_log_prob, z)


@functools.partial(jax.jit, static_argnums=(0, 3))
def prior_sample(model, params, key, n: int):
  return model.apply({"params": params}, key, n, method=_prior_sample)


def aggregate_log_posterior(model, params, z, posteriors: Posteriors):
  """log q(z) = log (1/N) sum_n q(z|x_n) for each z [M, *latent_shape], the aggregated
  posterior over the N points of `posteriors` (Monte Carlo over the data, as Rosca et al. 2018)."""
  w, log_det = map_latents(model, params, "unflow_posterior", z)
  return log_mixture_density(w.reshape(w.shape[0], -1), posteriors) + log_det


def aggregate_kl(model, params, images, encoding: str, key, num_binarizations: int,
                 num_z: int) -> dict:
  """D_KL(q(z) || p(z)) by Algorithm B.2 (Xu et al. 2020, B.8), vectorised.

  x_samples: `num_binarizations` (n_x) draws of every image; for each x, `num_z` (n_z) draws
  z ~ q(z|x); log q(z) is the log-mean-exp of log q(z|x') over all x' in x_samples; the estimate
  is the mean of log q(z) - log p(z).

  The paper's caveat (Table B.5): the estimate falls as n_x grows (15.28 at n_x = 1 to 13.39 at
  8 on MNIST), so they did not use it. The reason shows in the decomposition returned here:
  KL(q(z) || p(z)) = E KL(q(z|x) || p(z)) - I(x; z), and the Monte Carlo mutual information
  E[log q(z|x) - log q(z)] can never exceed log(N n_x), the log of the number of x' in the mixture.
  When posteriors of different x barely overlap, the estimate sits at that ceiling, and each
  doubling of n_x takes log 2 nats off the KL: the quantity estimated is a property of the sample,
  not of q(z). We report `mutual_information` and its ceiling `log_num_x_samples` beside the KL.
  """
  require_one_latent_vae(model)
  n = images.shape[0]
  all_images = jnp.tile(images, (num_binarizations,) + (1,) * (images.ndim - 1))
  posteriors = encode(model, params, all_images, encoding, key)  # each tile binarized anew
  # w ~ q(w|x), then z = f(w): row r of the flattened [n_z, N n_x] samples belongs to x_(r % N n_x).
  w, noise = _gaussian_samples(posteriors, jax.random.fold_in(key, 1), num_z)
  w = w.reshape((-1,) + tuple(model.latent_shape))
  z, log_det_forward = map_latents(model, params, "flow_posterior", w)
  # log q(z|x) of its own x: log N(w; mu, std) - log|det df/dw| (the noise is the scaled offset).
  log_q_conditional = (jnp.sum(-0.5 * jnp.square(noise) - posteriors.log_scale - _HALF_LOG_TWO_PI,
                               -1).reshape(-1) - log_det_forward)
  # log q(z) = log (1/N) sum_n N(w; mu_n, std_n) - log|det df/dw|: the same w, no inverse pass.
  log_q_marginal = (log_mixture_density(w.reshape(w.shape[0], -1), posteriors)
                    - log_det_forward)
  log_p = prior_log_prob(model, params, z)
  return {"aggregated_posterior_kl": float(jnp.mean(log_q_marginal - log_p)),
          "posterior_prior_kl": float(jnp.mean(log_q_conditional - log_p)),
          "mutual_information": float(jnp.mean(log_q_conditional - log_q_marginal)),
          "log_num_x_samples": math.log(n * num_binarizations),
          "num_images": n, "n_x": num_binarizations, "n_z": num_z}


def low_posterior_samples(model, params, posteriors: Posteriors, key, num_candidates: int,
                          num_kept: int):
  """Rosca et al. (2018) as in B.14: `num_candidates` z ~ p(z), ranked by the Monte Carlo
  log q(z) over `posteriors`; the `num_kept` lowest, with their log q(z), lowest first."""
  require_one_latent_vae(model)
  z = prior_sample(model, params, key, num_candidates)
  log_q = aggregate_log_posterior(model, params, z, posteriors)
  order = jnp.argsort(log_q)[:num_kept]
  return z[order], log_q[order]


def interpolate(start, end, num_steps: int):
  """Points (1 - t) start + t end for t = 0 .. 1 in `num_steps` steps: [num_steps, *shape]."""
  t = jnp.linspace(0.0, 1.0, num_steps).reshape((-1,) + (1,) * start.ndim)
  return (1 - t) * start + t * end
