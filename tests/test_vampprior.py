"""Mixture priors (MoG, VampPrior, VampPrior-data, weighted), the two-level HVAEs of Tomczak &
Welling (2018), their datasets and configs."""
import functools
import json
import math
import pickle

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.io

from vae_jax import checkpoints, config_files, configuration, data, train, train_state
from vae_jax.distributions import DiagonalGaussian, mixture
from vae_jax.models import create_model
from vae_jax.distributions.discretized_logistic import DiscretizedLogistic
from vae_jax.nets import pixelcnn
from vae_jax.nets.pixelcnn import VampPixelCNN
from vae_jax import priors
from vae_jax.models.factory import component

from conftest import tiny_config
from test_data import real_data_config

vampprior = config_files.module("configs/vampprior.py")


def _brute_force_mixture(z, loc, log_scale, log_weights):
  """log sum_k w_k prod_d N(z_d; loc_kd, s_kd), one component and one dimension at a time, in
  float64 numpy."""
  z, loc, scale = np.float64(z), np.float64(loc), np.exp(np.float64(log_scale))
  total = np.zeros(z.shape[:-1])
  for k in range(loc.shape[0]):
    density = np.exp(np.float64(log_weights[k])) * np.ones(z.shape[:-1])
    for d in range(loc.shape[1]):
      density *= np.exp(-0.5 * ((z[..., d] - loc[k, d]) / scale[k, d]) ** 2) / (
          math.sqrt(2 * math.pi) * scale[k, d])
    total += density
  return np.log(total)


@pytest.mark.parametrize("block_elements", [None, 64])  # 64: many row blocks through lax.map
def test_mixture_log_prob_matches_brute_force_sum(monkeypatch, block_elements):
  if block_elements:
    monkeypatch.setattr(mixture, "_BLOCK_ELEMENTS", block_elements)
  keys = jax.random.split(jax.random.PRNGKey(0), 4)
  loc = jax.random.normal(keys[0], (5, 3))
  log_scale = jax.random.uniform(keys[1], (5, 3), minval=-2.0, maxval=0.5)
  log_weights = jax.nn.log_softmax(jax.random.normal(keys[2], (5,)))
  z = 1.5 * jax.random.normal(keys[3], (4, 7, 3))
  got = mixture.mixture_log_prob(z, loc, log_scale, log_weights)
  assert got.shape == (4, 7)
  np.testing.assert_allclose(got, _brute_force_mixture(z, loc, log_scale, log_weights),
                             rtol=1e-5, atol=1e-5)


def test_mixture_log_prob_is_stable_far_from_every_component():
  """Where every component's density underflows float32, logsumexp still gives the exact value:
  for one component it is the Gaussian log-density itself."""
  loc, log_scale = jnp.zeros((1, 2)), jnp.full((1, 2), -3.0)
  z = jnp.array([[40.0, -40.0]])
  got = mixture.mixture_log_prob(z, loc, log_scale, jnp.zeros(1))
  expected = DiagonalGaussian(loc[0], log_scale[0]).log_prob(z)
  assert np.isfinite(got).all() and got[0] < -1e5
  np.testing.assert_allclose(got, expected, rtol=1e-6)


def _mixture_moments(loc, log_scale, log_weights):
  """Mean and covariance of a mixture of diagonal Gaussians, in closed form."""
  w = np.exp(np.float64(log_weights))
  loc, var = np.float64(loc), np.exp(2 * np.float64(log_scale))
  mean = w @ loc
  second = sum(w[k] * (np.diag(var[k]) + np.outer(loc[k], loc[k])) for k in range(len(w)))
  return mean, second - np.outer(mean, mean)


def _check_sample_moments(samples, loc, log_scale, log_weights):
  mean, covariance = _mixture_moments(loc, log_scale, log_weights)
  samples = np.float64(samples)
  standard_error = np.sqrt(np.diag(covariance) / len(samples))
  np.testing.assert_array_less(np.abs(samples.mean(0) - mean), 5 * standard_error)
  np.testing.assert_allclose(np.cov(samples.T), covariance, atol=0.05 * np.abs(covariance).max())


def test_mog_prior_sampling_moments_and_weights():
  """The weighted MoG prior: samples have the mixture's mean and covariance, and its density
  is the brute-force sum with softmax weights (Eq. 16)."""
  prior = priors.MixtureOfGaussiansPrior(latent_dim=2, num_components=3, learn_weights=True)
  params = prior.init(jax.random.PRNGKey(0), jnp.zeros((1, 2)), method="log_prob")
  params = jax.tree_util.tree_map(lambda p: p + 0.7 * jax.random.normal(
      jax.random.PRNGKey(p.size), p.shape), params)
  inner = params["params"]
  log_weights = jax.nn.log_softmax(inner["weight_logits"])
  samples = prior.apply(params, jax.random.PRNGKey(1), 200_000, method="sample")
  _check_sample_moments(samples, inner["loc"], inner["log_scale"], log_weights)
  z = jax.random.normal(jax.random.PRNGKey(2), (6, 2))
  np.testing.assert_allclose(
      prior.apply(params, z, method="log_prob"),
      _brute_force_mixture(z, inner["loc"], inner["log_scale"], log_weights), rtol=1e-5)


def _jitted(model, method):
  """params, *args -> model.apply({"params": params}, *args, method=method), compiled once
  (op-by-op dispatch of these models takes seconds)."""
  return jax.jit(lambda params, *args: model.apply({"params": params}, *args, method=method))


def _vamp_vae(num_components, prior="vampprior", learn_weights=False, model="vae"):
  """A small VampPrior model (vae or hvae) on 6x6 images, its parameters and a batch."""
  config = vampprior.vampprior_config("static_mnist", model, prior, num_components).model
  config.prior.learn_weights = learn_weights
  config.latent_dim = 8
  model = create_model(config, (6, 6, 1))
  x = jax.random.bernoulli(jax.random.PRNGKey(0), 0.4, (3, 6, 6, 1)).astype(jnp.float32)
  params = jax.jit(model.init)({"params": jax.random.PRNGKey(1)}, x,
                               jax.random.PRNGKey(2))["params"]
  return model, params, x


def test_vampprior_with_one_pseudo_input_is_that_posterior():
  """K = 1: p(z) = q(z|u_1), a Gaussian with the encoder's parameters at the pseudo-input."""
  model, params, _ = _vamp_vae(1)
  params["prior"]["pseudo_inputs"] = jax.random.uniform(jax.random.PRNGKey(3), (1, 6, 6, 1))
  z = jax.random.normal(jax.random.PRNGKey(4), (5, 2, 8))
  got = _jitted(model, "prior_log_prob")(params, z)
  posterior = _jitted(model, "gaussian_posterior")(params, params["prior"]["pseudo_inputs"])
  expected = DiagonalGaussian(posterior.loc[0], posterior.log_scale[0]).log_prob(z)
  np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-4)


def test_vampprior_density_is_the_mixture_of_encoded_pseudo_inputs():
  """The weighted VampPrior (Eq. 16): brute-force sum over q(z|u_k) with softmax weights, the
  pseudo-inputs clipped into the data range [0, 1]."""
  model, params, _ = _vamp_vae(4, learn_weights=True)
  u = jnp.linspace(-0.5, 1.5, 4 * 36).reshape(4, 6, 6, 1)  # partly outside [0, 1]
  params["prior"] = dict(pseudo_inputs=u, weight_logits=jnp.array([0.3, -1.0, 2.0, 0.0]))
  posterior = _jitted(model, "gaussian_posterior")(params, jnp.clip(u, 0, 1))
  z = jax.random.normal(jax.random.PRNGKey(5), (7, 8))
  expected = _brute_force_mixture(z, posterior.loc, posterior.log_scale,
                                  jax.nn.log_softmax(params["prior"]["weight_logits"]))
  got = _jitted(model, "prior_log_prob")(params, z)
  np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_vampprior_sampling_moments():
  """Pick a pseudo-input, encode it, sample: the mixture's mean and covariance."""
  model, params, _ = _vamp_vae(3)
  params["prior"]["pseudo_inputs"] = jax.random.uniform(jax.random.PRNGKey(6), (3, 6, 6, 1))
  posterior = _jitted(model, "gaussian_posterior")(params, params["prior"]["pseudo_inputs"])
  samples = jax.jit(lambda p, key: model.apply({"params": p}, key, 50_000,
                                               method="prior_sample"))(params, jax.random.PRNGKey(7))
  dims = slice(0, 4)  # the first few latent units keep the check cheap
  _check_sample_moments(samples[:, dims], posterior.loc[:, dims], posterior.log_scale[:, dims],
                        jnp.full(3, -math.log(3)))


def test_hvae_vampprior_on_z2_uses_q_z2_of_pseudo_inputs():
  """Eq. (12): p(z2) = (1/K) sum_k q(z2|u_k) in the two-level model."""
  model, params, x = _vamp_vae(3, model="hvae")
  z2 = jax.random.normal(jax.random.PRNGKey(8), (4, 8))
  q = _jitted(model, "q_z2_posterior")(params, jnp.clip(params["prior"]["pseudo_inputs"], 0, 1))
  expected = _brute_force_mixture(z2, q.loc, q.log_scale, np.full(3, -math.log(3)))
  np.testing.assert_allclose(_jitted(model, "prior_log_prob")(params, z2), expected, rtol=1e-5)
  parts = jax.jit(lambda p, x, key: model.apply({"params": p}, x, key, 2, method="log_weights"))(
      params, x, jax.random.PRNGKey(9))
  assert parts.log_prior.shape == (2, 3) and np.isfinite(parts.log_prior).all()


@pytest.mark.parametrize("architecture, dataset", [
    pytest.param("conv_hvae", "freyfaces", marks=pytest.mark.slow),
    pytest.param("pixel_hvae", "static_mnist", marks=pytest.mark.slow),
    pytest.param("pixel_hvae", "freyfaces", marks=pytest.mark.slow)])
def test_convolutional_hvaes_give_finite_log_weights(architecture, dataset):
  config = vampprior.vampprior_config(dataset, architecture, "vampprior", 2).model
  shape = (28, 20, 1) if dataset == "freyfaces" else (28, 28, 1)
  model = create_model(config, shape)
  x = jnp.round(jax.random.uniform(jax.random.PRNGKey(0), (2,) + shape) * 255) / 255
  if dataset == "static_mnist":
    x = jnp.round(x)
  params = jax.jit(model.init)({"params": jax.random.PRNGKey(1)}, x,
                               jax.random.PRNGKey(2))["params"]
  log_weights = jax.jit(lambda p, x, key: model.apply(p, x, key, 2, method="log_weights"))
  parts = log_weights({"params": params}, x, jax.random.PRNGKey(3))
  assert parts.log_likelihood.shape == (2, 2)
  assert all(np.isfinite(p).all() for p in parts[:3])


def test_discretized_logistic_pixel_draws_follow_the_pmf():
  """The PixelHVAE's 8-bit sampler: frequencies of each grid value match exp(log_prob)."""
  loc, log_scale = 0.5, math.log(0.01)
  uniform = jax.random.uniform(jax.random.PRNGKey(0), (200_000, 1), minval=1e-6, maxval=1 - 1e-6)
  draws = pixelcnn.discretized_logistic_pixel(jnp.array([[loc, log_scale]]), uniform)
  values, counts = np.unique(np.round(np.asarray(draws) * 255).astype(int), return_counts=True)
  grid = jnp.asarray(values, jnp.float32)[:, None, None, None] / 255
  pmf = np.exp(DiscretizedLogistic(jnp.full((1, 1, 1), loc),
                                   jnp.full((1, 1, 1), log_scale)).log_prob(grid))
  frequent = counts > 1000
  np.testing.assert_allclose(counts[frequent] / 200_000, pmf[frequent], rtol=0.05)


def test_pixel_hvae_logistic_samples_come_from_their_outputs():
  """Sequential 8-bit samples lie on the grid, and the outputs each pixel was drawn from are
  the network's outputs on the final image (pixel i sees only pixels before it)."""
  module = VampPixelCNN(layers=2, filters=4, outputs=2)
  features = jax.random.normal(jax.random.PRNGKey(0), (2, 4, 3, 1))
  params = module.init(jax.random.PRNGKey(1), features, jnp.zeros((2, 4, 3, 1)))
  x, outputs = module.apply(params, features, jax.random.PRNGKey(2), method="sample")
  np.testing.assert_allclose(outputs, module.apply(params, features, x), atol=1e-5)
  np.testing.assert_allclose(x * 255, np.round(x * 255), atol=1e-4)


def test_pixel_hvae_pixelcnn_is_causal():
  """Logit i of the PixelHVAE's PixelCNN depends on pixels before i only (raster order)."""
  module = VampPixelCNN(layers=3, filters=4)
  features, x = jnp.ones((5, 5, 1)), jnp.zeros((5, 5, 1))
  params = module.init(jax.random.PRNGKey(0), features, x)
  jacobian = jax.jacfwd(lambda v: module.apply(params, features, v.reshape(5, 5, 1)).ravel())(
      x.ravel())
  np.testing.assert_array_equal(np.triu(jacobian), 0)
  assert np.abs(np.tril(jacobian, -1)).sum() > 0


def test_normalized_gradients_have_unit_norm_per_array():
  grads = {"a": jnp.array([3.0, 4.0]), "b": jnp.ones((2, 2)) * 10,
           "flow": {"blocks": {"kernel": jnp.arange(12.0).reshape(3, 2, 2)}}}  # K = 3 stacked
  updates, _ = train_state.normalize_gradients().update(grads, None)
  np.testing.assert_allclose(jnp.linalg.norm(updates["a"]), 1.0, rtol=1e-6)
  np.testing.assert_allclose(jnp.linalg.norm(updates["b"]), 1.0, rtol=1e-6)
  for block in updates["flow"]["blocks"]["kernel"]:  # each block's array, as if unstacked
    np.testing.assert_allclose(jnp.linalg.norm(block), 1.0, rtol=1e-6)


def test_vampprior_data_run_keeps_its_training_image_pseudo_inputs(tmp_path):
  """A whole run (normalized-gradient Adam, validation, evaluation) with VampPrior *data*: the
  pseudo-inputs are K distinct binarized training images, and training never changes them."""
  config = tiny_config(prior="standard")
  config.model.prior = vampprior.prior_config("vampprior_data", 5)
  config.model.name, config.model.encoder, config.model.decoder, config.model.likelihood = (
      vampprior.networks("vae", "bernoulli"))
  config.model.min_logstd = -3.0
  config.train.num_epochs, config.train.normalize_gradients = 1, True
  config.eval.active_unit_samples, config.eval.num_images = 10, 4
  results = train.train_and_evaluate(config, str(tmp_path))
  assert np.isfinite(results["nll"])
  assert (tmp_path / "pseudo_inputs.png").exists()
  run = train.setup_run(config)
  initial = train.create_train_state(run, train.make_optimizer(config.train, run.total_steps))
  u = np.asarray(initial.params["prior"]["pseudo_inputs"])
  np.testing.assert_array_equal(checkpoints.restore_params(str(tmp_path))["prior"]["pseudo_inputs"],
                                u)
  assert u.shape == (5, 8, 8, 1) and set(np.unique(u)) <= {0.0, 1.0}
  # Each is a binarization of a training image: on only where that image has ink.
  ink = np.asarray(run.train_images) > 0
  assert all(np.any(np.all(u[k] <= ink, axis=(1, 2, 3))) for k in range(5))


@pytest.mark.parametrize("key, value, message", [
    ("model.posterior", component("posterior", "realnvp", num_blocks=2),
     "Gaussian posteriors q\\(z\\|u_k\\)"),
    ("train.strategy", "posthoc", "trains jointly"),
    ("model.prior.num_components", 0, "num_components=0"),
])
def test_vampprior_config_errors(key, value, message):
  config = vampprior.vampprior_config("static_mnist", "vae", "vampprior")
  *path, name = key.split(".")
  functools.reduce(lambda tree, k: tree[k], path, config)[name] = value
  with pytest.raises(ValueError, match=message):
    configuration.validate(config, 1)
    create_model(config.model, (28, 28, 1))


def test_every_cell_builds_and_uses_the_paper_settings():
  cells = vampprior.cells()
  assert len(cells) == len(set(cells))
  for name, factory in cells.items():
    config = factory()
    configuration.validate(config, 1)
    dataset = name.split("-")[0]
    if config.model.prior.name != "standard":
      assert config.model.prior.num_components == (
          int(name.split("-K")[1]) if "-K" in name else 1000 if dataset == "omniglot" else 500)
    assert config.train.batch_size == 100 and config.eval.num_samples == 5000
  assert cells["omniglot-hvae-vampprior"]().data.num_validation == 1345


# --- datasets (Supplement 8.4.1) --------------------------------------------------------------


def _data_config(name, data_dir, validation=True):
  config = configuration.base_config().data
  config.name, config.data_dir, config.validation = name, str(data_dir), validation
  return config


def test_caltech_orientation_inversion_and_split(tmp_path):
  """Marlin's column-major rows with the object 0 become upright images with the object 1;
  without split1 the 8,671 images are split 4,100 / 2,264 / 2,307 by the split seed."""
  folder = tmp_path / "caltech101_silhouettes"
  folder.mkdir()
  upright = np.zeros((8671, 28, 28), np.uint8)
  upright[:, 2, 5] = 1  # the object: one pixel at row 2, column 5
  upright[np.arange(8671), 10, np.arange(8671) % 28] = 1  # an image id, to check the split
  rows = (1 - upright).transpose(0, 2, 1).reshape(8671, 784)  # column-major, object 0
  scipy.io.savemat(folder / "caltech101_silhouettes_28.mat", {"X": rows})
  dataset = data.load(_data_config("caltech101_silhouettes", tmp_path))
  assert (dataset.train.shape[0], dataset.validation.shape[0], dataset.test.shape[0]) == (
      4100, 2264, 2307)
  assert np.all(dataset.test[:, 2, 5, 0] == 1) and dataset.encoding == "binary"
  again = data.load(_data_config("caltech101_silhouettes", tmp_path))
  np.testing.assert_array_equal(again.test, dataset.test)
  # Split1 given: used as is.
  scipy.io.savemat(folder / "caltech101_silhouettes_28_split1.mat",
                   {"train_data": rows[:5], "val_data": rows[5:7], "test_data": rows[7:10]})
  given = data.load(_data_config("caltech101_silhouettes", tmp_path))
  np.testing.assert_array_equal(given.test[..., 0], upright[7:10])


def test_frey_faces_shape_split_and_likelihood(tmp_path):
  folder = tmp_path / "freyfaces"
  folder.mkdir()
  faces = np.random.default_rng(0).integers(0, 256, (1965, 560), dtype=np.uint8)
  np.save(folder / "freyfaces_uint8_1965x560.npy", faces)
  dataset = data.load(_data_config("freyfaces", tmp_path))
  assert dataset.train.shape == (1565, 28, 20, 1) and dataset.test.shape == (200, 28, 20, 1)
  assert not dataset.binary
  everything = np.concatenate([dataset.train, dataset.validation, dataset.test])
  assert sorted(map(bytes, everything.reshape(1965, -1))) == sorted(map(bytes, faces))


def test_histopathology_pickle_and_missing_file(tmp_path):
  with pytest.raises(FileNotFoundError, match="histopathology.pkl.*vae_vampprior"):
    data.load(_data_config("histopathology", tmp_path))
  folder = tmp_path / "histopathology"
  folder.mkdir()
  patches = {k: np.random.default_rng(n).random((n, 28, 28)).astype(np.float32)
             for k, n in (("training", 6), ("validation", 2), ("test", 3))}
  with open(folder / "histopathology.pkl", "wb") as f:
    pickle.dump(patches, f)
  dataset = data.load(_data_config("histopathology", tmp_path))
  assert dataset.test.shape == (3, 28, 28, 1)
  np.testing.assert_array_equal(dataset.test[..., 0], np.round(patches["test"] * 255))


def test_real_caltech_and_frey():
  caltech = data.load(real_data_config("caltech101_silhouettes", validation=True))
  assert caltech.train.shape == (4100, 28, 28, 1)
  # Silhouettes are filled objects on a background 0 after the flip: corners are background.
  assert caltech.train[:, 0, 0].mean() < 0.2
  frey = data.load(real_data_config("freyfaces", validation=True))
  assert frey.image_shape == (28, 20, 1)


# --- launch/vampprior.py -------------------------------------------------------------------------


def _launcher():
  import importlib.util  # pylint: disable=g-import-not-at-top
  spec = importlib.util.spec_from_file_location(
      "vampprior_launch", __file__.replace("tests/test_vampprior.py", "launch/vampprior.py"))
  launch = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(launch)
  return launch


def test_launcher_commands_scale_the_warmup_and_collect_fills_the_tables(tmp_path):
  """A reduced budget keeps a warm-up of W epochs; a run named <cell>-<N>ep lands in Table 1 and
  Table 2 labelled with its protocol (its epochs against the paper's early stopping, or early-
  stopped itself), the Figure 2-3 rows show ELBO and active units per layer."""
  launch = _launcher()
  command = launch.command("static_mnist-vae-vampprior", "runs", epochs=60, warmup_epochs=10)
  assert "--config.train.num_epochs=60" in command
  assert f"--config.train.kl_warmup_fraction={10 / 60!r}" in command
  assert launch.command("x", "runs", epochs=50)[-1] == "--config.train.kl_warmup_fraction=1.0"
  runs = tmp_path / "runs"
  for name, nll, trained in (("static_mnist-vae-vampprior-60ep", 86.5, 60),
                             ("static_mnist-hvae-mog-K50-9ep", 90.25, 7)):
    cell, budget = name.rsplit("-", 1)
    (runs / name).mkdir(parents=True)
    config = vampprior.get_config(cell)
    config.train.num_epochs = float(budget[:-2])
    (runs / name / "config.json").write_text(configuration.to_json(config))
    (runs / name / "train_summary.json").write_text(json.dumps({"epochs": trained}))
    (runs / name / "eval_test.json").write_text(json.dumps(dict(
        nll=nll, elbo=-nll - 3, kl=20.0, bits_per_dim=0.15, active_units=30, active_units_z1=12,
        active_units_z2=18, num_samples=5000, num_points=10000)))
  launch.collect(str(runs), str(tmp_path))
  text = (tmp_path / "vampprior.md").read_text()
  assert ("| static_mnist | 88.56 |  | 85.57 | 86.50 · IS-NLL, L=5,000 · 60 ep (paper: early "
          "stopping) |") in text
  assert ("| mog | 50 | -93.25 · ELBO · 7 ep, early-stopped | 90.25 · IS-NLL, L=5,000 · 7 ep, "
          "early-stopped | 12 | 18 |") in text
  assert "vampprior K=500" in text  # every archived run, with its K
