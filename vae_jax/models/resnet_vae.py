"""ResNet VAE with bottom-up or bidirectional inference (Kingma et al. 2016, Appendix C, Fig. 3-6).

L stacked layers, each a bottom-up residual unit (inference) and a top-down residual unit
(generation and inference), all on one 16x16 grid (C.4: the first encoder layer subsamples 2x2
and the last decoder layer upsamples to match; no further resampling). The top-down unit of
layer l computes p(z_l | h_l^(p)) = N(mu, sigma) and deterministic features; the sample z_l,
after the nonlinearity, joins those features in its residual function. The prior is thus
autoregressive over layers: p(z_1:L) = p(z_L) prod p(z_l | z_>l).

Inference (C.1-C.3):
  - bottom-up: z_l ~ q(z_l | h_l^(q)) is drawn in the bottom-up pass and joins that unit's residual
    function, so q(z_1:L|x) = q(z_1|x) q(z_2|z_1, x) ...;
  - bidirectional: a deterministic bottom-up pass, then z_l ~ q(z_l | h_l^(q), h_l^(p)) top-down,
    with Gaussian parameters summed from both passes (as in the paper's code).
Each layer's posterior is a diagonal Gaussian, optionally followed by `iaf_steps` IAF steps
(Algorithm 1) whose autoregressive nets are channel-masked convolutions (ConvMADE) with 0, 1 or 2
hidden layers and the context of the inference direction. ELU, weight normalization with
data-dependent initialisation (C.6, C.7), and a discretized logistic likelihood whose log-scale
is one learned scalar per channel (C.5).

Our reading where the text is silent: 3x3 convolutions; each residual unit's convolutions start
at output scale 0.1 (so p and q start near N(0, I) and each unit near its identity); a learned
top input h_L^(p); log-std clipped at -11 as elsewhere in vae_jax.
"""
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from vae_jax.distributions import DiagonalGaussian
from vae_jax.distributions.discretized_logistic import DiscretizedLogistic
from vae_jax.flows import autoregressive
from vae_jax.flows.made import ConvMADE
from vae_jax.models.base import LogWeights
from vae_jax.nets.weight_norm import WNConv

_BRANCH_INIT_SCALE = 0.1


class LayerPosterior(nn.Module):
  """q(z_l | .): N(mean, exp(logsd)) followed by `steps` IAF steps given `context`.

  Returns z and log q(z|.) per unit: the Gaussian's unit log-density minus each step's per-unit
  log sigma (an IAF step's Jacobian is triangular, so its log-det splits over units)."""
  steps: int
  hidden: Sequence[int]
  location_only: bool
  min_logstd: float

  @nn.compact
  def __call__(self, mean, logsd, context, key):
    q = DiagonalGaussian(mean, jnp.maximum(logsd, self.min_logstd), event_ndims=3)
    z, log_q_units = q.sample_and_unit_log_prob(key, 1)
    z, log_q_units = z[0], log_q_units[0]
    for t in range(self.steps):
      made = ConvMADE(self.hidden, 1 if self.location_only else 2,
                      order=tuple(autoregressive.step_order(z.shape[-1], t)),
                      output_bias=(0.0,) if self.location_only else
                      (0.0, autoregressive.IAF_GATE_BIAS), name=f"iaf_{t}")
      z, log_det_units = autoregressive.iaf_update(made(z, context), z, self.location_only)
      log_q_units = log_q_units - log_det_units
    return z, log_q_units


def _split(a, sizes):
  return jnp.split(a, list(np.cumsum(sizes)[:-1]), axis=-1)


class ResNetVAE(nn.Module):
  """Appendix C's ResNet VAE over images [N, H, W, C] in [0, 1] (8-bit values)."""
  num_layers: int
  hidden: int = 160
  latent_channels: int = 32
  bidirectional: bool = True
  iaf_steps: int = 0
  iaf_hidden: Sequence[int] = ()
  location_only: bool = False
  image_shape: Sequence[int] = (32, 32, 3)
  min_logstd: float = -11.0
  # Capabilities (vae_jax.models.base.LatentVariableModel).
  has_posterior_sampler = False
  has_flow_posterior = False
  has_kl_per_layer = False
  has_pseudo_inputs = False

  @property
  def grid(self) -> tuple:
    return (self.image_shape[0] // 2, self.image_shape[1] // 2)

  @property
  def latent_shape(self) -> tuple:
    """All layers' z side by side on the channel axis: [H/2, W/2, L * latent_channels]."""
    return self.grid + (self.num_layers * self.latent_channels,)

  @property
  def latent_groups(self) -> dict:
    size = self.grid[0] * self.grid[1] * self.num_layers * self.latent_channels
    return {"z": slice(0, size)}

  def setup(self):
    z, h = self.latent_channels, self.hidden
    self.input_conv = WNConv(h, strides=2)
    # Bottom-up units output [q mean, q logsd, context, features]; top-down units [p mean,
    # p logsd, (bidirectional: posterior mean and logsd offsets, context), features].
    # Their outputs start at scale 0.1, so every p(z_l|.) and q(z_l|.) starts near N(0, I).
    self.up_in = [WNConv(2 * z + 2 * h, init_scale=_BRANCH_INIT_SCALE, name=f"up_{l}_in")
                  for l in range(self.num_layers)]
    self.up_out = [WNConv(h, init_scale=_BRANCH_INIT_SCALE, name=f"up_{l}_out")
                   for l in range(self.num_layers)]
    down_size = 2 * z + (2 * z + h if self.bidirectional else 0) + h
    self.down_in = [WNConv(down_size, init_scale=_BRANCH_INIT_SCALE, name=f"down_{l}_in")
                    for l in range(self.num_layers)]
    self.down_out = [WNConv(h, init_scale=_BRANCH_INIT_SCALE, name=f"down_{l}_out")
                     for l in range(self.num_layers)]
    self.posteriors = [LayerPosterior(self.iaf_steps, tuple(self.iaf_hidden), self.location_only,
                                      self.min_logstd, name=f"posterior_{l}")
                       for l in range(self.num_layers)]
    # Random, not zero: the data-dependent init of the first top-down unit needs inputs that vary.
    self.top = self.param("top", nn.initializers.normal(1.0), self.grid + (h,))
    self.output_conv = WNConv(self.image_shape[-1], strides=2, transpose=True,
                              init_scale=_BRANCH_INIT_SCALE)
    # C.5: "the log-scales log s_i are learned scalar parameter per input channel".
    # Starting at s = e^-2 = 0.14, the logistic scale of CIFAR-10's pixel spread (std ~0.25).
    self.output_log_scale = self.param("output_log_scale", nn.initializers.constant(-2.0),
                                       (self.image_shape[-1],))

  def _bottom_up(self, x, keys):
    """The bottom-up pass over x [N, H, W, C]: per layer (q mean, q logsd, context) for
    bidirectional inference, or (z, log q per unit) for bottom-up inference."""
    h = self.input_conv(x - 0.5)
    outputs = []
    for l in range(self.num_layers):
      mean, logsd, context, features = _split(
          self.up_in[l](jax.nn.elu(h)), [self.latent_channels] * 2 + [self.hidden] * 2)
      if self.bidirectional:
        outputs.append((mean, logsd, context))
      else:
        z, log_q_units = self.posteriors[l](mean, logsd, context, keys[l])
        outputs.append((z, log_q_units))
        features = jnp.concatenate([z, features], -1)
      h = h + self.up_out[l](jax.nn.elu(features))
    return outputs

  def _top_down(self, n: int, up_outputs, keys):
    """The top-down pass from layer L to 1. With up_outputs None, z_l ~ p(z_l | z_>l).
    Returns the output features, z, log q per unit (None when generating), log p per unit."""
    h = jnp.broadcast_to(self.top, (n,) + self.top.shape)
    zs, log_qs, log_ps = [], [], []
    for l in reversed(range(self.num_layers)):
      sizes = [self.latent_channels] * 2
      if self.bidirectional:
        sizes += [self.latent_channels] * 2 + [self.hidden]
      parts = _split(self.down_in[l](jax.nn.elu(h)), sizes + [self.hidden])
      prior = DiagonalGaussian(parts[0], jnp.maximum(parts[1], self.min_logstd), event_ndims=3)
      features = parts[-1]
      if up_outputs is None:
        z, log_q_units = prior.sample(seed=keys[l]), None
      elif self.bidirectional:
        q_mean, q_logsd, up_context = up_outputs[l]
        z, log_q_units = self.posteriors[l](q_mean + parts[2], q_logsd + parts[3],
                                            up_context + parts[4], keys[l])
      else:
        z, log_q_units = up_outputs[l]
      zs.append(z)
      log_qs.append(log_q_units)
      log_ps.append(prior.unit_log_prob(z))
      h = h + self.down_out[l](jax.nn.elu(jnp.concatenate([z, features], -1)))
    # Layer 1 first on the channel axis, as in latent_shape.
    return h, zs[::-1], log_qs[::-1], log_ps[::-1]

  def _likelihood(self, h) -> DiscretizedLogistic:
    loc = self.output_conv(jax.nn.elu(h)) + 0.5
    return DiscretizedLogistic(loc, jnp.maximum(self.output_log_scale, self.min_logstd))

  def _posterior_pass(self, x, key, num_samples: int):
    """x tiled num_samples times: ([S*N] likelihood, z, log q units, log p units)."""
    x = jnp.broadcast_to(x, (num_samples,) + x.shape).reshape((-1,) + x.shape[1:])
    up_key, down_key = jax.random.split(key)
    up = self._bottom_up(x, jax.random.split(up_key, self.num_layers))
    h, zs, log_qs, log_ps = self._top_down(x.shape[0], up,
                                           jax.random.split(down_key, self.num_layers))
    return x, self._likelihood(h), zs, log_qs, log_ps

  def log_weights(self, x, key, num_samples: int = 1, deterministic: bool = True) -> LogWeights:
    del deterministic  # no dropout
    tiled, likelihood, zs, log_qs, log_ps = self._posterior_pass(x, key, num_samples)
    unflatten = lambda a: a.reshape((num_samples, x.shape[0]) + a.shape[1:])
    event_sum = lambda a: jnp.sum(a, axis=(-3, -2, -1))
    log_q = sum(event_sum(a) for a in log_qs)
    log_p = sum(event_sum(a) for a in log_ps)
    kl_units = jnp.concatenate([q - p for q, p in zip(log_qs, log_ps)], -1)
    return LogWeights(log_likelihood=unflatten(likelihood.log_prob(tiled)),
                      log_prior=unflatten(log_p), log_posterior=unflatten(log_q),
                      z=unflatten(jnp.concatenate(zs, -1)), kl_per_unit=unflatten(kl_units))

  def __call__(self, x, key, deterministic: bool = True):
    return self.log_weights(x, key, deterministic=deterministic)

  def posterior_mean(self, x, key, num_samples: int):
    """E_q[z|x] over all layers, [N, D], as a mean of `num_samples` samples."""
    z = self.log_weights(x, key, num_samples).z
    return jnp.mean(z, axis=0).reshape(x.shape[0], -1)

  def generate(self, key, n: int):
    """E[x|z] for z_1:L drawn top-down from the prior."""
    h = self._top_down(n, None, jax.random.split(key, self.num_layers))[0]
    return self._likelihood(h).mean()

  def reconstruct(self, x, key):
    """E[x|z] for one z ~ q(z|x)."""
    return self._posterior_pass(x, key, 1)[1].mean()

  def decompress(self, x, key):
    """x' ~ p(x|z) with z ~ q(z|x)."""
    posterior_key, image_key = jax.random.split(key)
    return self._posterior_pass(x, posterior_key, 1)[1].sample(seed=image_key)
