"""The two-level ResnetHVAE of Xu et al. (2020), Appendix B.13 (after Tomczak & Welling 2018).

p(x, z1, z2) = p(x|z1, z2) p(z1|z2) p(z2) and q(z1, z2|x) = q(z1|x, z2) q(z2|x), with a
standard or RealNVP prior on z2 and Gaussian p(z1|z2). Same interface as `VAE`.
"""
import flax.linen as nn
import jax
import jax.numpy as jnp

from vae_jax.distributions import DiagonalGaussian
from vae_jax.models.vae import LogWeights
from vae_jax.nets.dense import MLP

# B.13: t(x) = h(x) -> Dense[150 -> 150], u(z2) = z2 -> Dense[150 -> 150],
# g(x, z2) = Concat[t, u] -> Dense[300], and t_theta(z2) = z2 -> Dense[150 -> 150].
_BRANCH = (150, 150)
_JOINT = (300,)


class _GaussianFromFeatures(nn.Module):
  """h -> N(Linear[D](h), exp(max(Linear[D](h), min_logstd)))."""
  latent_dim: int
  min_logstd: float

  @nn.compact
  def __call__(self, h) -> DiagonalGaussian:
    log_scale = jnp.maximum(nn.Dense(self.latent_dim, name="logstd")(h), self.min_logstd)
    return DiagonalGaussian(nn.Dense(self.latent_dim, name="loc")(h), log_scale)


class HierarchicalVAE(nn.Module):
  """ResnetHVAE: `encoder` is h_phi(x) of B.2, `decoder` maps Concat[z1, z2] to features."""
  encoder: nn.Module
  decoder: nn.Module
  head: nn.Module
  prior: nn.Module  # p(z2)
  latent_dim: int
  min_logstd: float = -11.0

  def setup(self):
    self.q_z2 = _GaussianFromFeatures(self.latent_dim, self.min_logstd)
    self.t_x = MLP(_BRANCH)
    self.u_z2 = MLP(_BRANCH)
    self.g = MLP(_JOINT)
    self.q_z1 = _GaussianFromFeatures(self.latent_dim, self.min_logstd)
    self.t_z2 = MLP(_BRANCH)
    self.p_z1 = _GaussianFromFeatures(self.latent_dim, self.min_logstd)

  @property
  def latent_groups(self) -> dict:
    return {"z1": slice(0, self.latent_dim), "z2": slice(self.latent_dim, 2 * self.latent_dim)}

  def _q_z1(self, t, z2) -> DiagonalGaussian:
    t = jnp.broadcast_to(t, z2.shape[:-1] + t.shape[-1:])
    return self.q_z1(self.g(jnp.concatenate([t, self.u_z2(z2)], -1)))

  def _sample_posterior(self, x, key, num_samples: int):
    h = self.encoder(x)
    key_2, key_1 = jax.random.split(key)
    z2, log_q2 = self.q_z2(h).sample_and_log_prob(seed=key_2, sample_shape=num_samples)
    t = self.t_x(h)
    q_z1 = self._q_z1(t, z2)
    z1, log_q1 = q_z1.sample_and_log_prob(seed=key_1)
    return z1, z2, log_q1 + log_q2

  def likelihood(self, z1, z2, x, deterministic: bool = True):
    return self.head(self.decoder(jnp.concatenate([z1, z2], -1)), x, deterministic)

  def log_weights(self, x, key, num_samples: int = 1, deterministic: bool = True) -> LogWeights:
    z1, z2, log_posterior = self._sample_posterior(x, key, num_samples)
    log_prior = self.prior.log_prob(z2) + self.p_z1(self.t_z2(z2)).log_prob(z1)
    return LogWeights(log_likelihood=self.likelihood(z1, z2, x, deterministic).log_prob(x),
                      log_prior=log_prior, log_posterior=log_posterior,
                      z=jnp.concatenate([z1, z2], -1))

  def __call__(self, x, key, deterministic: bool = True):
    return self.log_weights(x, key, deterministic=deterministic)

  def posterior_mean(self, x, key, num_samples: int):
    """[E_q[z1|x], E_q[z2|x]]: z2's exactly, z1's as the mean over z2 samples of q(z1|x, z2)."""
    h = self.encoder(x)
    q_z2 = self.q_z2(h)
    z2 = q_z2.sample(seed=jax.random.split(key)[0], sample_shape=num_samples)  # as _sample_posterior
    mean_z1 = jnp.mean(self._q_z1(self.t_x(h), z2).mean(), axis=0)
    return jnp.concatenate([mean_z1, q_z2.mean()], -1)

  def generate(self, key, n: int):
    keys = jax.random.split(key, 3)
    z2 = self.prior.sample(keys[0], n)
    z1 = self.p_z1(self.t_z2(z2)).sample(seed=keys[1])
    return self.head.images(self.decoder(jnp.concatenate([z1, z2], -1)), keys[2])

  def reconstruct(self, x, key):
    """Images decoded from the mean of q(z2|x) and the mean of q(z1|x, z2) there."""
    h = self.encoder(x)
    z2 = self.q_z2(h).mean()
    z1 = self._q_z1(self.t_x(h), z2).mean()
    return self.head.images(self.decoder(jnp.concatenate([z1, z2], -1)), key)

  def decompress(self, x, key):
    """x' ~ p(x|z1, z2) with (z1, z2) ~ q(z1, z2|x)."""
    posterior_key, image_key = jax.random.split(key)
    z1, z2, _ = self._sample_posterior(x, posterior_key, 1)
    return self.head.sample(self.decoder(jnp.concatenate([z1[0], z2[0]], -1)), image_key)
