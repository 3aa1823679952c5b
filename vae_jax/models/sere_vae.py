"""The Self-Reflective VAE (SeRe-VAE) of Apostolopoulou et al., and the baselines it is compared
with: a DLGM-style hierarchy without latent feedback and a ladder-style top-down VAE.

Generative model (Section 3.1, Eq. 3): the image is split into L blocks x_1..x_L. Layer l draws
base latents eps_l ~ p(eps_l | z_{l-1}) = N(mu(z_{l-1}), sigma(z_{l-1})), maps them to latent
codes z_l = f_l(eps_l | z_{l-1}) = c + (diag(d) + u u^T) eps_l with (c, d, u) functions of
z_{l-1}, and generates its block from p(x_l | z_l, x_{l-1}).

Inference (Section 3.2, Eq. 4): q(eps_1 | x) prod_l q(eps_l | z_{l-1}, x), which shares the
bijectors f_l with the generative model, so the posterior factorises as the exact one does
(Proposition 2). The posterior layers are residual (Section 3.4.2):
q(eps | z, x) = N(mu(z) ds(x) + dmu(x), sigma(z) ds(x)) with ds <= 1 and mu, sigma the prior's.

The model is over the base latents, so log w = log p(x | z(eps)) + log p(eps) - log q(eps | x):
the bijectors carry no log-determinant into the bound (by Proposition 1 the KL in z equals the
KL in eps). Layer 1 sees z_0 = 0, so its prior and bijector are learned constants.

Switches (config.model.sere) give the paper's comparisons:
  - prior_feedback=False: p(eps_l) = N(0, I) and q(eps_l | x) (DLGM-style, Rezende et al. 2014);
  - bijector_feedback=False: f_l does not see z_{l-1}; data_coupling=False: p(x_l | z_l);
    (Section 4.2.1's case 1 turns all three off, case 2 keeps data coupling, case 3 is all on);
  - posterior='precision_weighted', encoder='bottom_up', bijector='none': a ladder VAE
    (Sonderby et al. 2016) on the same blocks and layers.
"""
import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from vae_jax.distributions import DiagonalGaussian, bernoulli_pixels
from vae_jax.distributions.discretized_logistic import (DiscretizedLogisticMixture,
                                                        mixture_params_per_pixel)
from vae_jax.flows.bijectors import LowRankAffine
from vae_jax.models.base import LogWeights
from vae_jax.nets import conv
from vae_jax.nets.dense import MLP, Dense, leaky_relu

NETWORKS = ("mlp", "resnet", "conv")
PARTITIONS = ("raster", "patches")
BIJECTORS = ("affine", "none")
POSTERIORS = ("residual", "precision_weighted")
ENCODERS = ("independent", "bottom_up")
PIXEL_LIKELIHOODS = ("bernoulli", "discretized_logistic_mixture")
# softplus(_SOFTPLUS_ONE) = 1: the bijector's diagonal starts at the identity.
_SOFTPLUS_ONE = math.log(math.e - 1)
_MIN_DIAG = 1e-4  # d >= 1e-4 > 0 keeps f_l invertible with a finite log-det
# The prior and bijector networks read z_{l-1} soft-clipped, c tanh(z / c): injective, so they
# lose nothing (Lemma 1), but bounded, so scales that grow with z cannot feed on themselves
# through the L layers (a chain of exp(linear(z)) diverged within 5 steps at lr 1e-3).
_CODE_CLIP = 4.0


def block_partition(image_shape: Sequence[int], num_layers: int, kind: str):
  """(index, mask): the pixels of each block as indices into the H*W raster, [L, *block], with
  `mask` False where a block is padded.

  raster (Section 4.1.1): L blocks of ceil(H W / L) pixels in raster order, the last one shorter
  (784 = 9 x 79 + 73 on MNIST). patches (Section 4.2.1): a sqrt(L) x sqrt(L) grid of equal
  patches in raster order (16 patches of 8 x 8 on CIFAR-10); the paper's "spatial checkerboard"
  read as this tiling, since it speaks of each layer's "adjacent left/above patches".
  """
  height, width = image_shape[0], image_shape[1]
  pixels = height * width
  if kind == "raster":
    size = -(-pixels // num_layers)
    if (num_layers - 1) * size >= pixels:
      raise ValueError(f"{num_layers} raster blocks of {size} pixels leave the last of {pixels} "
                       "pixels empty: use fewer layers.")
    index = np.arange(num_layers * size).reshape(num_layers, size)
    return np.minimum(index, pixels - 1), index < pixels
  if kind == "patches":
    grid = math.isqrt(num_layers)
    if grid * grid != num_layers or height % grid or width % grid:
      raise ValueError(f"patches need a square number of layers that tiles the {height}x{width} "
                       f"image; got {num_layers}.")
    patch_h, patch_w = height // grid, width // grid
    rows = (np.arange(grid)[:, None, None, None] * patch_h + np.arange(patch_h)[None, None, :, None])
    cols = (np.arange(grid)[None, :, None, None] * patch_w + np.arange(patch_w)[None, None, None, :])
    index = (rows * width + cols).reshape(num_layers, patch_h, patch_w)
    return index, np.ones(index.shape, bool)
  raise ValueError(f"config.model.sere.partition={kind!r}; valid: {', '.join(PARTITIONS)}.")


def _soft_clip(z):
  return _CODE_CLIP * jnp.tanh(z / _CODE_CLIP)


class Trunk(nn.Module):
  """The hidden layers of every SeRe-VAE network: an MLP (4.1.1), a Dense layer then residual
  dense blocks (4.1.2), or residual 3x3 convolutions over latent maps (4.2.1)."""
  network: str
  width: int
  depth: int = 2

  @nn.compact
  def __call__(self, h):
    if self.network == "mlp":
      return MLP((self.width,) * self.depth, name="mlp")(h)
    if self.network == "resnet":
      h = leaky_relu(Dense(self.width, name="hidden_in")(h))
      for i in range(self.depth):
        h = h + MLP((self.width, self.width), name=f"block_{i}")(h)
      return h
    return conv.ConvEncoder(((h.shape[-3], h.shape[-2], self.width),) * self.depth,
                            residual=True, flatten=False, name="resnet")(h)


class LatentHead(nn.Module):
  """Features -> `num_outputs` arrays of `shape`: Dense for vectors, 1x1 convolutions for maps
  (whose spatial grid must be the features')."""
  shape: Sequence[int]
  num_outputs: int
  kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()
  bias_init: nn.initializers.Initializer = nn.initializers.zeros

  @nn.compact
  def __call__(self, h):
    if len(self.shape) == 1:
      out = Dense(self.num_outputs * self.shape[0], kernel_init=self.kernel_init,
                     bias_init=self.bias_init, name="linear")(h)
    else:
      out = nn.Conv(self.num_outputs * self.shape[-1], (1, 1), kernel_init=self.kernel_init,
                    bias_init=self.bias_init, name="linear")(h)
    return jnp.split(out, self.num_outputs, axis=-1)


class ImageEncoder(nn.Module):
  """A deterministic encoder of the whole image x: an MLP of the flattened pixels (4.1.1), a
  ResNet over 28x28 images then a Dense layer (4.1.2), or a ResNet down to the latent grid
  (4.2.1)."""
  network: str
  width: int
  latent_grid: Sequence[int] = ()

  @nn.compact
  def __call__(self, x):
    if self.network == "mlp":
      return MLP((self.width, self.width), name="mlp")(x.reshape(x.shape[:-3] + (-1,)))
    if self.network == "resnet":
      height, width = x.shape[-3], x.shape[-2]
      shapes = ((height, width, 16), (height // 2, width // 2, 32), (height // 4, width // 4, 32))
      h = conv.ConvEncoder(shapes, residual=True, name="resnet")(x)
      return leaky_relu(Dense(self.width, name="hidden_out")(h))
    (height, width), shapes = x.shape[-3:-1], []
    while True:  # halve the image down to the latent grid
      shapes.append((height, width, self.width))
      if (height, width) == tuple(self.latent_grid) or height % 2 or width % 2:
        break
      height, width = height // 2, width // 2
    if (height, width) != tuple(self.latent_grid):
      raise ValueError(f"The conv encoder halves {x.shape[-3:-1]} images, which never gives the "
                       f"{tuple(self.latent_grid)} latent grid of the patches.")
    return conv.ConvEncoder(tuple(shapes), residual=True, flatten=False, name="resnet")(x)


class LatentLayer(nn.Module):
  """One stochastic layer of the latent chain: from z_{l-1} and the layer's features of x,
  eps_l from the posterior (or, with `from_prior`, the prior) and z_l = f_l(eps_l | z_{l-1});
  also the per-unit log-densities, scales and closed-form KL."""
  network: str
  width: int
  latent_shape: Sequence[int]
  prior_feedback: bool
  bijector: str
  bijector_feedback: bool
  posterior: str
  min_prior_scale: float
  min_logstd: float

  @nn.compact
  def __call__(self, z_previous, features, noise, from_prior: bool = False):
    """eps_l = loc + scale * noise from q (or, with `from_prior`, from p, where `features` may be
    None and only eps and z are returned), z_l = f_l(eps_l | z_{l-1}), and per unit: log q,
    log p, their scales and the closed-form KL."""
    loc_p, log_scale_p = self._prior(z_previous)
    p = DiagonalGaussian(loc_p, log_scale_p, event_ndims=len(self.latent_shape))
    if from_prior:
      eps = p.reparameterize(noise)
      return {"eps": eps, "z": self._code(z_previous, eps)}
    loc_q, log_scale_q = self._posterior(loc_p, log_scale_p, features)
    q = DiagonalGaussian(loc_q, log_scale_q, event_ndims=len(self.latent_shape))
    eps = q.reparameterize(noise)
    # eps whitened by its prior, N(0, I) under p whatever mu(z), sigma(z): the scale of eps is
    # free (sigma(z) can grow while the bijector's d, u shrink, leaving z, p(x|z) and the KL as
    # they are), so the latent statistics read this instead.
    return {"eps": eps, "z": self._code(z_previous, eps), "white": p.standardize(eps),
            "log_scale_q": log_scale_q, "log_scale_p": log_scale_p,
            "log_q": q.unit_log_prob(eps), "log_p": p.unit_log_prob(eps),
            "kl": q.unit_kl_divergence(p)}  # closed form (Eq. 10)

  def _prior(self, z_previous):
    """p(eps_l | z_{l-1}) = N(mu(z), sigma(z)), or N(0, I) without prior feedback."""
    if not self.prior_feedback:
      return jnp.zeros(z_previous.shape), jnp.zeros(z_previous.shape)
    # A zero-initialised head (as the bijector's c and d): every layer starts at N(0, 1), or
    # N(0, (1 + m)^2) with the lower bound m, so the L-layer chain does not start by amplifying
    # itself.
    loc, raw_scale = LatentHead(tuple(self.latent_shape), 2, kernel_init=nn.initializers.zeros,
                                name="prior_head")(
                                    Trunk(self.network, self.width, name="prior")(
                                        _soft_clip(z_previous)))
    log_scale = jnp.maximum(raw_scale, self.min_logstd)
    if self.min_prior_scale:  # Section 4.2.1: sigma(z) = m + exp(raw) >= m (m = 1 on CIFAR-10)
      log_scale = jnp.logaddexp(math.log(self.min_prior_scale), log_scale)
    return loc, log_scale

  def _posterior(self, loc_p, log_scale_p, features):
    """q(eps_l | z_{l-1}, x): residual to the prior (3.4.2), or precision-weighted with it
    (ladder VAE); without prior feedback there is no prior to correct: N(mu(x), sigma(x))."""
    shape = tuple(self.latent_shape)
    if self.posterior == "precision_weighted":
      loc_x, log_scale_x = LatentHead(shape, 2, name="posterior_head")(features)
      log_scale_x = jnp.maximum(log_scale_x, self.min_logstd)
      log_scale_q = -0.5 * jnp.logaddexp(-2 * log_scale_p, -2 * log_scale_x)
      loc_q = (loc_p * jnp.exp(2 * (log_scale_q - log_scale_p))
               + loc_x * jnp.exp(2 * (log_scale_q - log_scale_x)))
    elif self.prior_feedback:
      # Section 3.4.2: q = N(mu(z) ds(x) + dmu(x), sigma(z) ds(x)) with ds(x) <= 1.
      delta_loc, raw_delta = LatentHead(shape, 2, name="posterior_head")(features)
      log_delta_scale = jax.nn.log_sigmoid(raw_delta)
      loc_q = loc_p * jnp.exp(log_delta_scale) + delta_loc
      log_scale_q = log_scale_p + log_delta_scale
    else:
      loc_q, log_scale_q = LatentHead(shape, 2, name="posterior_head")(features)
    return loc_q, jnp.maximum(log_scale_q, self.min_logstd)

  def _code(self, z_previous, eps):
    """z_l = f_l(eps_l | z_{l-1}), or eps_l itself without a bijector."""
    if self.bijector == "none":
      return eps
    return self.affine(z_previous).forward(eps)

  def affine(self, z_previous):
    """f_l as a distrax bijector on flattened latents: c + (diag(d) + u u^T) eps, d > 0."""
    shape = tuple(self.latent_shape)
    context = _soft_clip(z_previous) if self.bijector_feedback else jnp.zeros_like(z_previous)
    h = Trunk(self.network, self.width, name="bijector")(context)
    # c and d start at the identity map (zero head); u must not start at 0, where its gradient,
    # through u (u^T eps), vanishes for good: a small random u instead.
    shift, raw_diag = LatentHead(shape, 2, kernel_init=nn.initializers.zeros,
                                 name="bijector_head")(h)
    (u,) = LatentHead(shape, 1, kernel_init=nn.initializers.variance_scaling(
        0.01, "fan_in", "truncated_normal"), bias_init=nn.initializers.normal(0.1),
                      name="bijector_u_head")(h)
    diag = jax.nn.softplus(raw_diag + _SOFTPLUS_ONE) + _MIN_DIAG
    flat = lambda a: a.reshape(a.shape[:a.ndim - len(shape)] + (-1,))
    return _FlatBijector(LowRankAffine(flat(shift), flat(diag), flat(u)), shape)


class _FlatBijector:
  """Applies a vector bijector to latents of `shape` (maps are flattened and restored)."""

  def __init__(self, bijector, shape):
    self.bijector, self.shape = bijector, shape

  def _flat(self, a):
    return a.reshape(a.shape[:a.ndim - len(self.shape)] + (-1,))

  def forward(self, eps):
    return self.bijector.forward(self._flat(eps)).reshape(eps.shape)


class DataLayer(nn.Module):
  """p(x_l | z_l, x_{l-1}): the block's per-pixel parameters gamma = gamma1(z_l), plus with
  `coupled` the residual delta(x_{l-1}, z_l) (Section 3.1.3; the residual data layer)."""
  network: str
  width: int
  block_shape: Sequence[int]  # pixels of a block: (D,) or (h, w)
  params_per_pixel: int
  coupled: bool

  def _head(self, h, name):
    if self.network == "conv":  # the latent grid is the patch grid
      return nn.Conv(self.params_per_pixel, (1, 1), name=name)(h)
    out = Dense(math.prod(self.block_shape) * self.params_per_pixel, name=name)(h)
    return out.reshape(h.shape[:-1] + tuple(self.block_shape) + (self.params_per_pixel,))

  @nn.compact
  def __call__(self, z, x_previous):
    """z [S, B, *latent], x_previous [B, *block, C] -> [S, B, *block, P]."""
    params = self._head(Trunk(self.network, self.width, name="latent")(z), "latent_out")
    if not self.coupled:
      return params
    x_previous = jnp.broadcast_to(x_previous, z.shape[:2] + x_previous.shape[1:])
    if self.network == "conv":
      joint = jnp.concatenate([x_previous, z], -1)
    else:
      joint = jnp.concatenate([x_previous.reshape(z.shape[:2] + (-1,)), z], -1)
    return params + self._head(Trunk(self.network, self.width, name="residual")(joint),
                               "residual_out")


class SelfReflectiveVAE(nn.Module):
  """SeRe-VAE, or one of its baselines, over images [B, H, W, C]; the interface of `VAE`."""
  image_shape: Sequence[int]
  num_layers: int
  latent_dim: int  # per layer: units (vectors) or channels of the latent map ('conv')
  network: str = "mlp"
  partition: str = "raster"
  width: int = 256
  encoder_width: int = 256
  prior_feedback: bool = True
  bijector: str = "affine"
  bijector_feedback: bool = True
  data_coupling: bool = True
  posterior: str = "residual"
  encoder: str = "independent"
  min_prior_scale: float = 0.0
  likelihood: str = "bernoulli"
  num_mixtures: int = 10
  min_logstd: float = -11.0
  # Capabilities (vae_jax.models.base.LatentVariableModel).
  has_posterior_sampler = False
  has_flow_posterior = False
  has_kl_per_layer = True
  has_pseudo_inputs = False

  @property
  def blocks(self):
    return block_partition(self.image_shape, self.num_layers, self.partition)

  @property
  def latent_shape(self) -> tuple:
    """One layer's latent: a vector, or for 'conv' a map on the patch grid."""
    if self.network == "conv":
      return self.blocks[0].shape[1:] + (self.latent_dim,)
    return (self.latent_dim,)

  @property
  def latent_groups(self) -> dict:
    size = math.prod(self.latent_shape)
    return {f"layer_{l + 1}": slice(l * size, (l + 1) * size) for l in range(self.num_layers)}

  @property
  def channels(self) -> int:
    return self.image_shape[-1]

  def setup(self):
    num_layers, latent_grid = self.num_layers, self.latent_shape[:-1]
    # One module per layer, unrolled: a vmapped or scanned convolution runs orders of magnitude
    # slower on XLA:CPU (batched-kernel convolutions, convolutions in while loops), and block l
    # is then sampled from its own data layer alone.
    if self.encoder == "independent":  # Section 4.1.1: independent deterministic encoders
      self.encoders = [ImageEncoder(self.network, self.encoder_width, latent_grid)
                       for _ in range(num_layers)]
    else:  # ladder: one bottom-up pass; the top generative layer reads the deepest features
      self.bottom = ImageEncoder(self.network, self.encoder_width, latent_grid)
      self.ups = [Trunk(self.network, self.encoder_width) for _ in range(num_layers - 1)]
    self.layers = [LatentLayer(self.network, self.width, self.latent_shape, self.prior_feedback,
                               self.bijector, self.bijector_feedback, self.posterior,
                               self.min_prior_scale, self.min_logstd)
                   for _ in range(num_layers)]
    params_per_pixel = (self.channels if self.likelihood == "bernoulli"
                        else mixture_params_per_pixel(self.channels, self.num_mixtures))
    self.data_layers = [DataLayer(self.network, self.width, self.blocks[0].shape[1:],
                                  params_per_pixel, self.data_coupling)
                        for _ in range(num_layers)]

  # --- blocks --------------------------------------------------------------------------------
  def _to_blocks(self, x):
    """[B, H, W, C] -> [L, B, *block, C], zero where padded."""
    index, mask = self.blocks
    flat = x.reshape(x.shape[:-3] + (-1, self.channels))
    blocks = jnp.moveaxis(flat[..., index, :], -len(index.shape) - 1, 0)
    return blocks * jnp.asarray(mask, blocks.dtype)[:, None, ..., None]

  def _to_images(self, blocks):
    """[L, B, *block, C] -> [B, H, W, C]: every pixel from the one block holding it."""
    index, mask = self.blocks
    inverse = np.argsort(index[mask])  # positions of pixels 0..HW-1 among the valid entries
    flat = jnp.moveaxis(blocks, 0, 1).reshape(blocks.shape[1], -1, self.channels)
    return flat[:, np.flatnonzero(mask.reshape(-1))[inverse]].reshape(
        (blocks.shape[1],) + tuple(self.image_shape))

  def _data_params(self, z, blocks):
    """[L, S, B, *block, P]: each block's likelihood parameters given z_l and x_{l-1} (zeros for
    the first block; the data layers ignore it without data coupling)."""
    previous = [jnp.zeros_like(blocks[0])] + [blocks[l - 1] for l in range(1, self.num_layers)]
    return jnp.stack([layer(z[l], previous[l]) for l, layer in enumerate(self.data_layers)])

  # --- likelihood of a block's pixels ----------------------------------------------------------
  def _pixels(self, params):
    """p(x_i | .) of each pixel [..., C] from its parameters [..., P]."""
    if self.likelihood == "bernoulli":
      return bernoulli_pixels(params)
    return DiscretizedLogisticMixture(params, self.channels)

  def log_likelihood(self, z, blocks):
    """[S, B]: sum_l log p(x_l | z_l, x_{l-1}) for codes z [L, S, B, *latent] and blocks
    [L, B, *block, C]."""
    params = self._data_params(z, blocks)
    mask = jnp.asarray(self.blocks[1], params.dtype)[:, None, None]
    per_pixel = self._pixels(params).log_prob(blocks[:, None]) * mask
    return jnp.sum(per_pixel, tuple(i for i in range(per_pixel.ndim) if i not in (1, 2)))

  # --- the latent chain ----------------------------------------------------------------------
  def _features(self, x):
    """What each posterior layer reads of x, one entry per layer."""
    if self.encoder == "independent":
      return [encoder(x) for encoder in self.encoders]
    h = [self.bottom(x)]
    for up in self.ups:
      h.append(up(h[-1]))
    return h[::-1]

  def _chain(self, features, noise, from_prior: bool = False):
    """Runs the L layers: dict of [L, S, B, *latent] arrays (eps, z, white, log_q, log_p, kl,
    scales; only eps and z `from_prior`, where `features` may be None)."""
    z, outputs = jnp.zeros(noise.shape[1:]), []
    for l, layer in enumerate(self.layers):
      outputs.append(layer(z, None if features is None else features[l], noise[l], from_prior))
      z = outputs[-1]["z"]
    return {k: jnp.stack([o[k] for o in outputs]) for k in outputs[0]}

  def _noise(self, key, num_samples: int, batch: int):
    return jax.random.normal(key, (self.num_layers, num_samples, batch) + self.latent_shape)

  def _per_unit(self, a):
    """[L, S, B, *latent] -> [S, B, L, *latent]."""
    return jnp.moveaxis(a, 0, 2)

  def log_weights(self, x, key, num_samples: int = 1, deterministic: bool = True) -> LogWeights:
    del deterministic
    return self.log_weights_at(x, self._noise(key, num_samples, x.shape[0]))

  def log_weights_at(self, x, noise) -> LogWeights:
    """The parts of log w at eps_l = loc + scale * noise_l from q(eps_l | z_{l-1}, x), for noise
    [L, S, B, *latent]; `z` holds the whitened base latents (eps_l - mu(z_{l-1})) / sigma(z_{l-1})
    that the latent statistics read."""
    blocks = self._to_blocks(x)
    layers = self._chain(self._features(x), noise)
    units = tuple(range(2, 3 + len(self.latent_shape)))
    log_q, log_p = self._per_unit(layers["log_q"]), self._per_unit(layers["log_p"])
    white = self._per_unit(layers["white"])
    return LogWeights(log_likelihood=self.log_likelihood(layers["z"], blocks),
                      log_prior=jnp.sum(log_p, units), log_posterior=jnp.sum(log_q, units),
                      z=white.reshape(white.shape[:2] + (-1,)), kl_per_unit=log_q - log_p)

  def __call__(self, x, key, deterministic: bool = True):
    return self.log_weights(x, key, deterministic=deterministic)

  def kl_per_layer(self, x, key):
    """[B, L]: KL(q(eps_l | z_{l-1}, x) || p(eps_l | z_{l-1})) in closed form, at one posterior
    sample of z_{l-1} (the per-layer KL of the paper's Figure S8)."""
    layers = self._chain(self._features(x), self._noise(key, 1, x.shape[0]))
    kl = layers["kl"][:, 0]
    return jnp.sum(kl, tuple(range(2, kl.ndim))).T

  def posterior_mean(self, x, key, num_samples: int):
    """E_q[w | x], [B, L * N]: each layer's whitened base latents w_l = (eps_l - mu(z_{l-1})) /
    sigma(z_{l-1}) averaged over posterior samples (0 in a layer whose q equals its prior)."""
    white = self._chain(self._features(x), self._noise(key, num_samples, x.shape[0]))["white"]
    return jnp.moveaxis(jnp.mean(white, 1), 0, 1).reshape(x.shape[0], -1)

  def _draw_blocks(self, z, key):
    """x_l ~ p(x_l | z_l, x_{l-1}) block after block, each given the drawn previous one:
    (drawn blocks, per-pixel means), [L, B, *block, C]."""
    previous = jnp.zeros((z.shape[2],) + self.blocks[0].shape[1:] + (self.channels,))
    drawn, means = [], []
    for l, layer in enumerate(self.data_layers):
      params = layer(z[l], previous)[0]
      pixels = self._pixels(params)
      means.append(pixels.mean())
      drawn.append(pixels.sample(seed=jax.random.fold_in(key, l)))
      previous = drawn[-1]
    return jnp.stack(drawn), jnp.stack(means)

  def generate(self, key, n: int):
    """Per-pixel means of p(x_l | z_l, x_{l-1}) for z drawn from the prior and each x_{l-1}
    drawn before it."""
    chain_key, image_key = jax.random.split(key)
    z = self._chain(None, self._noise(chain_key, 1, n), from_prior=True)["z"]
    return self._to_images(self._draw_blocks(z, image_key)[1])

  def reconstruct(self, x, key):
    """Per-pixel means of each block given the posterior means of the chain and the true
    previous block."""
    del key  # deterministic: posterior means and the true blocks
    layers = self._chain(self._features(x), jnp.zeros((self.num_layers, 1, x.shape[0])
                                                      + self.latent_shape))
    params = self._data_params(layers["z"], self._to_blocks(x))[:, 0]
    return self._to_images(self._pixels(params).mean())

  def decompress(self, x, key):
    """x' ~ p(x | z) with z ~ q(z | x), block after block."""
    chain_key, image_key = jax.random.split(key)
    z = self._chain(self._features(x), self._noise(chain_key, 1, x.shape[0]))["z"]
    return self._to_images(self._draw_blocks(z, image_key)[0])
