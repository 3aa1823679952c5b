"""The toy VAE of IAF Figure 1 (launch/iaf_figure1.py): its log q(z|x) against a brute-force
change of variables, its bounds against quadrature, and a short training run."""
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from conftest import launch_module
from test_flows import _perturb


figure1 = launch_module("iaf_figure1.py")
DATA = jnp.asarray(figure1.DATA)


def _small_model(posterior: str):
  return figure1.make_model(posterior, iaf_steps=2, iaf_hidden=8)


@pytest.mark.parametrize("posterior", ["gaussian", "iaf"])
def test_log_q_is_the_change_of_variables_density(posterior):
  """log q(z|x) from sample_posterior equals log N(w; mu(x), sigma(x)) - log|det dz/dw| with
  the Jacobian of w -> z taken by autodiff, for a few samples of each data point; and z is the
  flow applied to that w. With random (perturbed) weights so every MADE connection matters: a
  mask that lets z_i see z_i, or a wrong log-det sign, breaks the equality."""
  model = _small_model(posterior)
  params = _perturb(figure1.init_params(model, jax.random.PRNGKey(0)), jax.random.PRNGKey(1))
  apply = lambda *args, **kw: model.apply({"params": params}, *args, **kw)
  key, num_samples = jax.random.PRNGKey(2), 3
  z, log_q = apply(DATA, key, num_samples, method=figure1.ToyVAE.sample_posterior)
  loc, log_scale, _ = apply(DATA, method=figure1.ToyVAE.encode)
  # The script draws eps ~ N(0, I) [samples, batch, 2] from this key and sets w = mu + sigma eps.
  w = loc + jnp.exp(log_scale) * jax.random.normal(key, (num_samples,) + loc.shape)

  def flow(w_one, x_one):  # one sample w [2] of one data point x [4] -> z [2]
    return apply(w_one[None], x_one[None], method=figure1.ToyVAE.transform)[0][0]

  w_flat = w.reshape(-1, 2)
  x_flat = jnp.tile(DATA, (num_samples, 1))
  jacobians = np.asarray(jax.jit(jax.vmap(jax.jacfwd(flow)))(w_flat, x_flat), np.float64)
  scales = np.exp(np.tile(np.asarray(log_scale, np.float64), (num_samples, 1)))
  log_q_w = np.sum(stats.norm.logpdf(np.asarray(w_flat, np.float64),
                                     np.tile(np.asarray(loc, np.float64), (num_samples, 1)),
                                     scales), -1)
  expected = log_q_w - np.log(np.abs(np.linalg.det(jacobians)))
  np.testing.assert_allclose(z.reshape(-1, 2), jax.vmap(flow)(w_flat, x_flat), atol=1e-5)
  np.testing.assert_allclose(log_q.reshape(-1), expected, rtol=1e-4, atol=1e-4)
  if posterior == "iaf":  # the flow is not the identity, so the test above tested something
    assert float(jnp.max(jnp.abs(z - w))) > 1e-2
    assert np.max(np.abs(jacobians[:, 0, 1])) > 1e-3 and np.max(np.abs(jacobians[:, 1, 0])) > 1e-3


def test_short_training_raises_the_elbo_below_exact_log_likelihood():
  """100 Adam steps raise the ELBO of the IAF toy model, and the trained model's numbers keep
  their order: ELBO <= log p(x) (grid quadrature) <= -log 4 on average. The quadrature is checked
  on its own: p(x) summed over all 16 binary vectors of length 4 is 1."""
  model = _small_model("iaf")
  params, losses = figure1.train(model, seed=0, steps=100, learning_rate=1e-2, num_samples=16,
                                 chunk=100)
  assert losses.shape == (100,) and np.all(np.isfinite(losses))
  assert np.mean(losses[-20:]) < np.mean(losses[:20]) - 0.1
  metrics = figure1.evaluate(model, params, jax.random.PRNGKey(3))
  assert metrics["elbo"] < metrics["log_likelihood_grid"] <= figure1.BEST_LOG_LIKELIHOOD + 1e-3
  per_point = zip(metrics["elbo_per_point"], metrics["log_likelihood_grid_per_point"])
  assert all(elbo < exact for elbo, exact in per_point)
  all_binary = np.array(list(itertools.product((0, 1), repeat=4)), np.float32)
  total = jax.scipy.special.logsumexp(figure1.grid_log_likelihood(model, params, all_binary))
  assert abs(float(total)) < 1e-3
