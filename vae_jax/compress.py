"""Lossless image compression with a trained VAE: bits-back ANS (Townsend et al. 2019; issue #21).

  python -m vae_jax.compress --workdir=W --input=test --output=test.vaez
  python -m vae_jax.compress --workdir=W --input=images.npy --output=images.vaez
  python -m vae_jax.compress --workdir=W --decompress --input=images.vaez --output=restored.npy

`--input=test` is the workdir's test set exactly as `vae_jax.evaluate` sees it (dynamically
binarized sets: the binarized copies, `--test_binarizations` of them); otherwise a uint8 .npy of
shape (N, H, W) or (N, H, W, C) in the model's pixel format (0/1 or 0..255). Each output gets
`<output>.json` beside it: images, bytes, bits/dim, the model's negative ELBO on the same images,
the initial-bits overhead and images/s.

How a batch of images x is coded (constriction's ANS stack does the entropy coding):
  encode: pop latent bins from q(z|x), push x under p(x|z), push the bins under p(z);
  decode: pop the bins under p(z), pop x under p(x|z), push the bins back under q(z|x).
The net cost is -log p(x|z) - log P(bins) + log Q(bins): the negative ELBO of the discretized
latents. Latents live on a fixed grid of 2^k bins per dimension, of equal mass under a reference
marginal: N(0, 1) for the standard prior (every bin has mass 2^-k exactly), and each dimension's
marginal of a mixture prior (MoG, VampPrior), whose conditionals P(bin_i | bins_<i) are exact 1-D
mixtures. A RealNVP prior p(z) = N(f(z); 0, I) |det df/dz| does not factorize in z, so z is
pushed by local bits-back coding (Ho et al. 2019, `FlowCoding`): pop y ~ N(f(z), s^2 J J^T), push
z ~ N(f^-1(y), s^2 I), push y ~ N(0, I), on fine uniform grids in z and y; for a small s the net
cost is -log p(z), so the code still costs the model's own negative ELBO.

Decoding must compute bit-identical probabilities: both directions call the same jitted functions
on arrays of the same shapes (a batch of fewer images is padded to the batch size), and the
sequential conditionals mask the dimensions not yet known inside the jitted function, so the
encoder (which knows them) and the decoder (which does not yet) feed it identical inputs. A file
records fingerprints of the model, the code and the device, and decompression refuses others.
"""
import dataclasses
import functools
import glob
import hashlib
from importlib import metadata
import io
import json
import math
import os
import struct
import tempfile
import time
from typing import Callable, Optional

from absl import flags
import constriction
import jax
import jax.numpy as jnp
import numpy as np
import scipy.special

from vae_jax import checkpoints, configuration, priors
from vae_jax.data import batching
from vae_jax.distributions.discretized_logistic import log_prob_per_subpixel
from vae_jax.evaluate import bits_per_dim, make_bound_estimator
from vae_jax.metric_writer import write_json_atomically
from vae_jax.models import heads
from vae_jax.models.vae import VAE
from vae_jax.runs import setup_run, workdir_config
from vae_jax.train_state import current_params, make_optimizer, restore_train_state

MAGIC = b"VAEZ"
FORMAT_VERSION = 1
TEST_SET = "test"
_MAX_TABLE_ENTRIES = 2**25  # float32s in one batch's latent probability table (128 MB)
DEFAULT_LATENT_BITS = 12  # constriction floors every bin at ~2^-24: 2^16 bins would cost bits
# constriction quantizes probabilities to 24 bits, so popping one symbol takes at most 24 bits
# from the stack: a batch is popped only when the stack holds that many bits per latent.
_MAX_BITS_PER_POP = 24
_INITIAL_WORDS_SEED = 0x5EED
_LOG_MASS_FLOOR = -1e4  # keeps mixture weights finite where a bin has no mass under a component
_GRID_POINTS = 8193  # points per dimension for inverting a mixture marginal's CDF
# A RealNVP prior's latents (local bits-back coding, below) live on a uniform grid of
# 2^_FLOW_GRID_BITS bins over [-_FLOW_GRID_RANGE, _FLOW_GRID_RANGE) in z and in y = f(z) (steps
# of 0.002), and the coding noise's std is _FLOW_NOISE_BINS steps of z. Chosen on 1,000 MNIST
# test images of a DenseVAE with the RealNVP prior K=20 (results/README.md, issue #21): code
# length / -ELBO 1.0078 at (14, 8, 6); 1.0085 at (15, 16, 4); 1.0216 at (13, 8, 8); 1.0538 at
# (13, 16, 8): a coarser grid or more noise linearizes f over too wide a region.
_FLOW_GRID_BITS = 14
_FLOW_GRID_RANGE = 16.0
_FLOW_NOISE_BINS = 8
# Symbols popped from fresh bits (q(z|x), and y | z) are drawn within a window of their Gaussian's
# mean of _FLOW_WINDOW_STDS standard deviations (the largest in the call), rounded up to a power
# of two: constriction's floor of 2^-24 per symbol would otherwise put 2^-10 of the draws anywhere
# on the grid, and a y far from f(z) costs hundreds of bits when z is pushed back (the ratio
# above was 1.047 with whole-grid draws, 1.033 with a window of 8 standard deviations).
_FLOW_WINDOW_STDS = 6
# What the probabilities depend on, for the code fingerprint.
_CODE_PACKAGES = ("models", "priors", "distributions", "flows", "nets")
_CODE_LIBRARIES = ("jax", "jaxlib", "flax", "distrax", "numpy", "scipy", "constriction")

_CATEGORICAL = constriction.stream.model.Categorical(perfect=False)
_BERNOULLI = constriction.stream.model.Bernoulli(perfect=False)


class CompressionError(configuration.ConfigError):
  """A model, input or file the compressor cannot use; one line and exit status 2 at the CLI."""


# ----------------------------------------------------------------------------------------------
# Which models: a one-latent VAE with a Gaussian posterior and a factorized pixel likelihood.

_PRIOR_KINDS = {priors.StandardNormalPrior: "standard", priors.RealNVPPrior: "realnvp",
                priors.MixtureOfGaussiansPrior: "mixture", priors.VampPrior: "mixture"}
_LIKELIHOOD_KINDS = {heads.BernoulliHead: "bernoulli", heads.DiscretizedLogisticHead: "logistic"}


def unsupported_reason(model) -> Optional[str]:
  """Why bits-back coding does not support `model`, or None when it does."""
  if not isinstance(model, VAE):
    return (f"{type(model).__name__} has several stochastic layers; compression supports "
            "one-latent VAEs (config.model.name='vae')")
  if model.posterior_flow is not None:
    return ("flow posteriors (RealNVP, IAF) are not supported: q(z|x) must be Gaussian "
            "(config.model.posterior.name='gaussian')")
  if type(model.head) not in _LIKELIHOOD_KINDS:
    return (f"the {type(model.head).__name__} likelihood is autoregressive; compression supports "
            "the Bernoulli and discretized logistic heads")
  if type(model.prior) not in _PRIOR_KINDS:
    return (f"the {type(model.prior).__name__} is not supported; priors: standard, realnvp, "
            "mog, vampprior")
  if isinstance(model.prior, priors.RealNVPPrior) and len(model.latent_shape) != 1:
    return "a RealNVP prior over a latent tensor is not supported (latent vectors only)"
  return None


# ----------------------------------------------------------------------------------------------
# Bin probabilities, in JAX (jitted by `Codec`).

def bin_masses(t):
  """Masses of the bins between standardized edges t [..., n + 1] (increasing) under N(0, 1);
  bins above the mode from upper tails, so that tail bins do not cancel to zero in float32.
  One ndtr per edge (the smaller tail): ndtr is most of the cost of coding."""
  tail = jax.scipy.special.ndtr(-jnp.abs(t))
  cdf, sf = jnp.where(t < 0, tail, 1.0 - tail), jnp.where(t < 0, 1.0 - tail, tail)
  upper = t[..., :-1] + t[..., 1:] > 0
  return jnp.where(upper, sf[..., :-1] - sf[..., 1:], cdf[..., 1:] - cdf[..., :-1])


def log_interval_mass(lo, hi):
  """log of the N(0, 1) mass of [lo, hi], lo <= hi, computed on the lower side by symmetry."""
  upper = lo + hi > 0
  a, b = jnp.where(upper, -hi, lo), jnp.where(upper, -lo, hi)
  log_a, log_b = jax.scipy.special.log_ndtr(a), jax.scipy.special.log_ndtr(b)
  return log_b + jnp.log1p(-jnp.exp(log_a - log_b))


def gaussian_bin_probs(edges, loc, log_scale):
  """Bin masses [..., D, n] of N(loc, exp(log_scale)) [..., D] on per-dimension edges [D, n+1]."""
  return bin_masses((edges - loc[..., None]) * jnp.exp(-log_scale)[..., None])


def take_per_dim(table, bins):
  """table [D, n] at bins [B, D] -> [B, D]: each dimension's entry of its bin."""
  return table[jnp.arange(table.shape[0]), bins]


def mixture_conditional_probs(components, edges, bins, i):
  """P(bin_i | bins_<i) [B, n] of a mixture of diagonal Gaussians, exactly: the components'
  masses of bin i weighted by w_k ∝ pi_k prod_{j<i} P_k(bin_j). Bins from i on are masked here,
  so the encoder (which knows them) and the decoder (which does not yet) get identical numbers."""
  loc, log_scale, log_weights = components  # [K, D], [K, D], [K]
  known = jnp.arange(loc.shape[1]) < i
  bins = jnp.where(known, bins, 0)
  inverse_scale = jnp.exp(-log_scale)
  standardized = lambda e: (e[:, None, :] - loc) * inverse_scale  # [B, K, D]
  log_mass = log_interval_mass(standardized(take_per_dim(edges[:, :-1], bins)),
                               standardized(take_per_dim(edges[:, 1:], bins)))
  log_mass = jnp.where(known, jnp.maximum(log_mass, _LOG_MASS_FLOOR), 0.0)
  weights = jax.nn.softmax(log_weights + jnp.sum(log_mass, -1), -1)  # [B, K]
  component_masses = bin_masses((edges[i] - loc[:, i, None]) * inverse_scale[:, i, None])
  return jnp.matmul(weights, component_masses, precision=jax.lax.Precision.HIGHEST)


def flow_linearization(flow_forward, z, noise: float):
  """(f(z) [B, D], L [B, D, D]): y = f(z) and the Cholesky factor of noise^2 J J^T, J = df/dz
  at z: the covariance of f(z + noise * e), e ~ N(0, I), to first order. L comes from the QR
  decomposition J^T = Q R (J J^T = R^T R), which float32 keeps accurate where a Cholesky
  decomposition of J J^T (condition number squared) fails."""
  one = lambda v: flow_forward(v[None])[0]
  jacobian = jax.vmap(jax.jacfwd(one))(z)
  r = jnp.linalg.qr(jnp.swapaxes(jacobian, -1, -2), mode="r")
  sign = jnp.sign(jnp.diagonal(r, axis1=-2, axis2=-1))
  return flow_forward(z), noise * jnp.swapaxes(r * sign[..., :, None], -1, -2)


def gaussian_conditional(mean, cholesky, y, i):
  """(loc [B], scale [B]) of y_i | y_<i under N(mean, L L^T): y_i = mean_i + sum_{j<=i} L_ij e_j
  with e = L^-1 (y - mean). y from i on is masked, so the encoder (which knows it) and the
  decoder (which does not yet) compute identical numbers."""
  known = jnp.arange(mean.shape[1]) < i
  residual = jnp.where(known, y - mean, 0.0)
  eps = jax.lax.linalg.triangular_solve(cholesky, residual[..., None], left_side=True,
                                        lower=True)[..., 0]
  row = cholesky[:, i, :]
  return mean[:, i] + jnp.sum(jnp.where(known, row * eps, 0.0), -1), row[:, i]


def likelihood_table(distribution, kind: str):
  """p(x|z) per sub-pixel: P(1) [B, HWC] (Bernoulli), or the 256 values' masses [B, HWC, 256]
  from the library's own discretized logistic (so the coded probabilities are the model's)."""
  if kind == "bernoulli":
    logits = distribution.distribution.logits
    return jax.nn.sigmoid(logits.reshape(logits.shape[0], -1))
  loc, log_scale = distribution.loc, distribution.log_scale
  values = jnp.arange(256, dtype=jnp.float32) / 255.0  # batching.model_input's 8-bit grid
  flat = lambda a: a.reshape(a.shape[0], -1, 1)
  return jnp.exp(log_prob_per_subpixel(values, flat(loc), flat(log_scale)))


# ----------------------------------------------------------------------------------------------
# Latent grids (host, float64, deterministic).

def standard_normal_grid(latent_bits: int):
  """(edges [n + 1], centres [n]) of n = 2^k bins of mass 1/n under N(0, 1)."""
  n = 2**latent_bits
  edges = scipy.special.ndtri(np.arange(n + 1) / n)  # -inf ... inf
  return edges, scipy.special.ndtri((np.arange(n) + 0.5) / n)


def _inverse_cdf(cdf, points, targets):
  """x with cdf(x) = target, interpolated linearly on a tabulated non-decreasing cdf."""
  upper = np.clip(np.searchsorted(cdf, targets), 1, len(cdf) - 1)
  lower = upper - 1
  span = cdf[upper] - cdf[lower]
  fraction = np.where(span > 0, (targets - cdf[lower]) / np.where(span > 0, span, 1.0), 0.5)
  return points[lower] + np.clip(fraction, 0.0, 1.0) * (points[upper] - points[lower])


def mixture_marginal_grid(loc, log_scale, log_weights, latent_bits: int):
  """(edges [D, n + 1], centres [D, n]): bins of (nearly) equal mass under each dimension's
  marginal of the mixture, from its CDF tabulated on _GRID_POINTS points. Any grid is lossless;
  a grid that follows the prior keeps the bins narrow where latents fall."""
  loc, scale = np.asarray(loc, np.float64), np.exp(np.asarray(log_scale, np.float64))
  weights = np.exp(np.asarray(log_weights, np.float64))
  weights /= weights.sum()
  n = 2**latent_bits
  edge_targets, centre_targets = np.arange(1, n) / n, (np.arange(n) + 0.5) / n
  all_edges, all_centres = [], []
  for d in range(loc.shape[1]):
    points = np.linspace(np.min(loc[:, d] - 12 * scale[:, d]), np.max(loc[:, d] + 12 * scale[:, d]),
                         _GRID_POINTS)
    cdf = scipy.special.ndtr((points[:, None] - loc[:, d]) / scale[:, d]) @ weights
    cdf = np.maximum.accumulate(cdf)
    inner = _inverse_cdf(cdf, points, edge_targets)
    all_edges.append(np.concatenate([[-np.inf], inner, [np.inf]]))
    all_centres.append(_inverse_cdf(cdf, points, centre_targets))
  return np.stack(all_edges), np.stack(all_centres)


# ----------------------------------------------------------------------------------------------
# The model's coding distributions as jitted functions of fixed batch shape.

@dataclasses.dataclass(frozen=True)
class Codec:
  """One model's coding distributions for batches of `batch_size` images.

  posterior(x) -> (loc, log_scale) [B, D] of q(z|x); posterior_probs(loc, log_scale) -> bin
  masses [B, D, n]; latent(bins) -> z; likelihood(z) -> likelihood_table; prior_probs: None for a
  uniform prior, else (bins, i) -> [B, n] (mixtures); flow: a RealNVP prior's local bits-back
  functions (then the bins are the symbols of the uniform grid, and posterior_probs and
  prior_probs are unused).
  """
  prior_kind: str
  likelihood_kind: str
  latent_dim: int
  latent_bits: int
  batch_size: int
  image_shape: tuple
  posterior: Callable
  posterior_probs: Callable
  latent: Callable
  likelihood: Callable
  prior_probs: Optional[Callable]
  flow: Optional["FlowCoding"] = None

  @property
  def num_bins(self) -> int:
    return 2**self.latent_bits

  @property
  def image_dims(self) -> int:
    return math.prod(self.image_shape)


@dataclasses.dataclass(frozen=True)
class FlowCoding:
  """Local bits-back coding of z under p(z) = N(f(z); 0, I) |det df/dz| (Ho et al. 2019), on
  uniform grids of step `step` in z and y = f(z) (symbols s: values s * step):
    push z: pop y ~ N(f(z), noise^2 J J^T) (linearize(z) -> f(z), L; conditional(f(z), L, y, i)
            -> loc, scale of y_i | y_<i), push z ~ N(inverse(y), noise^2 I), push y ~ N(0, I);
    pop z:  the reverse.
  Net: -log N(y; 0, I) - log N(z; f^-1(y), noise^2) + log N(y; f(z), noise^2 J J^T), which is
  -log p(z) (per unit of grid volume) up to terms of order noise^2, for a y near f(z)."""
  step: float
  noise: float
  symbols: constriction.stream.model.QuantizedGaussian  # the whole grid
  linearize: Callable
  conditional: Callable
  inverse: Callable


def _finite(z):
  """Non-finite values set to 0: any mean is lossless, a non-finite one would stop the coder."""
  return jnp.where(jnp.isfinite(z), z, 0.0)


def _flat_gaussian(module, x):
  q = module.gaussian_posterior(x)
  return q.loc.reshape(x.shape[0], -1), q.log_scale.reshape(x.shape[0], -1)


def _mixture_components(module):
  """(loc [K, D], log_scale [K, D], log_weights [K]) of a MoG or VampPrior: the prior's own
  components (a VampPrior's through this model's encoder)."""
  # pylint: disable=protected-access
  prior = module.prior
  if isinstance(prior, priors.VampPrior):
    return prior._components(module.gaussian_posterior)
  return prior._components()


def _flow_forward(module, z):
  return module.prior.flow(z).forward(z)


def _flow_inverse(module, u):
  return module.prior.flow(u).inverse(u)


def make_codec(model, params, image_shape, batch_size: int, latent_bits: int) -> Codec:
  """The jitted coding functions of a supported model (see unsupported_reason)."""
  reason = unsupported_reason(model)
  if reason:
    raise CompressionError(f"cannot compress with this model: {reason}.")
  prior_kind = _PRIOR_KINDS[type(model.prior)]
  likelihood_kind = _LIKELIHOOD_KINDS[type(model.head)]
  latent_shape = tuple(model.latent_shape)
  latent_dim = math.prod(latent_shape)
  if prior_kind == "mixture":
    components = jax.jit(lambda p: model.apply({"params": p}, method=_mixture_components))(params)
    edges, centres = mixture_marginal_grid(*components, latent_bits)
  else:
    components = ()
    edges, centres = standard_normal_grid(latent_bits)
    edges, centres = np.tile(edges, (latent_dim, 1)), np.tile(centres, (latent_dim, 1))
  # Arguments rather than constants of the jitted functions (XLA would fold large constants).
  grid = {"edges": jnp.asarray(edges, jnp.float32), "centres": jnp.asarray(centres, jnp.float32),
          "components": components}
  gaussian = lambda p, x: model.apply({"params": p}, x, method=_flat_gaussian)
  centres_of = lambda g, bins: take_per_dim(g["centres"], bins)

  posterior = lambda p, g, x: gaussian(p, x)
  posterior_probs = lambda p, g, post: gaussian_bin_probs(g["edges"], *post)
  latent = lambda p, g, bins: centres_of(g, bins).reshape((-1,) + latent_shape)
  flow = None
  if prior_kind == "realnvp":
    step = 2 * _FLOW_GRID_RANGE / 2**_FLOW_GRID_BITS
    latent = lambda p, g, symbols: (symbols * step).reshape((-1,) + latent_shape)
    forward = lambda p, z: model.apply({"params": p}, z, method=_flow_forward)
    half = 2**(_FLOW_GRID_BITS - 1)
    jitted = lambda f: functools.partial(jax.jit(f), params)
    flow = FlowCoding(
        step=step, noise=_FLOW_NOISE_BINS * step,
        symbols=constriction.stream.model.QuantizedGaussian(-half, half - 1),
        linearize=jitted(lambda p, symbols: flow_linearization(
            functools.partial(forward, p), symbols * step, _FLOW_NOISE_BINS * step)),
        conditional=jax.jit(lambda mean, cholesky, symbols, i: gaussian_conditional(
            mean, cholesky, symbols * step, i)),
        inverse=jitted(lambda p, symbols: _finite(model.apply({"params": p}, symbols * step,
                                                              method=_flow_inverse))))
  likelihood = lambda p, g, z: likelihood_table(
      model.apply({"params": p}, z, None, method="likelihood"), likelihood_kind)
  prior_probs = None
  if prior_kind == "mixture":
    prior_probs = lambda p, g, bins, i: mixture_conditional_probs(
        g["components"], g["edges"], bins, i)
  bind = lambda f: None if f is None else functools.partial(jax.jit(f), params, grid)
  return Codec(prior_kind=prior_kind, likelihood_kind=likelihood_kind, latent_dim=latent_dim,
               latent_bits=latent_bits, batch_size=batch_size, image_shape=tuple(image_shape),
               posterior=bind(posterior), posterior_probs=bind(posterior_probs),
               latent=bind(latent), likelihood=bind(likelihood), prior_probs=bind(prior_probs),
               flow=flow)


# ----------------------------------------------------------------------------------------------
# Bits-back coding of batches on constriction's ANS stack (host side).

def _table(array, rows: int, width=None):
  """The first `rows` batch rows of a probability table as a contiguous float32 [symbols, width]
  (or [symbols] without width), checked finite: constriction would panic on NaN."""
  array = np.asarray(array)[:rows]
  array = np.ascontiguousarray(array.reshape(-1, width) if width else array.reshape(-1),
                               np.float32)
  if not np.all(np.isfinite(array)) or np.any(array < 0):
    raise CompressionError("the model gave non-finite probabilities; it cannot code these images.")
  return array


def _symbols(array):
  return np.ascontiguousarray(np.asarray(array).reshape(-1), np.int32)


def _padded(array, batch_size: int):
  """Rows padded with zeros to `batch_size`: every call of a jitted function has one shape."""
  pad = batch_size - array.shape[0]
  return np.concatenate([array, np.zeros((pad,) + array.shape[1:], array.dtype)]) if pad else array


def _model_input(codec: Codec, images):
  return batching.model_input(None, jnp.asarray(images),
                              "binary" if codec.likelihood_kind == "bernoulli" else "8bit")


def _gaussian_symbols(flow: FlowCoding, loc, scale, n: int):
  """(means, stds) in grid steps, float64, of the first n rows: QuantizedGaussian's parameters;
  checked finite and positive (constriction would panic)."""
  half = 2**(_FLOW_GRID_BITS - 1)
  # Means far off the grid (a flow's inverse can return huge finite values) are clipped: any mean
  # is lossless, and constriction finds no mass on the grid for some extreme ones.
  means = np.clip(np.asarray(loc, np.float64)[:n].reshape(-1) / flow.step, -2 * half, 2 * half)
  stds = np.asarray(scale, np.float64)[:n].reshape(-1) / flow.step
  if not (np.all(np.isfinite(means)) and np.all(np.isfinite(stds)) and np.all(stds > 0)):
    raise CompressionError("the model gave non-finite or degenerate latent distributions; it "
                           "cannot code these images.")
  return np.ascontiguousarray(means), np.ascontiguousarray(stds)


@functools.lru_cache(maxsize=None)
def _window(half_width: int):
  return constriction.stream.model.QuantizedGaussian(-half_width, half_width)


def _near_mean(flow: FlowCoding, loc, scale, n: int):
  """(window model, means and stds relative to the rounded means, those centres)."""
  means, stds = _gaussian_symbols(flow, loc, scale, n)
  half = 2**(_FLOW_GRID_BITS - 1)
  half_width = min(2**max(4, math.ceil(math.log2(_FLOW_WINDOW_STDS * stds.max() + 1))), half // 2)
  # The window stays on the grid, so that a popped symbol can later be pushed on the whole grid.
  centres = np.clip(np.round(means), -half + half_width, half - 1 - half_width)
  return _window(half_width), means - centres, stds, centres


def pop_near_mean(coder, flow: FlowCoding, loc, scale, n: int):
  """Symbols [n * ...] popped from N(loc, scale^2) on the grid, within the window of the mean."""
  window, means, stds, centres = _near_mean(flow, loc, scale, n)
  return (coder.decode(window, means, stds) + centres).astype(np.int32)


def push_near_mean(coder, flow: FlowCoding, symbols, loc, scale, n: int) -> None:
  """Undoes pop_near_mean."""
  window, means, stds, centres = _near_mean(flow, loc, scale, n)
  coder.encode_reverse(_symbols(symbols[:n].reshape(-1) - centres), window, means, stds)


def pop_latents(coder, codec: Codec, posterior, n: int):
  """Bins [B, D] (rows from n zero) popped from q(bins|x) of the first n images."""
  bins = np.zeros((codec.batch_size, codec.latent_dim), np.int32)
  if codec.flow:
    loc, log_scale = posterior
    bins[:n] = pop_near_mean(coder, codec.flow, loc, np.exp(log_scale), n).reshape(n, -1)
    return bins
  probs = _table(codec.posterior_probs(posterior), n, codec.num_bins)
  bins[:n] = coder.decode(_CATEGORICAL, probs).reshape(n, -1)
  return bins


def push_latents(coder, codec: Codec, posterior, bins, n: int) -> None:
  """Undoes pop_latents: pushes the bins back under the same probabilities."""
  if codec.flow:
    loc, log_scale = posterior
    push_near_mean(coder, codec.flow, bins, loc, np.exp(log_scale), n)
    return
  probs = _table(codec.posterior_probs(posterior), n, codec.num_bins)
  coder.encode_reverse(_symbols(bins[:n]), _CATEGORICAL, probs)


def push_prior(coder, codec: Codec, bins, n: int) -> None:
  """Pushes the bins under the prior: uniform (2^-k each), a mixture's conditionals, last
  dimension first so that the decoder pops the first one first, or through the flow."""
  if codec.flow:
    push_through_flow(coder, codec, bins, n)
  elif codec.prior_probs is None:
    coder.encode_reverse(_symbols(bins[:n]), constriction.stream.model.Uniform(codec.num_bins))
  else:
    for i in reversed(range(codec.latent_dim)):
      probs = _table(codec.prior_probs(bins, i), n, codec.num_bins)
      coder.encode_reverse(_symbols(bins[:n, i]), _CATEGORICAL, probs)


def pop_prior(coder, codec: Codec, n: int):
  """Undoes push_prior: bins [B, D] (rows from n zero)."""
  if codec.flow:
    return pop_through_flow(coder, codec, n)
  bins = np.zeros((codec.batch_size, codec.latent_dim), np.int32)
  if codec.prior_probs is None:
    uniform = constriction.stream.model.Uniform(codec.num_bins)
    bins[:n] = coder.decode(uniform, n * codec.latent_dim).reshape(n, -1)
    return bins
  for i in range(codec.latent_dim):
    bins[:n, i] = coder.decode(_CATEGORICAL, _table(codec.prior_probs(bins, i), n, codec.num_bins))
  return bins


def _standard_normal(flow: FlowCoding, n: int, dim: int):
  return (np.zeros(n * dim), np.full(n * dim, 1.0 / flow.step))


def push_through_flow(coder, codec: Codec, z_symbols, n: int) -> None:
  """Pushes z under a RealNVP prior by local bits-back coding (FlowCoding)."""
  flow, dim = codec.flow, codec.latent_dim
  mean, cholesky = flow.linearize(z_symbols)
  y_symbols = np.zeros_like(z_symbols)
  for i in range(dim):  # y ~ N(f(z), noise^2 J J^T), one dimension given those before it
    loc, scale = flow.conditional(mean, cholesky, y_symbols, i)
    y_symbols[:n, i] = pop_near_mean(coder, flow, loc, scale, n)
  inverse = flow.inverse(y_symbols)
  coder.encode_reverse(_symbols(z_symbols[:n]), flow.symbols,
                       *_gaussian_symbols(flow, inverse, np.full(inverse.shape, flow.noise), n))
  coder.encode_reverse(_symbols(y_symbols[:n]), flow.symbols, *_standard_normal(flow, n, dim))


def pop_through_flow(coder, codec: Codec, n: int):
  """Undoes push_through_flow: z's symbols [B, D] (rows from n zero)."""
  flow, dim = codec.flow, codec.latent_dim
  y_symbols = np.zeros((codec.batch_size, dim), np.int32)
  y_symbols[:n] = coder.decode(flow.symbols, *_standard_normal(flow, n, dim)).reshape(n, dim)
  inverse = flow.inverse(y_symbols)
  z_symbols = np.zeros_like(y_symbols)
  z_symbols[:n] = coder.decode(flow.symbols, *_gaussian_symbols(
      flow, inverse, np.full(inverse.shape, flow.noise), n)).reshape(n, dim)
  mean, cholesky = flow.linearize(z_symbols)
  for i in reversed(range(dim)):
    loc, scale = flow.conditional(mean, cholesky, y_symbols, i)
    push_near_mean(coder, flow, y_symbols[:, i], loc, scale, n)
  return z_symbols


def push_images(coder, codec: Codec, table, images, n: int) -> None:
  """Pushes the first n uint8 images under p(x|z), one symbol per sub-pixel."""
  if codec.likelihood_kind == "bernoulli":
    coder.encode_reverse(_symbols(images[:n]), _BERNOULLI, _table(table, n))
  else:
    coder.encode_reverse(_symbols(images[:n]), _CATEGORICAL, _table(table, n, 256))


def pop_images(coder, codec: Codec, table, n: int):
  """Undoes push_images: uint8 images [B, H, W, C] (rows from n zero)."""
  if codec.likelihood_kind == "bernoulli":
    values = coder.decode(_BERNOULLI, _table(table, n))
  else:
    values = coder.decode(_CATEGORICAL, _table(table, n, 256))
  images = np.zeros((codec.batch_size,) + codec.image_shape, np.uint8)
  images[:n] = values.reshape((n,) + codec.image_shape)
  return images


def encode_batch(coder, codec: Codec, images) -> None:
  """Bits-back encodes uint8 images [n <= B, H, W, C]: pop z, push x | z, push z."""
  n = images.shape[0]
  padded = _padded(images, codec.batch_size)
  bins = pop_latents(coder, codec, codec.posterior(_model_input(codec, padded)), n)
  push_images(coder, codec, codec.likelihood(codec.latent(bins)), padded, n)
  push_prior(coder, codec, bins, n)


def decode_batch(coder, codec: Codec, n: int):
  """Undoes encode_batch for n images: pop z, pop x | z, push z back under q(z|x)."""
  bins = pop_prior(coder, codec, n)
  images = pop_images(coder, codec, codec.likelihood(codec.latent(bins)), n)
  push_latents(coder, codec, codec.posterior(_model_input(codec, images)), bins, n)
  return images[:n]


def initial_words(codec: Codec):
  """The words on the stack before the first batch: enough to pop one image's latents however
  unlikely (24 bits each), from a fixed seed, so decoding can check that it ends with them."""
  count = -(-_MAX_BITS_PER_POP * codec.latent_dim // 32) + 1
  return np.random.default_rng(_INITIAL_WORDS_SEED).integers(0, 2**32, count, dtype=np.uint32)


def next_batch_size(coder, codec: Codec, remaining: int) -> int:
  """Images in the next batch: at most the batch size, and no more than the stack can surely pop
  the latents of (24 bits each). The first batches are therefore small and grow as the stack
  fills, so that the initial words cover one image's latents rather than a whole batch's."""
  affordable = coder.num_valid_bits() // (_MAX_BITS_PER_POP * codec.latent_dim)
  return int(min(codec.batch_size, remaining, max(1, affordable)))


def encode(codec: Codec, images):
  """(words, batch sizes) of uint8 images [N, H, W, C], encoded batch by batch in order."""
  coder = constriction.stream.stack.AnsCoder(initial_words(codec), seal=True)
  sizes, start = [], 0
  while start < images.shape[0]:
    n = next_batch_size(coder, codec, images.shape[0] - start)
    encode_batch(coder, codec, images[start:start + n])
    sizes.append(n)
    start += n
  return coder.get_compressed(), sizes


def decode(codec: Codec, words, sizes):
  """Undoes encode: the images, decoded from the last batch to the first; checks that exactly
  the initial words are left."""
  coder = constriction.stream.stack.AnsCoder(np.ascontiguousarray(words, np.uint32))
  corrupt = CompressionError("decoding did not end with the initial words: the file is corrupt "
                             "or was not written by this model and code.")
  try:
    batches = [decode_batch(coder, codec, n) for n in reversed(sizes)]
    left = coder.get_compressed(unseal=True)
  except (KeyboardInterrupt, SystemExit, CompressionError):
    raise
  except BaseException as e:  # constriction's errors, its panics (BaseException) among them
    raise corrupt from e
  if not np.array_equal(left, initial_words(codec)):
    raise corrupt
  return np.concatenate(batches[::-1])


# ----------------------------------------------------------------------------------------------
# Fingerprints and the file format.

def model_fingerprint(model_config, params) -> str:
  """sha256 of the model's config and every parameter (path, dtype, shape and bytes)."""
  digest = hashlib.sha256(model_config.to_json(sort_keys=True).encode())
  for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
    array = np.asarray(leaf)
    digest.update(f"{jax.tree_util.keystr(path)}:{array.dtype}:{array.shape}".encode())
    digest.update(np.ascontiguousarray(array).tobytes())
  return digest.hexdigest()


def code_fingerprint() -> str:
  """sha256 of this module, the sources the probabilities come from, and the versions of the
  libraries that compute and code them: any change could change a float, and so the code."""
  package = os.path.dirname(os.path.abspath(__file__))
  paths = [os.path.abspath(__file__)] + sorted(
      p for name in _CODE_PACKAGES for p in glob.glob(os.path.join(package, name, "*.py")))
  digest = hashlib.sha256()
  for path in paths:
    with open(path, "rb") as f:
      digest.update(os.path.relpath(path, package).encode() + b"\0" + f.read())
  versions = {name: metadata.version(name) for name in _CODE_LIBRARIES}
  digest.update(json.dumps(versions, sort_keys=True).encode())
  return digest.hexdigest()


# Of the code this process runs: read at import, so an edit while it runs cannot go unnoticed.
CODE_FINGERPRINT = code_fingerprint()


def device_description() -> str:
  """The device the probabilities are computed on: another one may round differently."""
  device = jax.devices()[0]
  return f"{device.platform}:{device.device_kind}"


def run_lengths(sizes) -> list:
  """[[size, count], ...] of a list of batch sizes (a few growing ones, then many full ones)."""
  runs = []
  for size in sizes:
    if runs and runs[-1][0] == size:
      runs[-1][1] += 1
    else:
      runs.append([int(size), 1])
  return runs


def expand_run_lengths(runs) -> list:
  return [size for size, count in runs for _ in range(count)]


_PREAMBLE = struct.Struct("<4sHI")  # magic, format version, header length


def pack(header: dict, words) -> bytes:
  """MAGIC, version, header length, the JSON header, its sha256, the little-endian words.
  The header holds the payload's length and sha256, so truncation and corruption are caught."""
  payload = np.asarray(words, "<u4").tobytes()
  header = dict(header, num_words=len(words), payload_sha256=hashlib.sha256(payload).hexdigest())
  encoded = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
  return (_PREAMBLE.pack(MAGIC, FORMAT_VERSION, len(encoded)) + encoded
          + hashlib.sha256(encoded).digest() + payload)


def unpack(data: bytes, name: str = "the file"):
  """(header, words) of a file written by pack; CompressionError for anything else."""
  if len(data) < _PREAMBLE.size or data[:4] != MAGIC:
    raise CompressionError(f"{name} is not a vae_jax compressed file (no {MAGIC!r} magic bytes).")
  _, version, header_length = _PREAMBLE.unpack_from(data)
  if version != FORMAT_VERSION:
    raise CompressionError(f"{name} has format version {version}; this code reads version "
                           f"{FORMAT_VERSION}.")
  start = _PREAMBLE.size
  encoded = data[start:start + header_length]
  checksum = data[start + header_length:start + header_length + 32]
  if len(checksum) < 32:
    raise CompressionError(f"{name} is truncated: it ends inside its header.")
  if hashlib.sha256(encoded).digest() != checksum:
    raise CompressionError(f"{name} is corrupt: its header does not match its checksum.")
  header = json.loads(encoded)
  payload = data[start + header_length + 32:]
  expected = 4 * header["num_words"]
  if len(payload) != expected:
    raise CompressionError(f"{name} is {'truncated' if len(payload) < expected else 'too long'}: "
                           f"{len(payload)} bytes of code where the header says {expected}.")
  if hashlib.sha256(payload).hexdigest() != header["payload_sha256"]:
    raise CompressionError(f"{name} is corrupt: its code does not match its checksum.")
  return header, np.frombuffer(payload, "<u4").astype(np.uint32)


def check_compatible(header: dict, expected: dict, name: str = "the file") -> None:
  """Refuses a file written by another model, code version, device or coding setting."""
  what = {"model_fingerprint": "another model (parameters or config)",
          "code_fingerprint": "another version of the code (vae_jax or its libraries)",
          "device": "another kind of device, whose floats may round differently"}
  for key, description in what.items():
    if header.get(key) != expected[key]:
      raise CompressionError(f"{name} was compressed with {description}: {key} "
                             f"{header.get(key)} here is {expected[key]}; decompress it with "
                             "the same workdir, code and device that compressed it.")


def write_bytes_atomically(path: str, data: bytes) -> None:
  """Writes a temporary file beside `path`, then renames it: never a partial file."""
  directory = os.path.dirname(os.path.abspath(path))
  fd, temporary = tempfile.mkstemp(dir=directory, prefix=".tmp_", suffix=os.path.basename(path))
  try:
    with os.fdopen(fd, "wb") as f:
      f.write(data)
    os.replace(temporary, path)
  except BaseException:
    if os.path.exists(temporary):
      os.remove(temporary)
    raise


def npy_bytes(array) -> bytes:
  buffer = io.BytesIO()
  np.save(buffer, array, allow_pickle=False)
  return buffer.getvalue()


# ----------------------------------------------------------------------------------------------
# Workdirs, inputs and the command line.

@dataclasses.dataclass(frozen=True)
class Trained:
  """A workdir's model, evaluation parameters and data, as vae_jax.evaluate restores them."""
  config: object
  model: object
  params: object
  image_shape: tuple
  binary: bool
  test_images: object  # the evaluated test images, uint8 on the device


def load_workdir(workdir: str, test_binarizations=None) -> Trained:
  """The model and parameters vae_jax.evaluate would evaluate (the best validated, else the
  current ones), refusing unsupported models before anything is written."""
  config = workdir_config(workdir)
  if test_binarizations:
    config.data.test_binarizations = test_binarizations
  run = setup_run(config)
  reason = unsupported_reason(run.model)
  if reason:
    raise CompressionError(f"cannot compress with the model of {workdir}: {reason}.")
  with checkpoints.manager(workdir, config.train.keep_checkpoints) as manager:
    state = restore_train_state(run, make_optimizer(config.train, run.total_steps), manager)
  if state is None:
    raise FileNotFoundError(f"No checkpoint in {workdir}/checkpoints to compress with.")
  params = current_params(state) if state.best_params is None else state.best_params
  params = jax.device_put(params, jax.devices()[0])  # one device: one rounding
  return Trained(config=config, model=run.model, params=params,
                 image_shape=tuple(run.dataset.image_shape), binary=run.dataset.binary,
                 test_images=run.test_images[:config.eval.test_images or None])


def read_images(path: str, trained: Trained):
  """(images [N, H, W, C] uint8, the array's own shape) from --input: `test` or a .npy."""
  if path == TEST_SET:
    images = np.asarray(trained.test_images)
    return images, images.shape
  array = np.load(path, allow_pickle=False)
  h, w, c = trained.image_shape
  valid = ((array.ndim == 3 and c == 1 and array.shape[1:] == (h, w))
           or (array.ndim == 4 and array.shape[1:] == (h, w, c)))
  if array.dtype != np.uint8 or not valid or array.shape[0] == 0:
    raise CompressionError(
        f"{path} holds {array.dtype} {array.shape}; the model codes uint8 images of shape "
        f"(N, {h}, {w}{'' if c > 1 else '[, 1]'}{f', {c}' if c > 1 else ''}), N >= 1.")
  if trained.binary and array.max() > 1:
    raise CompressionError(f"{path} has values up to {array.max()}; the model's pixels are "
                           "binary (0 or 1).")
  return array.reshape((-1, h, w, c)), array.shape


def negative_elbo_nats(model, params, images, binary: bool, batch_size: int,
                       num_samples: int) -> float:
  """The model's mean negative ELBO (nats per image) on uint8 images, from `num_samples`
  posterior samples per image (vae_jax.evaluate's estimator)."""
  estimate = jax.jit(make_bound_estimator(model, num_samples, num_samples))
  encoding = "binary" if binary else "8bit"
  key, total = jax.random.PRNGKey(0), 0.0
  for start in range(0, images.shape[0], batch_size):
    batch = images[start:start + batch_size]
    x = batching.model_input(None, jnp.asarray(_padded(batch, batch_size)), encoding)
    elbo = estimate(params, x, jax.random.fold_in(key, start))["elbo"]
    total += float(np.sum(np.asarray(elbo)[:batch.shape[0]]))
  return -total / images.shape[0]


def _warm_up(codec: Codec, images) -> None:
  """Compiles every jitted function on a scratch stack, outside the timed coding."""
  coder = constriction.stream.stack.AnsCoder(initial_words(codec), seal=True)
  encode_batch(coder, codec, images[:1])
  decode_batch(coder, codec, 1)


def _report(trained: Trained, images, header: dict, file_bytes: int, seconds: float,
            elbo_samples: int, direction: str) -> dict:
  dims = images.shape[0] * math.prod(trained.image_shape)
  code_bits = 32 * header["num_words"]
  initial_bits = 32 * header["num_initial_words"]
  neg_elbo = negative_elbo_nats(trained.model, trained.params, images, trained.binary,
                                header["batch_size"], elbo_samples)
  net_bits_per_dim = (code_bits - initial_bits) / dims
  neg_elbo_bits_per_dim = bits_per_dim(neg_elbo, trained.image_shape)
  return {
      "direction": direction, "num_images": int(images.shape[0]),
      "image_shape": list(trained.image_shape), "bytes": file_bytes,
      "bytes_per_image": file_bytes / images.shape[0], "bits_per_dim": 8 * file_bytes / dims,
      "code_bits": code_bits, "initial_bits": initial_bits,
      "net_bits_per_dim": net_bits_per_dim, "net_bits_per_image": (code_bits - initial_bits)
      / images.shape[0], "neg_elbo_bits_per_dim": neg_elbo_bits_per_dim,
      "neg_elbo_nats_per_image": neg_elbo, "elbo_samples": elbo_samples,
      "net_over_neg_elbo": net_bits_per_dim / neg_elbo_bits_per_dim,
      "seconds": seconds, "images_per_second": images.shape[0] / seconds,
      "batch_size": header["batch_size"], "latent_bits": header["latent_bits"],
      "num_batches": sum(c for _, c in header["batch_runs"]), "device": header["device"],
  }


def _check_paths(input_path: str, output: str, overwrite: bool) -> None:
  if os.path.exists(output) and os.path.realpath(output) == os.path.realpath(input_path):
    raise CompressionError(f"--output={output} is the input; give another path.")
  for path in (output, output + ".json"):
    if os.path.exists(path) and not overwrite:
      raise CompressionError(f"{path} exists; pass --overwrite to replace it.")
  if input_path != TEST_SET and not os.path.exists(input_path):
    raise FileNotFoundError(f"--input={input_path} not found.")


def coded_batch_size(batch_size: int, latent_dim: int, latent_bits: int) -> int:
  """`batch_size`, or fewer where a batch's table of latent bin probabilities [B, D, 2^k] would
  pass _MAX_TABLE_ENTRIES: CIFAR-10's 2,048 latents at 4,096 bins code 4 images at a time (at
  64, 2 GB tables made coding 40x slower)."""
  return max(1, min(batch_size, _MAX_TABLE_ENTRIES // (latent_dim * 2**latent_bits)))


def compress_to_file(workdir: str, input_path: str, output: str, batch_size: int = 64,
                     latent_bits: int = DEFAULT_LATENT_BITS, elbo_samples: int = 16,
                     test_binarizations=None, overwrite: bool = False) -> dict:
  """Compresses --input with the workdir's model into `output` (+ `output`.json); the report."""
  _check_paths(input_path, output, overwrite)
  trained = load_workdir(workdir, test_binarizations)
  images, array_shape = read_images(input_path, trained)
  batch_size = coded_batch_size(batch_size, math.prod(trained.model.latent_shape), latent_bits)
  codec = make_codec(trained.model, trained.params, trained.image_shape, batch_size, latent_bits)
  _warm_up(codec, images)
  start = time.time()
  words, sizes = encode(codec, images)
  seconds = time.time() - start
  header = {"model_fingerprint": model_fingerprint(trained.config.model, trained.params),
            "code_fingerprint": CODE_FINGERPRINT, "device": device_description(),
            "array_shape": list(array_shape), "image_shape": list(trained.image_shape),
            "batch_size": batch_size, "latent_bits": latent_bits,
            "batch_runs": run_lengths(sizes),
            "num_initial_words": len(initial_words(codec))}
  data = pack(header, words)
  write_bytes_atomically(output, data)
  report = _report(trained, images, unpack(data)[0], len(data), seconds, elbo_samples,
                   "compress")
  write_json_atomically(output + ".json", report)
  return report


def decompress_to_file(workdir: str, input_path: str, output: str, elbo_samples: int = 16,
                       overwrite: bool = False) -> dict:
  """Decompresses a file of compress_to_file into the .npy `output` (+ `output`.json)."""
  _check_paths(input_path, output, overwrite)
  with open(input_path, "rb") as f:
    data = f.read()
  header, words = unpack(data, input_path)
  trained = load_workdir(workdir)
  expected = {"model_fingerprint": model_fingerprint(trained.config.model, trained.params),
              "code_fingerprint": CODE_FINGERPRINT, "device": device_description()}
  check_compatible(header, expected, input_path)
  if tuple(header["image_shape"]) != trained.image_shape:
    raise CompressionError(f"{input_path} holds {tuple(header['image_shape'])} images; the "
                           f"model's are {trained.image_shape}.")
  codec = make_codec(trained.model, trained.params, trained.image_shape, header["batch_size"],
                     header["latent_bits"])
  _warm_up(codec, np.zeros((1,) + trained.image_shape, np.uint8))
  start = time.time()
  sizes = expand_run_lengths(header["batch_runs"])
  if sum(sizes) != header["array_shape"][0]:
    raise CompressionError(f"{input_path} is corrupt: its batches hold {sum(sizes)} images, its "
                           f"array {header['array_shape'][0]}.")
  images = decode(codec, words, sizes)
  seconds = time.time() - start
  write_bytes_atomically(output, npy_bytes(images.reshape(header["array_shape"])))
  report = _report(trained, images, header, len(data), seconds, elbo_samples, "decompress")
  write_json_atomically(output + ".json", report)
  return report


def main(argv):
  del argv
  checkpoints.quiet_orbax_logging()
  flag_values = flags.FLAGS
  if flag_values.decompress:
    report = decompress_to_file(flag_values.workdir, flag_values.input, flag_values.output,
                                flag_values.elbo_samples, flag_values.overwrite)
  else:
    report = compress_to_file(flag_values.workdir, flag_values.input, flag_values.output,
                              flag_values.batch_size, flag_values.latent_bits,
                              flag_values.elbo_samples, flag_values.test_binarizations,
                              flag_values.overwrite)
  print(f"{report['direction']}ed {report['num_images']} images: {report['bytes']} bytes, "
        f"{report['bits_per_dim']:.4f} bits/dim (net of {report['initial_bits']} initial bits "
        f"{report['net_bits_per_dim']:.4f}; the model's -ELBO {report['neg_elbo_bits_per_dim']:.4f}"
        f"), {report['images_per_second']:.1f} images/s; report in "
        f"{flag_values.output}.json")


if __name__ == "__main__":
  flags.DEFINE_string("workdir", None, "A training workdir (holds config.json and checkpoints/).")
  flags.DEFINE_string("input", None, f"'{TEST_SET}' (the workdir's evaluated test set), a uint8 "
                      ".npy of images to compress, or with --decompress a compressed file.")
  flags.DEFINE_string("output", None, "The compressed file, or with --decompress the .npy.")
  flags.DEFINE_boolean("decompress", False, "Decompress --input instead.")
  flags.DEFINE_boolean("overwrite", False, "Replace an existing --output (never the input).")
  flags.DEFINE_integer("batch_size", 64, "Images coded together (a larger batch is faster), at "
                       "most: fewer where the latent tables would be large (coded_batch_size).",
                       lower_bound=1)
  flags.DEFINE_integer("latent_bits", DEFAULT_LATENT_BITS,
                       "log2 of the bins per latent dimension.", lower_bound=2, upper_bound=16)
  flags.DEFINE_integer("elbo_samples", 16, "Posterior samples per image for the reported "
                       "negative ELBO.", lower_bound=1)
  flags.DEFINE_integer("test_binarizations", None,
                       "Binarizations of each test image for --input=test on dynamically "
                       "binarized sets (default: the config's).", lower_bound=1)
  flags.mark_flags_as_required(["workdir", "input", "output"])
  from vae_jax import cli  # pylint: disable=g-import-not-at-top
  cli.run(main)
