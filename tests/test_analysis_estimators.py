"""The analysis estimators against exact answers.

Most checks use a linear-Gaussian VAE: z ~ N(0, I_d), x | z ~ N(W z + b, s^2 I) with orthogonal
columns of W, so the true posterior is a diagonal Gaussian, the marginal is N(b, W W^T + s^2 I)
and, for x drawn from that marginal, the aggregated exact posterior is the prior itself.
"""
import math

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special, stats

from vae_jax import evaluate, parallel
from vae_jax.analysis import estimators
from vae_jax.models import VAE, create_model
from vae_jax.priors import StandardNormalPrior
from vae_jax.models.factory import component

from conftest import tiny_config
from test_flows import _perturb

LATENT, DATA, NOISE = 3, 5, 0.6
SCALES = np.array([1.5, 0.8, 0.0])  # the columns' norms; a zero column is an inactive unit


class _Flatten(nn.Module):

  def __call__(self, x):
    return x.reshape(x.shape[:-3] + (-1,))


class _LinearDecoder(nn.Module):

  @nn.compact
  def __call__(self, z):
    return nn.Dense(DATA, name="linear")(z)[..., None, None, :]


class _GaussianHead(nn.Module):
  """x | z ~ N(features, NOISE^2) over [H=1, W=1, C=DATA]."""

  def __call__(self, features, x=None, deterministic: bool = True):
    del x, deterministic
    return distrax.Independent(distrax.Normal(features, NOISE), reinterpreted_batch_ndims=3)


class LinearGaussian:
  """The model, its parameters, and the closed forms."""

  def __init__(self, seed=0, exact_posterior=True):
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(DATA, LATENT)))
    self.w = q * SCALES  # orthogonal columns: W^T W = diag(SCALES^2)
    self.b = rng.normal(size=DATA)
    self.model = VAE(encoder=_Flatten(), decoder=_LinearDecoder(), head=_GaussianHead(),
                     prior=StandardNormalPrior((LATENT,)), latent_shape=(LATENT,))
    self.post_var = 1 / (1 + SCALES**2 / NOISE**2)
    self.encoder_matrix = (self.post_var[:, None] * self.w.T) / NOISE**2  # mu = A (x - b)
    a, log_std = self.encoder_matrix, 0.5 * np.log(self.post_var)
    if not exact_posterior:
      # Wider than the true posterior, so the importance weights are bounded and the IS
      # estimate converges quickly.
      a = a + 0.1 * rng.normal(size=a.shape)
      log_std = log_std + 0.3 + 0.3 * np.abs(rng.normal(size=log_std.shape))
    self.a, self.log_std = a, log_std
    x = jnp.zeros((1, 1, 1, DATA))
    params = self.model.init(jax.random.PRNGKey(0), x, jax.random.PRNGKey(1))["params"]
    params = jax.tree_util.tree_map(np.asarray, params)
    params["posterior_loc"] = {"kernel": a.T, "bias": -a @ self.b}
    params["posterior_logstd"] = {"kernel": np.zeros((DATA, LATENT)), "bias": log_std}
    params["decoder"] = {"linear": {"kernel": self.w.T, "bias": self.b}}
    self.params = jax.tree_util.tree_map(lambda v: jnp.asarray(v, jnp.float32), params)

  def sample_x(self, n, seed):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, LATENT))
    x = z @ self.w.T + self.b + NOISE * rng.normal(size=(n, DATA))
    return x.reshape(n, 1, 1, DATA).astype(np.float32)

  # The closed forms below are float64 NumPy, independent of the JAX code under test: inputs are
  # converted first, so that a JAX array passed in never turns them into JAX computations.
  def log_marginal(self, x):
    x = np.asarray(x, np.float64)
    cov = self.w @ self.w.T + NOISE**2 * np.eye(DATA)
    return stats.multivariate_normal(self.b, cov).logpdf(x.reshape(-1, DATA))

  def posterior(self, x):
    """The encoder's q(z|x) = N(m, diag(v))."""
    x = np.asarray(x, np.float64)
    return (x.reshape(-1, DATA) - self.b) @ self.a.T, np.exp(2 * self.log_std)

  def elbo_parts(self, x):
    x = np.asarray(x, np.float64)
    m, v = self.posterior(x)
    residual = x.reshape(-1, DATA) - m @ self.w.T - self.b
    recons = (-0.5 * DATA * np.log(2 * np.pi * NOISE**2)
              - (np.sum(residual**2, -1) + np.trace(self.w @ np.diag(v) @ self.w.T))
              / (2 * NOISE**2))
    kl = 0.5 * np.sum(v + m**2 - 1 - np.log(v), -1)
    return recons, kl


@pytest.fixture(scope="module")
def exact():
  return LinearGaussian(exact_posterior=True)


@pytest.fixture(scope="module")
def approximate():
  return LinearGaussian(exact_posterior=False)


def _bounds(lg, x, num_samples):
  estimate = evaluate.make_bound_estimator(lg.model, num_samples, sample_chunk=100)
  return jax.jit(estimate)(lg.params, jnp.asarray(x), jax.random.PRNGKey(3))


def test_exact_posterior_gives_the_marginal_likelihood_with_zero_gap(exact):
  """With q(z|x) = p(z|x) every importance weight is p(x): IS log-likelihood and ELBO both equal
  log p(x), and kl_{z|x} = log p(x) - ELBO is zero."""
  x = exact.sample_x(8, seed=1)
  out = _bounds(exact, x, 100)
  np.testing.assert_allclose(out["log_likelihood"], exact.log_marginal(x), atol=2e-4)
  np.testing.assert_allclose(out["elbo"], exact.log_marginal(x), atol=2e-4)


def test_elbo_parts_and_gap_match_closed_forms(approximate):
  """A wrong encoder: recons, KL(q || p(z)) and ELBO against their closed forms; the IS estimate
  converges to log p(x) and log p(x) - ELBO to the analytic KL(q(z|x) || p(z|x))."""
  lg = approximate
  x = lg.sample_x(6, seed=2)
  out = _bounds(lg, x, 20000)
  recons, kl = lg.elbo_parts(x)
  # Monte Carlo with 20,000 samples: about 1% (a missing term or factor is far larger).
  np.testing.assert_allclose(out["reconstruction"], recons, rtol=0.01, atol=0.03)
  np.testing.assert_allclose(out["kl"], kl, rtol=0.01, atol=0.03)
  np.testing.assert_allclose(out["elbo"], recons - kl, rtol=0.01, atol=0.03)
  log_px = lg.log_marginal(x)
  np.testing.assert_allclose(out["log_likelihood"], log_px, atol=0.02)
  # KL between the encoder's Gaussian and the true posterior N(A*(x - b), diag(post_var)).
  m, v = lg.posterior(x)
  m_true = (x.reshape(-1, DATA) - lg.b) @ lg.encoder_matrix.T
  kl_true_posterior = 0.5 * np.sum(v / lg.post_var + (m - m_true)**2 / lg.post_var - 1
                                   - np.log(v / lg.post_var), -1)
  assert np.all(kl_true_posterior > 0.1)  # the gap is real, not a tolerance artefact
  np.testing.assert_allclose(log_px - np.asarray(out["elbo"]), kl_true_posterior, atol=0.06)


def test_active_units_match_the_analytic_variance_of_posterior_means(exact):
  """Var_x(E[z_k|x]) = c_k^2 / (c_k^2 + s^2) under the marginal: 0.86, 0.64 and 0 (the zero
  column). Thresholds below, between and above those give 2, 1 and 0 active units."""
  images = jnp.asarray(exact.sample_x(4000, seed=3))
  variance = SCALES**2 / (SCALES**2 + NOISE**2)
  for threshold, expected in ((0.01, 2), (0.75, 1), (0.9, 0)):
    counts = evaluate.active_units(exact.model, exact.params, images, "binary",
                                   jax.random.PRNGKey(0), threshold, num_samples=10)
    assert counts["active_units"] == expected, (threshold, variance)


def test_aggregated_exact_posterior_is_the_prior(exact):
  """For x ~ p(x) and the exact posterior, q(z) = p(z): the Monte Carlo log q(z) over 20,000
  points matches log N(z; 0, I), KL(q(z) || p(z)) of Algorithm B.2 is ~0, and its mutual
  information matches I(x; z) = sum_k 0.5 log(1 + c_k^2 / s^2)."""
  images = jnp.asarray(exact.sample_x(20000, seed=4))
  posteriors = estimators.encode(exact.model, exact.params, images, "binary",
                                 jax.random.PRNGKey(0))
  z = jnp.asarray(np.random.default_rng(5).normal(size=(50, LATENT)) * 0.8, jnp.float32)
  log_q = estimators.aggregate_log_posterior(exact.model, exact.params, z, posteriors)
  np.testing.assert_allclose(log_q, stats.multivariate_normal(np.zeros(LATENT)).logpdf(z),
                             atol=0.05)
  result = estimators.aggregate_kl(exact.model, exact.params, images[:4000], "binary",
                                   jax.random.PRNGKey(6), num_binarizations=1, num_z=5)
  assert abs(result["aggregated_posterior_kl"]) < 0.03
  mutual_information = np.sum(0.5 * np.log(1 + SCALES**2 / NOISE**2))
  assert result["mutual_information"] == pytest.approx(mutual_information, abs=0.05)
  # For the exact posterior, E KL(q(z|x) || p(z)) = E[-log v_k / 2] summed = I(x; z) as well.
  assert result["posterior_prior_kl"] == pytest.approx(mutual_information, abs=0.05)


def test_log_mixture_density_matches_brute_force_sum():
  rng = np.random.default_rng(7)
  loc = rng.normal(size=(1037, 4)).astype(np.float32)
  log_scale = rng.uniform(-3, 0.5, size=(1037, 4)).astype(np.float32)
  w = rng.normal(size=(301, 4)).astype(np.float32)
  per_component = stats.norm.logpdf(w[:, None], loc[None], np.exp(log_scale)[None]).sum(-1)
  expected = special.logsumexp(per_component, axis=1) - np.log(1037)
  for w_chunk, component_chunk in ((64, 100), (301, 2048), (7, 1037)):
    got = estimators.log_mixture_density(
        jnp.asarray(w), estimators.Posteriors(jnp.asarray(loc), jnp.asarray(log_scale)),
        w_chunk, component_chunk)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)


def test_log_mixture_density_is_stable_for_tiny_stds():
  """Stds at the clip exp(-11): the expanded-square form would lose everything in float32."""
  loc = jnp.array([[1000.0, -3.0], [1000.0 + 1e-4, -3.0]])
  log_scale = jnp.full((2, 2), -11.0)
  w = loc[:1] + jnp.exp(-11.0) * jnp.array([[0.5, -1.0]])
  got = estimators.log_mixture_density(w, estimators.Posteriors(loc, log_scale))
  per_component = stats.norm.logpdf(np.asarray(w, np.float64)[:, None],
                                    np.asarray(loc, np.float64)[None], math.exp(-11)).sum(-1)
  expected = special.logsumexp(per_component, axis=1) - np.log(2)
  np.testing.assert_allclose(got, expected, rtol=1e-4)


def test_aggregate_log_posterior_with_a_flow_matches_the_sampling_path():
  """One point: log q(z) over {x} is log q(z|x). The inverse-flow path of the analysis must agree
  with the log q(z|x) the model computes while sampling (forward flow, Eq. B.1)."""
  config = tiny_config(prior="standard").model
  config.posterior = component("posterior", "realnvp", num_blocks=2, coupling_hidden=16)
  model = create_model(config, (8, 8, 1))
  x = jax.random.bernoulli(jax.random.PRNGKey(0), 0.4, (16, 8, 8, 1)).astype(jnp.float32)
  params = model.init({"params": jax.random.PRNGKey(1)}, x, jax.random.PRNGKey(2))["params"]
  params = _perturb(params, jax.random.PRNGKey(3), scale=0.1)
  x = x[:1]
  z, log_q = model.apply({"params": params}, x, jax.random.PRNGKey(4), 7,
                         method="sample_posterior")
  posteriors = estimators.encode(model, params, x.astype(jnp.uint8), "binary",
                                 jax.random.PRNGKey(5))
  got = estimators.aggregate_log_posterior(model, params, z[:, 0], posteriors)
  np.testing.assert_allclose(got, log_q[:, 0], rtol=1e-4, atol=1e-3)


def test_nearest_neighbours_match_brute_force():
  rng = np.random.default_rng(8)
  points = rng.normal(size=(603, 6)).astype(np.float32)
  points[17] = points[400]  # a duplicate: its neighbour is the twin at distance 0, not itself
  distances = np.linalg.norm(points[:, None] - points[None], axis=-1)
  np.fill_diagonal(distances, np.inf)
  index, distance = estimators.nearest_neighbours(jnp.asarray(points), jnp.asarray(points),
                                                   jnp.arange(603), 100)
  np.testing.assert_array_equal(index, distances.argmin(1))
  np.testing.assert_allclose(distance, distances.min(1), atol=1e-5)
  assert index[17] == 400 and distance[17] == 0
  queries = rng.normal(size=(5, 6)).astype(np.float32)
  index, _ = estimators.nearest_neighbours(jnp.asarray(queries), jnp.asarray(points))
  np.testing.assert_array_equal(
      index, np.linalg.norm(queries[:, None] - points[None], axis=-1).argmin(1))


def test_identical_centres_have_normalized_distance_zero(exact):
  """Duplicate points (as in a statically binarized set): distance 0, and no NaN from the
  direction of a zero vector."""
  images = jnp.asarray(exact.sample_x(20, seed=13))
  images = images.at[5].set(images[11])
  posteriors = estimators.encode(exact.model, exact.params, images, "binary",
                                 jax.random.PRNGKey(0))
  overlap = estimators.posterior_overlap(exact.model, exact.params, posteriors, posteriors.loc,
                                         20, jax.random.PRNGKey(1), 100)
  assert int(overlap.neighbour[5]) == 11 and float(overlap.distance[5]) == 0
  assert float(overlap.normalized_distance[5]) == 0
  assert np.all(np.isfinite(overlap.normalized_distance))


def test_normalized_distance_monte_carlo_matches_gaussian_closed_form(approximate):
  """B.4 with Gaussian posteriors: Std[i; j] is exactly sqrt(sum_k std_k^2 u_k^2) along the unit
  direction u of d_ij; 4,000 samples per std get within a few percent."""
  lg = approximate
  images = jnp.asarray(lg.sample_x(300, seed=9))
  posteriors = estimators.encode(lg.model, lg.params, images, "binary", jax.random.PRNGKey(0))
  centres, stds = estimators.posterior_moments(lg.model, lg.params, posteriors,
                                               jax.random.PRNGKey(1), 10)
  np.testing.assert_allclose(stds, np.exp(posteriors.log_scale), rtol=1e-6)
  overlap = estimators.posterior_overlap(lg.model, lg.params, posteriors, centres, 50,
                                         jax.random.PRNGKey(2), 4000)
  centres, std = np.asarray(centres), np.exp(np.asarray(posteriors.log_scale))
  d = centres[np.asarray(overlap.neighbour)] - centres[:50]
  u = d / np.linalg.norm(d, axis=-1, keepdims=True)
  std_i = np.sqrt(np.sum(std[:50]**2 * u**2, -1))
  std_j = np.sqrt(np.sum(std[np.asarray(overlap.neighbour)]**2 * u**2, -1))
  np.testing.assert_allclose(overlap.std_i, std_i, rtol=0.06)
  np.testing.assert_allclose(overlap.std_j, std_j, rtol=0.06)
  np.testing.assert_allclose(overlap.normalized_distance,
                             2 * np.linalg.norm(d, axis=-1) / (std_i + std_j), rtol=0.06)


def test_posterior_moments_with_a_flow_match_the_models_posterior_mean():
  config = tiny_config(prior="standard").model
  config.posterior = component("posterior", "realnvp", num_blocks=2, coupling_hidden=16)
  model = create_model(config, (8, 8, 1))
  images = jax.random.bernoulli(jax.random.PRNGKey(0), 0.4, (30, 8, 8, 1)).astype(jnp.uint8)
  params = model.init({"params": jax.random.PRNGKey(1)}, images.astype(jnp.float32),
                      jax.random.PRNGKey(2))["params"]
  params = _perturb(params, jax.random.PRNGKey(3), scale=0.1)
  posteriors = estimators.encode(model, params, images, "binary", jax.random.PRNGKey(4), 7)
  mean, std = estimators.posterior_moments(model, params, posteriors, jax.random.PRNGKey(5),
                                           20000, 8)
  expected = model.apply({"params": params}, images.astype(jnp.float32), jax.random.PRNGKey(6),
                         20000, method="posterior_mean")
  z = model.apply({"params": params}, images.astype(jnp.float32), jax.random.PRNGKey(7), 20000,
                  method="sample_posterior")[0]
  # Two independent 20,000-sample estimates: within 5 standard errors of their difference.
  standard_error = np.sqrt(2 / 20000) * np.asarray(jnp.std(z, 0))
  assert np.all(np.abs(mean - expected) < 5 * standard_error)
  np.testing.assert_allclose(std, jnp.std(z, 0), rtol=0.03)


def test_low_posterior_samples_are_the_lowest_ranked_candidates(exact):
  images = jnp.asarray(exact.sample_x(500, seed=10))
  posteriors = estimators.encode(exact.model, exact.params, images, "binary",
                                 jax.random.PRNGKey(0))
  key = jax.random.PRNGKey(11)
  z, log_q = estimators.low_posterior_samples(exact.model, exact.params, posteriors, key, 400, 10)
  candidates = estimators.prior_sample(exact.model, exact.params, key, 400)
  all_log_q = np.asarray(estimators.aggregate_log_posterior(exact.model, exact.params,
                                                            candidates, posteriors))
  np.testing.assert_allclose(log_q, np.sort(all_log_q)[:10], rtol=1e-6)
  np.testing.assert_allclose(z, candidates[np.argsort(all_log_q)[:10]])


def test_interpolation_runs_from_start_to_end():
  start, end = jnp.array([0.0, 2.0]), jnp.array([4.0, -2.0])
  path = estimators.interpolate(start, end, 5)
  np.testing.assert_allclose(path, [[0, 2], [1, 1], [2, 0], [3, -1], [4, -2]])


def test_map_chunks_keeps_row_order_for_ragged_sizes():
  x = jnp.arange(23.0)
  np.testing.assert_allclose(estimators.map_chunks(lambda r: 2 * r, (x,), 5), 2 * x)


def test_evaluators_posterior_std_is_the_encoders_std(approximate):
  """Table B.3's learned std: the evaluator's posterior_std (from its importance samples) against
  the mean of exp(log-std) that the encoder outputs."""
  lg = approximate
  images = jnp.asarray(lg.sample_x(50, seed=12))
  evaluator = evaluate.DatasetEvaluator(lg.model, parallel.data_mesh(), 2000, 500, 50)
  results = evaluator(lg.params, images, "binary", jax.random.PRNGKey(0))
  assert results["posterior_std"] == pytest.approx(np.exp(lg.log_std).mean(), rel=0.01)
  recons, kl = lg.elbo_parts(images)
  assert results["elbo"] == pytest.approx(np.mean(recons - kl), abs=0.05)
