"""The Self-Reflective VAE (Apostolopoulou et al.) and its baselines: Proposition 1 by Monte Carlo,
the block partitions, the factorisation of the latent chain and the data layers, normalisation of
p(x) over a whole (tiny) image space, closed-form against Monte Carlo KL, and the paper's cells."""
import math

import distrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vae_jax import config_files, train
from vae_jax.distributions import DiagonalGaussian
from vae_jax.flows.bijectors import LowRankAffine
from vae_jax.models import create_model
from vae_jax.models.sere_vae import LatentLayer, SelfReflectiveVAE, block_partition
from vae_jax.models.factory import component
from conftest import tiny_config

serevae = config_files.module("configs/serevae.py")

VARIANTS = {
    "sere": {},
    "dlgm": {"prior_feedback": False},
    "ladder": {"posterior": "precision_weighted", "encoder": "bottom_up", "bijector": "none"},
    "case1": {"prior_feedback": False, "bijector_feedback": False, "data_coupling": False},
}


def _model_and_params(x, key=0, scale=0.3, **kwargs):
  """A small model with every parameter drawn from N(0, scale^2): shapes from an abstract
  initialisation, so that no initialiser is compiled."""
  settings = dict(image_shape=x.shape[1:], num_layers=2, latent_dim=2, width=8, encoder_width=8)
  model = SelfReflectiveVAE(**dict(settings, **kwargs))
  shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), x, jax.random.PRNGKey(1))["params"]
  rng = np.random.default_rng(key)
  return model, jax.tree_util.tree_map(
      lambda s: jnp.asarray(scale * rng.standard_normal(s.shape), s.dtype), shapes)


def _binary_images(key, n, shape):
  return jax.random.bernoulli(jax.random.PRNGKey(key), 0.5, (n,) + shape).astype(jnp.float32)


def _gaussians_and_bijector(dim=3):
  keys = jax.random.split(jax.random.PRNGKey(0), 6)
  q = DiagonalGaussian(jax.random.normal(keys[0], (dim,)), 0.3 * jax.random.normal(keys[1], (dim,)))
  p = DiagonalGaussian(jax.random.normal(keys[2], (dim,)), 0.3 * jax.random.normal(keys[3], (dim,)))
  affine = LowRankAffine(jax.random.normal(keys[4], (dim,)), jnp.array([0.5, 1.0, 2.0]),
                         jax.random.normal(keys[5], (dim,)))
  return q, p, affine


def _full_covariance_kl(mean_q, cov_q, mean_p, cov_p):
  """KL(N(mean_q, cov_q) || N(mean_p, cov_p)) in float64."""
  inverse_p = np.linalg.inv(cov_p)
  diff = mean_p - mean_q
  return 0.5 * (np.trace(inverse_p @ cov_q) + diff @ inverse_p @ diff - len(mean_q)
                + np.linalg.slogdet(cov_p)[1] - np.linalg.slogdet(cov_q)[1])


def test_proposition_1_for_the_affine_bijector_in_closed_form():
  """z = c + A eps with A = diag(d) + u u^T pushes N(m, S) to N(c + A m, A S A^T): the
  full-covariance KL in z equals the diagonal KL in eps; the pushforward's density from the
  distrax bijector (inverse pass and log-det) equals the closed-form Gaussian density in z."""
  q, p, affine = _gaussians_and_bijector()
  matrix = np.diag(np.float64(affine.diag)) + np.outer(affine.u, affine.u)
  shift = np.float64(affine.shift)
  moments = lambda g: (shift + matrix @ np.float64(g.loc),
                       matrix @ np.diag(np.exp(2 * np.float64(g.log_scale))) @ matrix.T)
  kl_eps = float(jnp.sum(q.unit_kl_divergence(p)))
  np.testing.assert_allclose(_full_covariance_kl(*moments(q), *moments(p)), kl_eps, rtol=1e-5)
  z = affine.forward(q.sample(seed=jax.random.PRNGKey(1), sample_shape=5))
  mean, cov = moments(q)
  diff = np.float64(z) - mean
  closed_form = -0.5 * (np.einsum("ni,ij,nj->n", diff, np.linalg.inv(cov), diff)
                        + np.linalg.slogdet(2 * np.pi * cov)[1])
  np.testing.assert_allclose(distrax.Transformed(q, affine).log_prob(z), closed_form, rtol=1e-4)


def test_proposition_1_by_monte_carlo_through_a_nonlinear_bijector():
  """KL(q_z || p_z) estimated on samples z = f(eps) with the densities of the pushforwards,
  log q(eps) - log|det J_f(eps)| (J from jax.jacfwd, not the bijector's own log-det), equals the
  closed-form KL(q || p) in eps, within Monte Carlo error; the bijector's densities agree."""
  q, p, affine = _gaussians_and_bijector()
  bijector = distrax.Chain([distrax.Block(distrax.Sigmoid(), 1), affine])  # affine, then sigmoid
  eps = q.sample(seed=jax.random.PRNGKey(2), sample_shape=200_000)
  z = bijector.forward(eps)
  log_det = jnp.linalg.slogdet(jax.vmap(jax.jacfwd(bijector.forward))(eps))[1]
  log_q_z, log_p_z = q.log_prob(eps) - log_det, p.log_prob(eps) - log_det
  log_ratio = log_q_z - log_p_z
  exact = float(jnp.sum(q.unit_kl_divergence(p)))
  error = float(jnp.std(log_ratio)) / math.sqrt(eps.shape[0])
  assert abs(float(jnp.mean(log_ratio)) - exact) < 4 * error
  np.testing.assert_allclose(distrax.Transformed(q, bijector).log_prob(z[:1000]), log_q_z[:1000],
                             rtol=1e-3, atol=1e-3)
  np.testing.assert_allclose(distrax.Transformed(p, bijector).log_prob(z[:1000]), log_p_z[:1000],
                             rtol=1e-3, atol=1e-3)


def test_gaussian_kl_matches_monte_carlo_and_is_zero_for_equal_gaussians():
  keys = jax.random.split(jax.random.PRNGKey(2), 4)
  loc_q, loc_p = jax.random.normal(keys[0], (4,)), jax.random.normal(keys[1], (4,))
  log_q, log_p = jax.random.normal(keys[2], (4,)), jax.random.normal(keys[3], (4,))
  q, p = DiagonalGaussian(loc_q, log_q), DiagonalGaussian(loc_p, log_p)
  eps = q.sample(seed=jax.random.PRNGKey(3), sample_shape=400_000)
  mc = jnp.mean(q.unit_log_prob(eps) - p.unit_log_prob(eps), 0)
  np.testing.assert_allclose(q.unit_kl_divergence(p), mc, atol=0.03)
  np.testing.assert_allclose(q.unit_kl_divergence(q), 0.0, atol=1e-6)


def test_raster_blocks_of_mnist_and_patches_of_cifar():
  index, mask = block_partition((28, 28, 1), 10, "raster")
  assert index.shape == (10, 79) and mask.sum(1).tolist() == [79] * 9 + [73]  # 4.1.1
  np.testing.assert_array_equal(np.sort(index[mask]), np.arange(784))
  np.testing.assert_array_equal(index[mask], np.arange(784))  # left to right, raster order
  index, mask = block_partition((32, 32, 3), 16, "patches")
  assert index.shape == (16, 8, 8) and mask.all()  # 4.2.1: 16 patches of 8 x 8
  np.testing.assert_array_equal(np.sort(index.reshape(-1)), np.arange(1024))
  rows, cols = np.divmod(index[5], 32)  # patch 5: second row of patches, second column
  assert (rows.min(), rows.max(), cols.min(), cols.max()) == (8, 15, 8, 15)
  with pytest.raises(ValueError, match="square number of layers"):
    block_partition((32, 32, 3), 10, "patches")
  with pytest.raises(ValueError, match="leave the last"):
    block_partition((2, 2, 1), 3, "raster")


@pytest.mark.parametrize("shape,kwargs", [
    ((6, 5, 1), dict(num_layers=4)),
    ((8, 8, 3), dict(num_layers=4, network="conv", partition="patches",
                     likelihood="discretized_logistic_mixture", num_mixtures=2))],
    ids=["raster", "patches"])
def test_blocks_and_images_round_trip(shape, kwargs):
  x = jax.random.uniform(jax.random.PRNGKey(4), (3,) + shape)
  model = SelfReflectiveVAE(image_shape=shape, latent_dim=2, **kwargs)
  back = model.apply({}, x, method=lambda m, x: m._to_images(m._to_blocks(x)))  # pylint: disable=protected-access
  np.testing.assert_array_equal(back, x)


def test_every_bijector_parameter_learns_from_the_real_initialisation():
  """u enters z through u (u^T eps), so at u = 0 its gradient vanishes for good: the initial
  parameters must give c, d and u of every layer, including the first (z_0 = 0), a gradient."""
  x = _binary_images(20, 4, (6, 5, 1))
  model = SelfReflectiveVAE(image_shape=(6, 5, 1), num_layers=2, latent_dim=2, width=8,
                            encoder_width=8)
  params = jax.jit(model.init)(jax.random.PRNGKey(21), x, jax.random.PRNGKey(22))["params"]
  loss = lambda p: -jnp.mean(model.apply({"params": p}, x, jax.random.PRNGKey(23)).log_likelihood)
  grads = jax.jit(jax.grad(loss))(params)
  for l in range(2):
    for head in ("bijector_head", "bijector_u_head"):
      bias = grads[f"layers_{l}"][head]["linear"]["bias"]
      assert np.all(np.abs(np.asarray(bias)) > 0), (l, head)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_p_of_x_sums_to_one_and_the_posterior_integral_recovers_it(variant):
  """All 2^4 binary 2x2 images, 2 layers of 1 latent, integrated on a grid of the chain's noise:
  p(x) = E_p(eps)[p(x | z)] sums to 1 over the images (the data layers and the generative chain
  are normalised), and E_q(eps | x)[p(x, eps) / q(eps | x)] equals it for every image (so log q
  and log p(eps | z) are the densities that the chain samples from)."""
  images = jnp.array([[(i >> b) & 1 for b in range(4)] for i in range(16)], jnp.float32)
  images = images.reshape(16, 2, 2, 1)
  model, params = _model_and_params(images, latent_dim=1, scale=0.2, **VARIANTS[variant])
  axis = jnp.linspace(-12.0, 12.0, 301)
  n1, n2 = jnp.meshgrid(axis, axis, indexing="ij")
  log_weights = (-0.5 * (n1 ** 2 + n2 ** 2) - math.log(2 * math.pi)
                 + 2 * jnp.log(axis[1] - axis[0])).reshape(-1, 1)
  noise = jnp.broadcast_to(jnp.stack([n1.reshape(-1), n2.reshape(-1)])[:, :, None, None],
                           (2, n1.size, 16, 1))

  def prior_log_likelihood(m, x, noise):
    return m.log_likelihood(m._chain(None, noise, from_prior=True)["z"], m._to_blocks(x))  # pylint: disable=protected-access

  def posterior_log_weight(m, x, noise):
    parts = m.log_weights_at(x, noise)
    return parts.log_likelihood + parts.log_prior - parts.log_posterior

  integral = jax.jit(lambda method: jnp.exp(jax.nn.logsumexp(
      log_weights + model.apply({"params": params}, images, noise, method=method), 0)),
                     static_argnums=0)
  p_x = integral(prior_log_likelihood)
  np.testing.assert_allclose(jnp.sum(p_x), 1.0, atol=1e-3)
  assert float(jnp.min(p_x)) > 0.005  # every image has mass: the sum is not one term
  np.testing.assert_allclose(integral(posterior_log_weight), p_x, rtol=2e-3)


def _layer_outputs(model, params, x, noise):
  return model.apply({"params": params}, x, noise,
                     method=lambda m, x, noise: m._chain(m._features(x), noise))  # pylint: disable=protected-access


def test_each_layer_depends_on_the_past_only_through_the_previous_latent_code():
  """Proposition 2's structure: layer l's eps_l and z_l are the l-th layer's own function of
  (z_{l-1}, its features of x, its noise); perturbing earlier noise changes them only by
  changing z_{l-1}. Checked by re-running layer l alone on the chain's z_{l-1}."""
  x = _binary_images(6, 3, (6, 5, 1))
  model, params = _model_and_params(x, num_layers=3, latent_dim=2)
  noise = jax.random.normal(jax.random.PRNGKey(7), (3, 2, 3, 2))
  layers = _layer_outputs(model, params, x, noise)
  features = model.apply({"params": params}, x, method=lambda m, x: m._features(x))  # pylint: disable=protected-access
  one = LatentLayer(model.network, model.width, model.latent_shape, model.prior_feedback,
                    model.bijector, model.bijector_feedback, model.posterior,
                    model.min_prior_scale, model.min_logstd)
  for l in range(1, 3):
    out = one.apply({"params": params[f"layers_{l}"]}, layers["z"][l - 1], features[l], noise[l])
    np.testing.assert_allclose(out["z"], layers["z"][l], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["log_q"], layers["log_q"][l], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("variant", ["sere", "dlgm"])
def test_latent_chain_is_causal_and_the_dlgm_posterior_ignores_previous_codes(variant):
  x = _binary_images(8, 2, (6, 5, 1))
  model, params = _model_and_params(x, num_layers=3, **VARIANTS[variant])
  noise = jax.random.normal(jax.random.PRNGKey(9), (3, 1, 2, 2))
  eps_of = lambda n: _layer_outputs(model, params, x, n)["eps"]
  jacobian = jax.jacfwd(eps_of)(noise).reshape(3 * 2 * 2, 3 * 2 * 2)
  blocks = np.abs(np.asarray(jacobian)).reshape(3, 4, 3, 4).sum((1, 3))  # [layer of eps, of noise]
  assert np.all(blocks[np.triu_indices(3, 1)] == 0)  # eps_l never sees later noise
  assert np.all(np.diag(blocks) > 0)
  if variant == "sere":  # feedback: q(eps_l | z_{l-1}, x)
    assert blocks[1, 0] > 0 and blocks[2, 1] > 0
  else:  # DLGM: q(eps_l | x), so eps_l is its own noise's function only
    assert np.all(blocks[np.tril_indices(3, -1)] == 0)


@pytest.mark.parametrize("coupled", [True, False])
def test_data_layer_l_reads_only_its_latent_code_and_the_previous_block(coupled):
  x = _binary_images(10, 2, (6, 5, 1))
  model, params = _model_and_params(x, num_layers=3, data_coupling=coupled)
  z = jax.random.normal(jax.random.PRNGKey(11), (3, 1, 2, 2))

  def per_layer_log_likelihood(z, blocks):
    def run(m, z, blocks):
      data_params = m._data_params(z, blocks)  # pylint: disable=protected-access
      return jnp.sum(m._pixels(data_params).log_prob(blocks[:, None]), (1, 2, 3))  # pylint: disable=protected-access
    return model.apply({"params": params}, z, blocks, method=run)

  blocks = model.apply({"params": params}, x, method=lambda m, x: m._to_blocks(x))  # pylint: disable=protected-access
  d_blocks = np.abs(np.asarray(jax.jacfwd(per_layer_log_likelihood, 1)(z, blocks)))
  d_z = np.abs(np.asarray(jax.jacfwd(per_layer_log_likelihood, 0)(z, blocks)))
  by_block = d_blocks.reshape(3, 3, -1).sum(-1)  # [layer, block]
  by_code = d_z.reshape(3, 3, -1).sum(-1)  # [layer, z_l]
  np.testing.assert_array_equal(by_code > 0, np.eye(3, dtype=bool))
  expected = np.eye(3, dtype=bool) | (np.eye(3, k=-1, dtype=bool) if coupled else False)
  np.testing.assert_array_equal(by_block > 0, expected)


def test_closed_form_layer_kls_match_the_monte_carlo_log_density_ratios():
  x = _binary_images(12, 2, (6, 5, 1))
  model, params = _model_and_params(x, num_layers=3, min_prior_scale=0.5)
  parts = model.apply({"params": params}, x, jax.random.PRNGKey(13), 50_000, method="log_weights")
  mc = jnp.mean(jnp.sum(parts.kl_per_unit, -1), 0)  # [B, L]
  kls = jax.vmap(lambda key: model.apply({"params": params}, x, key, method="kl_per_layer"))(
      jax.random.split(jax.random.PRNGKey(14), 5000))
  np.testing.assert_allclose(jnp.mean(kls, 0), mc, rtol=0.03, atol=0.02)
  np.testing.assert_allclose(jnp.sum(mc, -1),
                             jnp.mean(parts.log_posterior - parts.log_prior, 0), rtol=1e-4)


@pytest.mark.parametrize("variant", ["sere", "ladder"])
def test_posterior_scales_never_exceed_the_prior_and_the_prior_scale_bound_holds(variant):
  """Residual layers: sigma_q = sigma(z) ds(x) with ds <= 1 (3.4.2). Precision weighting: the
  merged variance is below the prior's. Both: sigma(z) >= the lower bound of 4.2.1."""
  x = _binary_images(15, 4, (6, 5, 1))
  model, params = _model_and_params(x, num_layers=3, min_prior_scale=0.7, scale=0.5,
                                    **VARIANTS[variant])
  layers = _layer_outputs(model, params, x, jax.random.normal(jax.random.PRNGKey(16),
                                                              (3, 5, 4, 2)))
  below = layers["log_scale_p"] - layers["log_scale_q"]
  assert np.all(below >= 0) and float(np.mean(below)) > 0.05
  assert np.all(layers["log_scale_p"] >= math.log(0.7) - 1e-6)


@pytest.mark.parametrize("cell", list(serevae.cells()))
def test_every_cell_builds_with_the_papers_settings(cell):
  config = serevae.get_config(cell)
  image_shape = (32, 32, 3) if cell.startswith("cifar10") else (28, 28, 1)
  model = create_model(config.model, image_shape)
  assert config.train.kl_warmup_start == 0.2 and config.train.kl_warmup_fraction == 0.5
  assert config.eval.num_samples == 1000
  if cell.startswith("mnist"):
    assert (model.num_layers, model.latent_dim) == (10, 10)  # 4.1.1
  else:
    assert (model.num_layers, model.latent_shape) == (16, (8, 8, 2))  # 4.2.1
    assert model.likelihood == "discretized_logistic_mixture"
    assert (model.min_prior_scale == 1.0) == cell.endswith("case3")


def _parameter_count(config, image_shape=(28, 28, 1)):
  model = create_model(config.model, image_shape)
  shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((2,) + image_shape),
                                             jax.random.PRNGKey(1)))
  return sum(math.prod(a.shape) for a in jax.tree_util.tree_leaves(shapes))


@pytest.mark.parametrize("network,baseline", list(serevae.MATCHED_ENCODER_WIDTH))
def test_baselines_have_the_sere_vaes_parameter_count(network, baseline):
  """4.1.1: the DLGM's encoders are widened to make up for the SeRe-VAE's prior networks."""
  sere = _parameter_count(serevae.mnist_config(network, "sere"))
  other = _parameter_count(serevae.mnist_config(network, baseline))
  assert abs(other - sere) / sere < 0.005


def test_config_errors_name_the_fix():
  config = serevae.mnist_config("mlp", "sere")
  config.model.sere.network = "conv"
  with pytest.raises(ValueError, match="partition='patches'"):
    create_model(config.model, (28, 28, 1))
  config = serevae.mnist_config("mlp", "sere")
  config.model.prior = component("prior", "realnvp", num_blocks=2)
  with pytest.raises(ValueError, match="prior.name='standard'"):
    create_model(config.model, (28, 28, 1))
  config = serevae.mnist_config("mlp", "sere")
  config.model.sere.posterior = "exact"
  with pytest.raises(ValueError, match="precision_weighted"):
    create_model(config.model, (28, 28, 1))
  config.model.name, config.model.encoder, config.model.decoder = (
      "vae", component("encoder", "dense"), component("decoder", "dense"))
  config.model.likelihood = component("likelihood", "discretized_logistic_mixture")
  with pytest.raises(ValueError, match="SeRe-VAE's"):
    create_model(config.model, (28, 28, 1))


def test_training_run_writes_the_per_layer_kl_and_active_units(tmp_path):
  config = tiny_config("standard")
  config.model.name, config.model.latent_dim = "sere", 2
  config.model.encoder, config.model.decoder = component("encoder", "none"), component("decoder", "none")
  config.model.sere.update(layers=2, width=16, encoder_width=16)
  config.train.update(num_epochs=1, kl_warmup_start=0.2, kl_warmup_fraction=0.5, l2_weight=0.0)
  config.eval.update(active_unit_samples=10, num_images=4)
  results = train.train_and_evaluate(config, str(tmp_path))
  assert len(results["kl_per_layer"]) == 2 and all(v >= 0 for v in results["kl_per_layer"])
  assert {"active_units_layer_1", "active_units_layer_2"} <= set(results)
  assert np.isfinite(results["nll"]) and results["nll"] <= -results["elbo"] + 1e-3
  assert (tmp_path / "samples.png").exists() and (tmp_path / "reconstructions.png").exists()


def _cifar_patch_model():
  x = jnp.round(jax.random.uniform(jax.random.PRNGKey(17), (2, 8, 8, 3)) * 255) / 255
  model, params = _model_and_params(x, num_layers=4, network="conv", partition="patches",
                                    likelihood="discretized_logistic_mixture", num_mixtures=2,
                                    scale=0.05, min_prior_scale=1.0)
  return x, model, params


def test_cifar_patch_model_with_the_logistic_mixture_gives_finite_log_weights():
  x, model, params = _cifar_patch_model()
  parts = jax.jit(lambda p: model.apply({"params": p}, x, jax.random.PRNGKey(18), 3,
                                        method="log_weights"))(params)
  assert parts.log_likelihood.shape == (3, 2) and parts.kl_per_unit.shape == (3, 2, 4, 4, 4, 2)
  assert np.all(np.isfinite(parts.log_likelihood)) and np.all(parts.log_likelihood < 0)


@pytest.mark.slow
def test_cifar_patch_model_gradients_and_samples():
  x, model, params = _cifar_patch_model()
  loss = lambda p: -jnp.mean(model.apply({"params": p}, x, jax.random.PRNGKey(18),
                                         method="log_weights").log_likelihood)
  value, grads = jax.jit(jax.value_and_grad(loss))(params)
  assert np.isfinite(value) and value > 0
  assert all(np.all(np.isfinite(g)) for g in jax.tree_util.tree_leaves(grads))
  means = model.apply({"params": params}, jax.random.PRNGKey(19), 2, method="generate")
  assert means.shape == (2, 8, 8, 3) and np.all((means >= 0) & (means <= 1))
  samples = model.apply({"params": params}, x, jax.random.PRNGKey(20), method="decompress")
  assert samples.shape == (2, 8, 8, 3)  # 8-bit values drawn block after block
  np.testing.assert_allclose(samples * 255, np.round(samples * 255), atol=1e-3)


def test_launcher_collects_the_comparisons_and_the_kl_per_layer(tmp_path):
  import importlib.util  # pylint: disable=import-outside-toplevel
  import json  # pylint: disable=import-outside-toplevel
  from vae_jax import configuration  # pylint: disable=import-outside-toplevel
  spec = importlib.util.spec_from_file_location(
      "serevae_launch", __file__.replace("tests/test_sere_vae.py", "launch/serevae.py"))
  launch = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(launch)
  assert launch.command("mnist-mlp-sere", "runs", epochs=100)[-1] == "--config.train.num_epochs=100"
  runs = tmp_path / "runs"
  for name, nll in (("mnist-mlp-sere-100ep", 84.5), ("mnist-mlp-dlgm-100ep", 86.25)):
    (runs / name).mkdir(parents=True)
    config = serevae.get_config(name.rsplit("-", 1)[0])
    (runs / name / "config.json").write_text(configuration.to_json(config))
    (runs / name / "train_summary.json").write_text(json.dumps({"epochs": 100}))
    layers = {f"active_units_layer_{l}": 10 - l for l in range(1, 11)}
    # The SeRe-VAE's evaluation is from before issue #19's whitened statistics: no marker.
    marker = {} if "sere" in name else {"latent_statistics_of": "base latents whitened"}
    (runs / name / "eval_test.json").write_text(json.dumps(dict(
        nll=nll, elbo=-nll - 3, kl=20.0, bits_per_dim=0.15, active_units=45, num_samples=1000,
        num_points=10000, num_params=3_805_160, kl_per_layer=[2.0] * 10, **layers, **marker)))
  launch.collect(str(runs), str(tmp_path))
  text = (tmp_path / "serevae.md").read_text()
  assert ("| SeRe-VAE, 10 layers x 10 latents | mnist-mlp-sere |  | 84.50 · IS-NLL, L=1,000 · "
          "100 ep (paper: epochs not given) | -87.50 · ELBO · 100 ep (paper: epochs not given) | "
          "20.00 | 3,805,160 |") in text
  assert "| DLGM (ResNet), widened encoders | mnist-resnet-dlgm |  |  |" in text  # not run: blank
  assert "**mnist-mlp-dlgm-100ep** (sum 20.00 nats)" in text
  assert "**mnist-mlp-sere-100ep** (sum 20.00 nats, active units of eps)" in text
  assert "| active units | 9 | 8 | 7 | 6 | 5 | 4 | 3 | 2 | 1 | 0 |" in text


@pytest.mark.parametrize("variant", ["sere", "ladder"])
def test_latent_statistics_read_the_prior_whitened_base_latents(variant):
  """The latents that the evaluator's latent_mean, latent_variance, posterior_std and the active
  units read (LogWeights.z, posterior_mean) are w_l = (eps_l - mu(z_{l-1})) / sigma(z_{l-1}),
  N(0, I) under the prior: the scale of eps_l is free (sigma can grow as the bijector shrinks).
  With q = p in every layer (dmu = 0, ds = sigmoid(30) = 1) and a prior far from N(0, I)
  (sigma ~ e^3), they are the noise itself; eps would be ~20 times larger."""
  x = _binary_images(0, 4, (4, 4, 1))
  model, params = _model_and_params(x, num_layers=2, **VARIANTS[variant])
  n = model.latent_dim
  for l in range(model.num_layers):
    layer = params[f"layers_{l}"]
    layer["prior_head"]["linear"]["bias"] += jnp.concatenate([jnp.zeros(n), 3.0 * jnp.ones(n)])
    head = layer["posterior_head"]["linear"]
    head["kernel"] = jnp.zeros_like(head["kernel"])
    # residual q: dmu = 0, ds = 1; precision-weighted q: sigma_x = e^30 >> sigma_p, so q = p.
    head["bias"] = jnp.concatenate([jnp.zeros(n), 30.0 * jnp.ones(n)])
  noise = jax.random.normal(jax.random.PRNGKey(3), (model.num_layers, 8, 4, n))
  parts = model.apply({"params": params}, x, noise, method="log_weights_at")
  np.testing.assert_allclose(parts.z, jnp.moveaxis(noise, 0, 2).reshape(8, 4, -1), atol=1e-4)
  means = model.apply({"params": params}, x, jax.random.PRNGKey(4), 4000, method="posterior_mean")
  assert np.abs(means).max() < 0.1  # E_q[w | x] = 0: no active units in a collapsed model
