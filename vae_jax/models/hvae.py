"""The two-level hierarchical VAE of Tomczak & Welling (2018), Eq. (10)-(15): the HVAE,
ConvHVAE and PixelHVAE of that paper, and the ResnetHVAE of Xu et al. (2020), Appendix B.13.

p(x, z1, z2) = p(x|z1, z2) p(z1|z2) p(z2) and q(z1, z2|x) = q(z1|x, z2) q(z2|x), with any prior
on z2 (standard, RealNVP, MoG, VampPrior) and Gaussian p(z1|z2). Same interface as `VAE`.
"""
import flax.linen as nn
import jax
import jax.numpy as jnp

from vae_jax import priors
from vae_jax.distributions import DiagonalGaussian
from vae_jax.models.base import LogWeights
from vae_jax.nets.dense import Dense


class _GaussianFromFeatures(nn.Module):
  """h -> N(Linear[D](h), exp(max(Linear[D](h), min_logstd)))."""
  latent_dim: int
  min_logstd: float

  @nn.compact
  def __call__(self, h) -> DiagonalGaussian:
    log_scale = jnp.maximum(Dense(self.latent_dim, name="logstd")(h), self.min_logstd)
    return DiagonalGaussian(Dense(self.latent_dim, name="loc")(h), log_scale)


class HierarchicalVAE(nn.Module):
  """q(z2|x) = N(. | encoder(x)); q(z1|x, z2) = N(. | g(Concat[t_x(.), u_z2(z2)])), where t_x
  reads the image itself (VampPrior paper) or, with `t_x_reads_features`, the encoder's
  features h(x) (B.13); p(z1|z2) = N(. | t_z2(z2)); `decoder` maps Concat[z1, z2] to the head's
  features."""
  encoder: nn.Module
  decoder: nn.Module
  head: nn.Module
  prior: nn.Module  # p(z2)
  t_x: nn.Module
  u_z2: nn.Module
  g: nn.Module
  t_z2: nn.Module
  latent_dim: int
  t_x_reads_features: bool = False
  min_logstd: float = -11.0
  # Capabilities (vae_jax.models.base.LatentVariableModel).
  has_posterior_sampler = False
  has_flow_posterior = False
  has_kl_per_layer = False

  def setup(self):
    self.q_z2 = _GaussianFromFeatures(self.latent_dim, self.min_logstd)
    self.q_z1 = _GaussianFromFeatures(self.latent_dim, self.min_logstd)
    self.p_z1 = _GaussianFromFeatures(self.latent_dim, self.min_logstd)

  @property
  def latent_groups(self) -> dict:
    return {"z1": slice(0, self.latent_dim), "z2": slice(self.latent_dim, 2 * self.latent_dim)}

  @property
  def has_pseudo_inputs(self) -> bool:
    return isinstance(self.prior, priors.VampPrior)

  def _q_z1(self, t, z2) -> DiagonalGaussian:
    t = jnp.broadcast_to(t, z2.shape[:-1] + t.shape[-1:])
    return self.q_z1(self.g(jnp.concatenate([t, self.u_z2(z2)], -1)))

  def _encode(self, x):
    """(q(z2|x), t_x features for q(z1|x, z2))."""
    h = self.encoder(x)
    return self.q_z2(h), self.t_x(h if self.t_x_reads_features else x)

  def q_z2_posterior(self, x) -> DiagonalGaussian:
    """q(z2|x): the components q(z2|u_k) of a VampPrior on z2 (Eq. 12)."""
    return self.q_z2(self.encoder(x))

  def prior_log_prob(self, z2):
    return priors.log_prob(self.prior, z2, self.q_z2_posterior)

  def prior_sample(self, key, n: int):
    return priors.sample(self.prior, key, n, self.q_z2_posterior)

  def _sample_posterior(self, x, key, num_samples: int):
    q_z2, t = self._encode(x)
    key_2, key_1 = jax.random.split(key)
    z2, log_q2 = q_z2.sample_and_log_prob(seed=key_2, sample_shape=num_samples)
    z1, log_q1 = self._q_z1(t, z2).sample_and_log_prob(seed=key_1)
    return z1, z2, log_q1 + log_q2

  def likelihood(self, z1, z2, x, deterministic: bool = True):
    return self.head(self.decoder(jnp.concatenate([z1, z2], -1)), x, deterministic)

  def log_weights(self, x, key, num_samples: int = 1, deterministic: bool = True) -> LogWeights:
    z1, z2, log_posterior = self._sample_posterior(x, key, num_samples)
    log_prior = self.prior_log_prob(z2) + self.p_z1(self.t_z2(z2)).log_prob(z1)
    return LogWeights(log_likelihood=self.likelihood(z1, z2, x, deterministic).log_prob(x),
                      log_prior=log_prior, log_posterior=log_posterior,
                      z=jnp.concatenate([z1, z2], -1))

  def __call__(self, x, key, deterministic: bool = True):
    return self.log_weights(x, key, deterministic=deterministic)

  def posterior_mean(self, x, key, num_samples: int):
    """[E_q[z1|x], E_q[z2|x]]: z2's exactly, z1's as the mean over z2 samples of q(z1|x, z2)."""
    q_z2, t = self._encode(x)
    z2 = q_z2.sample(seed=jax.random.split(key)[0], sample_shape=num_samples)  # as _sample_posterior
    mean_z1 = jnp.mean(self._q_z1(t, z2).mean(), axis=0)
    return jnp.concatenate([mean_z1, q_z2.mean()], -1)

  def generate(self, key, n: int):
    keys = jax.random.split(key, 3)
    z2 = self.prior_sample(keys[0], n)
    z1 = self.p_z1(self.t_z2(z2)).sample(seed=keys[1])
    return self.head.images(self.decoder(jnp.concatenate([z1, z2], -1)), keys[2])

  def reconstruct(self, x, key):
    """Images decoded from the mean of q(z2|x) and the mean of q(z1|x, z2) there."""
    q_z2, t = self._encode(x)
    z2 = q_z2.mean()
    z1 = self._q_z1(t, z2).mean()
    return self.head.images(self.decoder(jnp.concatenate([z1, z2], -1)), key)

  def decompress(self, x, key):
    """x' ~ p(x|z1, z2) with (z1, z2) ~ q(z1, z2|x)."""
    posterior_key, image_key = jax.random.split(key)
    z1, z2, _ = self._sample_posterior(x, posterior_key, 1)
    return self.head.sample(self.decoder(jnp.concatenate([z1[0], z2[0]], -1)), image_key)
