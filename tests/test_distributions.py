"""Densities against closed forms and brute-force sums."""
import itertools

import distrax
import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from vae_jax.distributions import DiagonalGaussian, bernoulli_image, standard_normal


def test_gaussian_log_prob_matches_scipy():
  key_loc, key_scale, key_x = jax.random.split(jax.random.PRNGKey(0), 3)
  loc = jax.random.normal(key_loc, (5, 3))
  log_scale = jax.random.normal(key_scale, (5, 3))
  x = jax.random.normal(key_x, (5, 3)) * 2
  expected = stats.norm(np.asarray(loc), np.exp(np.asarray(log_scale))).logpdf(np.asarray(x)).sum(-1)
  np.testing.assert_allclose(DiagonalGaussian(loc, log_scale).log_prob(x), expected, rtol=1e-5)


def test_gaussian_sample_and_log_prob_agree_and_have_right_moments():
  dist = DiagonalGaussian(jnp.array([1.0, -2.0]), jnp.log(jnp.array([0.5, 3.0])))
  z, log_q = dist.sample_and_log_prob(seed=jax.random.PRNGKey(1), sample_shape=20000)
  np.testing.assert_allclose(log_q, dist.log_prob(z), rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(z.mean(0), [1.0, -2.0], atol=0.05)
  np.testing.assert_allclose(z.std(0), [0.5, 3.0], rtol=0.03)
  # Entropy = -E[log q], in closed form.
  np.testing.assert_allclose(dist.entropy(), -log_q.mean(), rtol=0.01)


def test_gaussian_with_tiny_std_stays_finite():
  """log-std clipped at -11 (B.6): log q from the noise, with no (z - loc) cancellation."""
  dist = DiagonalGaussian(jnp.full((4,), 3.0), jnp.full((4,), -11.0))
  _, log_q = dist.sample_and_log_prob(seed=jax.random.PRNGKey(0), sample_shape=100)
  assert np.all(np.isfinite(log_q))
  # E[log q] = -entropy exactly for a Gaussian; a float32 (z - loc) would be off by far more.
  np.testing.assert_allclose(log_q.mean(), -dist.entropy(), rtol=0.01)


def test_bernoulli_image_log_prob_and_gradient_equal_distrax_bernoulli(float64):
  # Extreme logits, where a naive log(sigmoid) would overflow, and a leading sample axis that
  # broadcasts against the images.
  logits = 10 * jax.random.normal(jax.random.PRNGKey(0), (3, 2, 5, 4, 1))
  logits = logits.at[0, 0, 0, 0, 0].set(300.0).at[0, 0, 0, 1, 0].set(-300.0)
  x = (jax.random.uniform(jax.random.PRNGKey(1), (2, 5, 4, 1)) < 0.4).astype(jnp.float64)
  x = x.at[0, 0, 0, 0].set(0.0).at[0, 0, 1, 0].set(1.0)
  reference = lambda l: distrax.Independent(distrax.Bernoulli(logits=l), 3).log_prob(x)
  ours = lambda l: bernoulli_image(l).log_prob(x)
  assert ours(logits).shape == (3, 2)
  np.testing.assert_allclose(ours(logits), reference(logits), rtol=1e-12)
  gradient = lambda f: jax.grad(lambda l: jnp.sum(f(l)))(logits)
  np.testing.assert_allclose(gradient(ours), gradient(reference), rtol=1e-12, atol=1e-12)


def test_standard_normal_event_shape():
  dist = standard_normal((2, 3))
  assert dist.event_shape == (2, 3)
  np.testing.assert_allclose(dist.log_prob(jnp.zeros((2, 3))), -3 * np.log(2 * np.pi), rtol=1e-6)


def test_bernoulli_image_sums_pixels_and_normalises():
  logits = jax.random.normal(jax.random.PRNGKey(0), (2, 2, 1)) * 3
  dist = bernoulli_image(logits)
  probs = jax.nn.sigmoid(logits).ravel()
  total = 0.0
  for bits in itertools.product([0.0, 1.0], repeat=4):
    x = jnp.array(bits).reshape(2, 2, 1)
    brute = np.prod([p if b else 1 - p for p, b in zip(probs, bits)])
    np.testing.assert_allclose(dist.log_prob(x), np.log(brute), rtol=1e-5)
    total += brute
  np.testing.assert_allclose(total, 1.0, rtol=1e-6)
  np.testing.assert_allclose(dist.mean(), jax.nn.sigmoid(logits), rtol=1e-6)
