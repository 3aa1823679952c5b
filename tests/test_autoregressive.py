"""MADE masks, IAF steps and AF priors against autodiff Jacobians and their sampling paths."""
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from vae_jax import train
from vae_jax.flows import autoregressive, made
from vae_jax.priors import AutoregressiveFlowPrior

from conftest import tiny_config
from test_flows import _perturb

DIM, CONTEXT = 5, 3


def _jacobian(fn, x):
  """d fn(x) / dx for one point x [D] -> [out..., D]."""
  return jax.jacfwd(lambda v: fn(v[None])[0])(x)


@pytest.mark.parametrize("hidden,order", list(itertools.product(
    [(), (8,), (16, 16)], [None, (3, 0, 4, 1, 2)])))
def test_made_is_strictly_autoregressive_in_its_order(hidden, order):
  """For random weights, output d depends on input i only if i comes before d in the order:
  the Jacobian, rows and columns sorted by the order, is strictly lower-triangular. The last
  dimension sees every earlier one, and the context reaches every output."""
  module = made.MADE(hidden, num_params=2, order=order, activation="elu")  # no dead units
  x = jax.random.normal(jax.random.PRNGKey(0), (4, DIM))
  h = jax.random.normal(jax.random.PRNGKey(1), (4, CONTEXT))
  params = _perturb(module.init(jax.random.PRNGKey(2), x, h), jax.random.PRNGKey(3))
  jacobian = _jacobian(lambda v: module.apply(params, v, h[:1]), x[0])  # [D, 2, D]
  rank = made.input_degrees(np.arange(DIM) if order is None else order)
  allowed = rank[:, None] > rank[None, :]  # [out d, in i]
  for p in range(2):
    assert np.all(np.asarray(jacobian[:, p, :])[~allowed] == 0)
  last = int(np.argmax(rank))
  assert np.all(np.abs(jacobian[last, 0, rank < DIM]) > 0)
  context_jacobian = jax.jacfwd(lambda c: module.apply(params, x[:1], c[None])[0])(h[0])
  assert np.all(np.abs(context_jacobian).sum(-1) > 0)


def test_made_rejects_an_order_that_is_not_a_permutation():
  with pytest.raises(ValueError, match="permutation"):
    made.input_degrees([0, 2, 2])


def _iaf(location_only=False, hidden=(16, 16), steps=3):
  module = autoregressive.IAF(steps, hidden, location_only=location_only)
  z = jax.random.normal(jax.random.PRNGKey(4), (6, DIM))
  h = jax.random.normal(jax.random.PRNGKey(5), (6, CONTEXT))
  params = _perturb(module.init(jax.random.PRNGKey(6), z, h), jax.random.PRNGKey(7), scale=0.3)
  return module, params, z, h


@pytest.mark.parametrize("location_only,hidden", [(False, (16, 16)), (False, ()), (True, (8,))])
def test_iaf_log_det_matches_autodiff_and_the_inverse_round_trips(location_only, hidden):
  module, params, z, h = _iaf(location_only, hidden)
  bijector = lambda: module.apply(params, z, h)
  y, log_det = bijector().forward_and_log_det(z)
  for i in range(z.shape[0]):
    jacobian = _jacobian(lambda v: module.apply(params, z, h[i:i + 1]).forward(v), z[i])
    np.testing.assert_allclose(log_det[i], np.linalg.slogdet(np.asarray(jacobian))[1],
                               rtol=1e-4, atol=1e-4)
  x, inverse_log_det = bijector().inverse_and_log_det(y)
  np.testing.assert_allclose(x, z, atol=1e-4)
  np.testing.assert_allclose(inverse_log_det, -log_det, atol=1e-4)
  if location_only:
    np.testing.assert_allclose(log_det, 0)


def test_iaf_starts_close_to_the_identity_and_uses_its_context():
  """Gate bias +1.5 (IAF Section 4): at initialisation each step keeps most of z."""
  module = autoregressive.IAF(1, (16,))
  z = jax.random.normal(jax.random.PRNGKey(4), (200, DIM))
  h = jax.random.normal(jax.random.PRNGKey(5), (200, CONTEXT))
  params = module.init(jax.random.PRNGKey(6), z, h)
  _, log_det = module.apply(params, z, h).forward_and_log_det(z)
  mean_gate = float(jnp.exp(log_det / DIM).mean())
  assert 0.7 < mean_gate < 0.9  # sigmoid(1.5) = 0.82
  y1 = module.apply(params, z, h).forward(z)
  y2 = module.apply(params, z, -h).forward(z)
  assert not np.allclose(y1, y2)


def _af_prior(mean_only):
  prior = AutoregressiveFlowPrior(DIM, num_steps=3, hidden=(16, 16),
                                                 mean_only=mean_only)
  z = jax.random.normal(jax.random.PRNGKey(8), (7, DIM))
  params = prior.init(jax.random.PRNGKey(9), z, method="log_prob")
  return prior, _perturb(params, jax.random.PRNGKey(10), scale=0.3), z


@pytest.mark.parametrize("mean_only", [True, False])
def test_af_prior_density_matches_its_sampling_path(mean_only):
  """log p(z) (one parallel inverse pass) against the sampling path eps -> z (D sequential
  passes per step): log N(eps) - log|det dz/deps| from the autodiff Jacobian of sampling."""
  prior, params, _ = _af_prior(mean_only)
  eps = jax.random.normal(jax.random.PRNGKey(11), (4, DIM))

  def sample_map(module, e):
    return module._distribution().bijector.forward(e)  # pylint: disable=protected-access
  z = prior.apply(params, eps, method=sample_map)
  log_p = prior.apply(params, z, method="log_prob")
  for i in range(eps.shape[0]):
    jacobian = _jacobian(lambda e: prior.apply(params, e, method=sample_map), eps[i])
    expected = (stats.norm.logpdf(np.asarray(eps[i])).sum()
                - np.linalg.slogdet(np.asarray(jacobian))[1])
    np.testing.assert_allclose(log_p[i], expected, rtol=1e-4, atol=1e-4)
    if mean_only:
      np.testing.assert_allclose(np.linalg.slogdet(np.asarray(jacobian))[1], 0, atol=1e-5)
  samples = prior.apply(params, jax.random.PRNGKey(12), 3, method="sample")
  assert samples.shape == (3, DIM) and np.all(np.isfinite(samples))


def test_af_prior_starts_as_the_standard_normal():
  prior = AutoregressiveFlowPrior(DIM, num_steps=2, hidden=(16,))
  z = jax.random.normal(jax.random.PRNGKey(13), (5, DIM))
  params = prior.init(jax.random.PRNGKey(14), z, method="log_prob")
  np.testing.assert_allclose(prior.apply(params, z, method="log_prob"),
                             stats.norm.logpdf(np.asarray(z)).sum(-1), rtol=1e-5)


def test_a_vae_with_an_af_prior_trains_and_evaluates(tmp_path):
  """config.model.prior='af' end to end on the embedded digits: finite bounds, NLL below ELBO."""
  config = tiny_config("af")
  config.model.prior.hidden = (16, 16)
  config.train.num_epochs = 1
  results = train.train_and_evaluate(config, str(tmp_path))
  assert np.isfinite(results["nll"]) and results["nll"] <= -results["elbo"] + 1e-3
