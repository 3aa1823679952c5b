"""What every model in vae_jax.models provides: the parts of its log weights (`LogWeights`) and the
methods of `LatentVariableModel`, with capability flags for the methods only some models have."""
from typing import NamedTuple, Optional, Protocol, runtime_checkable

import jax


class LogWeights(NamedTuple):
  """Each [num_samples, batch]: the parts of log w = log p(x|z) + log p(z) - log q(z|x).

  `z` holds the samples themselves, [num_samples, batch, *latent_shape], for regularizers and
  latent statistics. `kl_per_unit` [num_samples, batch, *latent_shape], where the model can give
  it, splits log q(z|x) - log p(z) over latent units (for free bits per unit or feature map).
  """
  log_likelihood: jax.Array
  log_prior: jax.Array
  log_posterior: jax.Array
  z: jax.Array
  kl_per_unit: Optional[jax.Array] = None


@runtime_checkable
class LatentVariableModel(Protocol):
  """A VAE over images x [batch, H, W, C]: `VAE`, `HierarchicalVAE`, `ResNetVAE` and
  `SelfReflectiveVAE`. They are Flax modules, so each method runs through
  `model.apply(variables, ..., method=name)`.

  The capability flags say which optional methods a model has; callers read them instead of
  probing for the methods:
    has_posterior_sampler: `sample_posterior(x, key, num_samples)` -> (z, log q(z|x)) draws the
      latent that the model's `prior` module models, on which post-hoc and iterative prior
      training refit that prior (Xu et al. 2020, B.3).
    has_flow_posterior: q(z|x) is the diagonal Gaussian `gaussian_posterior(x)` pushed through
      `flow_posterior(w, context)` (the identity without a posterior flow), inverted by
      `unflow_posterior(z)` where the flow does not depend on x (`flow_depends_on_x`): what the
      analyses of aggregated posteriors (vae_jax.analysis.estimators) need.
    has_kl_per_layer: `kl_per_layer(x, key)` -> [batch, layers]: each stochastic layer's
      KL(q || p).
    has_pseudo_inputs: the `prior` module is a VampPrior, whose `pseudo_inputs()` are images.
  """
  has_posterior_sampler: bool
  has_flow_posterior: bool
  has_kl_per_layer: bool
  has_pseudo_inputs: bool

  @property
  def latent_groups(self) -> dict[str, slice]:
    """Named latent variables -> their columns in `posterior_mean`, for active units."""

  def log_weights(self, x, key, num_samples: int = 1, deterministic: bool = True) -> LogWeights:
    """The parts of log w for `num_samples` z ~ q(z|x) per image; dropout (rng 'dropout')
    unless `deterministic`."""

  def __call__(self, x, key, deterministic: bool = True) -> LogWeights:
    """`log_weights` of one sample per image: the training objective's parts."""

  def posterior_mean(self, x, key, num_samples: int) -> jax.Array:
    """E_q[z|x] flattened to [batch, D]: exact where the model can, else a mean of samples."""

  def generate(self, key, n: int) -> jax.Array:
    """n images shown for latents drawn from the prior."""

  def reconstruct(self, x, key) -> jax.Array:
    """The images shown for latents inferred from x."""

  def decompress(self, x, key) -> jax.Array:
    """x' ~ p(x|z) with z ~ q(z|x) (Chen et al. 2017, Fig. 1a)."""
