"""IAF and VLAE parts (Kingma et al. 2016; Chen et al. 2017): weight normalization, the
channel-masked ConvMADE and its IAF step, the IAF posterior inside a VAE, VLAE's masked PixelCNN,
the ResNet VAE of IAF Appendix C, and the training options they bring (free bits, Adamax, Polyak
averaging)."""
import json

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vae_jax import config_files, train
from vae_jax.flows import autoregressive, made
from vae_jax.models import create_model
from vae_jax.models.resnet_vae import LayerPosterior, ResNetVAE
from vae_jax.nets import pixelcnn
from vae_jax.nets.weight_norm import WNConv, WNDense
from vae_jax.models.factory import component

from conftest import tiny_config
from test_flows import _perturb
from test_train import _cifar10_config, _records

iaf = config_files.module("configs/iaf.py")
vlae = config_files.module("configs/vlae.py")


@pytest.mark.parametrize("layer,shape", [
    (WNDense(5), (256, 7)), (WNConv(5), (16, 6, 6, 3)), (WNConv(4, strides=2), (16, 6, 6, 3)),
    (WNConv(4, strides=2, transpose=True), (16, 6, 6, 3)), (WNConv(3, init_scale=0.1), (16, 6, 6, 2))])
def test_weight_norm_initialises_from_data_and_computes_g_v_over_norm_v(layer, shape):
  """After data-dependent init every output unit has mean 0 and std init_scale on the init batch
  (Salimans & Kingma 2016, Sec. 3); on any input the layer equals a plain layer with kernel
  g v / ||v|| and bias b."""
  x = 2.0 + 3.0 * jax.random.normal(jax.random.PRNGKey(0), shape)
  params = layer.init(jax.random.PRNGKey(1), x)
  y = layer.apply(params, x)
  axes = tuple(range(y.ndim - 1))
  np.testing.assert_allclose(y.mean(axes), 0.0, atol=1e-4)
  np.testing.assert_allclose(y.std(axes), layer.init_scale, rtol=1e-3)
  p = params["params"]
  v = np.asarray(p["v"])
  kernel = p["g"] * v / np.sqrt(np.sum(v ** 2, axis=tuple(range(v.ndim - 1))))
  other = jax.random.normal(jax.random.PRNGKey(2), shape)
  if isinstance(layer, WNDense):
    expected = other @ kernel + p["b"]
  else:
    plain = (nn.ConvTranspose if layer.transpose else nn.Conv)(
        layer.features, (3, 3), strides=(layer.strides,) * 2, padding="SAME")
    expected = plain.apply({"params": {"kernel": kernel, "bias": p["b"]}}, other)
  np.testing.assert_allclose(layer.apply(params, other), expected, rtol=1e-4, atol=1e-4)


def _conv_made(hidden, order=None):
  module = made.ConvMADE(hidden, num_params=2, order=order)
  z = jax.random.normal(jax.random.PRNGKey(0), (8, 4, 4, 3))
  context = jax.random.normal(jax.random.PRNGKey(1), (8, 4, 4, 5))
  params = _perturb(module.init(jax.random.PRNGKey(2), z, context), jax.random.PRNGKey(3))
  return module, params, z, context


@pytest.mark.parametrize("hidden,order", [((), None), ((6,), (2, 0, 1)), ((6, 6), None)])
def test_conv_made_is_autoregressive_over_channels_at_every_position(hidden, order):
  """Output channel d at any position depends on input channel i at any position only if i
  comes before d in the order (a triangular Jacobian in channel-major order), and it does
  depend on the earlier channels of its neighbours."""
  module, params, z, context = _conv_made(hidden, order)
  jacobian = jax.jacfwd(lambda v: module.apply(params, v[None], context[:1])[0])(z[0])
  jacobian = np.asarray(jacobian)  # [H, W, D, 2, H, W, D]
  rank = made.input_degrees(np.arange(3) if order is None else order)
  for d in range(3):
    for i in range(3):
      block = np.abs(jacobian[:, :, d, :, :, :, i])
      if rank[i] >= rank[d]:
        assert np.all(block == 0), (d, i)
      else:
        assert block[1, 1, 0, 1, 2] > 0, (d, i)


def test_conv_iaf_step_log_det_per_unit_matches_autodiff():
  """One IAF step over a feature map: the sum of the per-unit log sigma equals log|det| of the
  full (H W D x H W D) Jacobian of z -> z'."""
  module, params, z, context = _conv_made((6,))

  def step(v):
    return autoregressive.iaf_update(module.apply(params, v[None], context[:1]), v[None])

  new_z, log_det_units = step(z[0])
  jacobian = jax.jacfwd(lambda v: step(v)[0][0])(z[0]).reshape(48, 48)
  _, log_det = np.linalg.slogdet(np.asarray(jacobian, np.float64))
  np.testing.assert_allclose(float(jnp.sum(log_det_units)), log_det, rtol=1e-4)
  assert new_z.shape == (1,) + z.shape[1:]


def test_layer_posterior_log_density_matches_the_inverse_pass():
  """log q(z) of a Gaussian-plus-2-IAF-steps layer equals the Gaussian density of the
  sequentially inverted sample plus log|det| of the inverse (autodiff)."""
  posterior = LayerPosterior(steps=2, hidden=(6,), location_only=False, min_logstd=-11.0)
  mean = jax.random.normal(jax.random.PRNGKey(0), (1, 2, 2, 3))
  logsd = 0.3 * jax.random.normal(jax.random.PRNGKey(1), (1, 2, 2, 3))
  context = jax.random.normal(jax.random.PRNGKey(2), (1, 2, 2, 4))
  key = jax.random.PRNGKey(3)
  params = _perturb(posterior.init(jax.random.PRNGKey(4), mean, logsd, context, key),
                    jax.random.PRNGKey(5), scale=0.3)
  z, log_q_units = posterior.apply(params, mean, logsd, context, key)

  def made_out(w, t):
    module = made.ConvMADE((6,), 2, order=tuple(autoregressive.step_order(3, t)),
                           output_bias=(0.0, autoregressive.IAF_GATE_BIAS))
    return module.apply({"params": params["params"][f"iaf_{t}"]}, w, context)

  def flow(w):
    for t in range(2):
      w = autoregressive.iaf_update(made_out(w, t), w)[0]
    return w

  def invert_step(y, t):  # channel d is exact after d rounds (triangular in channel order)
    def solve(w, y):
      out = made_out(w, t)
      gate = jax.nn.sigmoid(out[..., 1])
      return (y - (1 - gate) * out[..., 0]) / gate
    return autoregressive._sequential_inverse(solve, y, 3)  # pylint: disable=protected-access

  w = invert_step(invert_step(z, 1), 0)
  np.testing.assert_allclose(flow(w), z, atol=1e-4)
  gaussian = -0.5 * ((w - mean) / jnp.exp(logsd)) ** 2 - logsd - 0.5 * np.log(2 * np.pi)
  jacobian = jax.jacfwd(lambda v: flow(v[None])[0])(w[0]).reshape(12, 12)
  expected = float(jnp.sum(gaussian)) - np.linalg.slogdet(np.asarray(jacobian, np.float64))[1]
  np.testing.assert_allclose(float(jnp.sum(log_q_units)), expected, rtol=1e-3, atol=1e-3)


def test_masked_pixelcnn_logits_see_only_earlier_pixels_and_sampling_agrees():
  """VLAE's PixelCNN: the logit of pixel i depends on x only at pixels before i in raster
  order, and on the z-features everywhere; sequential samples come with the network's logits."""
  module = pixelcnn.MaskedPixelCNN()
  x = (jax.random.uniform(jax.random.PRNGKey(0), (4, 5, 5, 1)) > 0.5).astype(jnp.float32)
  features = jax.random.normal(jax.random.PRNGKey(1), (4, 5, 5, 3))
  params = _perturb(module.init(jax.random.PRNGKey(2), features, x), jax.random.PRNGKey(3))
  jacobian = jax.jit(jax.jacfwd(lambda v: module.apply(params, features[:1], v[None])[0, ..., 0]))(
      x[0])
  jacobian = np.abs(np.asarray(jacobian[..., 0])).reshape(25, 25)
  assert np.all(np.triu(jacobian) == 0)  # no pixel sees itself or later ones
  assert jacobian[6, 0] > 0 and jacobian[12, 6] > 0
  feature_jacobian = jax.jit(jax.jacfwd(
      lambda f: module.apply(params, f[None], x[:1])[0, 0, 0, 0]))(features[0])
  assert np.abs(np.asarray(feature_jacobian))[0, 0].sum() > 0  # pixel 0 sees its own features
  samples, logits = jax.jit(lambda f, key: module.apply(params, f, key, method="sample"))(
      features, jax.random.PRNGKey(4))
  np.testing.assert_allclose(logits, module.apply(params, features, samples), atol=1e-5)


def _tiny_resnet_vae(bidirectional, iaf_steps=1):
  return ResNetVAE(num_layers=2, hidden=8, latent_channels=3, bidirectional=bidirectional,
                   iaf_steps=iaf_steps, iaf_hidden=(8,), image_shape=(8, 8, 3))


@pytest.mark.slow
def test_resnet_vae_parts_add_up_and_kl_splits_over_layers_and_units():
  """log w = log p(x|z) + log p(z) - log q(z|x), with the KL split per unit summing to
  log q - log p; layers sit side by side on the channel axis. (Bidirectional with IAF here; the
  bottom-up pass runs in the dependency test below.)"""
  model = _tiny_resnet_vae(True)
  x = jnp.round(jax.random.uniform(jax.random.PRNGKey(0), (4, 8, 8, 3)) * 255) / 255
  params = model.init(jax.random.PRNGKey(1), x, jax.random.PRNGKey(2))
  parts = model.apply(params, x, jax.random.PRNGKey(3), 5, method="log_weights")
  assert parts.log_likelihood.shape == (5, 4) and parts.z.shape == (5, 4, 4, 4, 6)
  np.testing.assert_allclose(parts.kl_per_unit.sum((-3, -2, -1)),
                             parts.log_posterior - parts.log_prior, rtol=1e-4, atol=1e-3)
  assert np.all(np.isfinite(parts.log_likelihood))
  assert model.apply(params, jax.random.PRNGKey(4), 3, method="generate").shape == (3, 8, 8, 3)


@pytest.mark.slow
def test_resnet_vae_inference_directions_have_their_dependencies():
  """Bottom-up: q(z_1|x) is drawn before the top-down pass, so z_1 does not depend on the
  top-down parameters. Bidirectional: z_1 does (it is drawn top-down after z_2)."""
  x = jnp.round(jax.random.uniform(jax.random.PRNGKey(0), (2, 8, 8, 3)) * 255) / 255
  for bidirectional in (False, True):
    model = _tiny_resnet_vae(bidirectional, iaf_steps=0)
    params = model.init(jax.random.PRNGKey(1), x, jax.random.PRNGKey(2))

    def z1(top):
      p = jax.tree_util.tree_map(lambda a: a, params)
      p["params"]["top"] = top
      return model.apply(p, x, jax.random.PRNGKey(3), 1, method="log_weights").z[..., :3]

    sensitivity = jax.jacfwd(z1)(params["params"]["top"] + 0.1)
    assert (np.abs(np.asarray(sensitivity)).sum() > 0) == bidirectional


@pytest.mark.slow
def test_resnet_vae_trains_with_free_bits_per_feature_map(tmp_path):
  config = _cifar10_config(tiny_config("standard"))
  config.model.name, config.model.latent_dim = "resnet_vae", 3
  config.model.encoder, config.model.decoder = component("encoder", "none"), component("decoder", "none")
  config.model.likelihood = component("likelihood", "discretized_logistic")
  config.model.resnet_vae.update(layers=2, hidden=8)
  config.model.posterior = component("posterior", "iaf", num_steps=1, hidden=(8,))
  config.train.free_bits, config.train.free_bits_groups = 0.1, "channel"
  config.train.optimizer, config.train.polyak_decay = "adamax", 0.9
  config.train.num_epochs, config.train.log_every_steps = 64 * 4 / 50000, 1
  config.train.learning_rates, config.train.lr_boundaries = (2e-3,), ()
  config.eval.num_samples, config.eval.sample_chunk, config.eval.batch_size = 2, 2, 100
  config.eval.active_unit_samples, config.eval.active_unit_images, config.eval.num_images = 2, 100, 4
  config.eval.test_images, config.eval.decompressions = 100, True
  results = train.train_and_evaluate(config, str(tmp_path))
  losses = [r["loss"] for r in _records(str(tmp_path), "train")]
  assert losses[-1] < losses[0]
  assert np.isfinite(results["nll"]) and 2 < results["bits_per_dim"] < 12
  assert results["num_points"] == 100  # eval.test_images
  assert (tmp_path / "decompressions.png").exists()


def test_iaf_posterior_vae_density_matches_its_inverse_and_refuses_x_free_analyses():
  """q(z|x) of a VAE with an IAF posterior: log q from the sampling path equals the Gaussian
  density of the inverted sample minus the forward log-det; the aggregate-posterior inverse,
  which needs an x-independent flow, raises a clear error."""
  config = tiny_config("standard").model
  config.posterior = component("posterior", "iaf", num_steps=2, hidden=(16, 16))
  model = create_model(config, (8, 8, 1))
  x = (jax.random.uniform(jax.random.PRNGKey(0), (3, 8, 8, 1)) > 0.5).astype(jnp.float32)
  params = _perturb(model.init(jax.random.PRNGKey(1), x, jax.random.PRNGKey(2)),
                    jax.random.PRNGKey(3), scale=0.3)
  z, log_q = model.apply(params, x, jax.random.PRNGKey(4), 2, method="sample_posterior")

  def inverse_log_q(module, z, x):
    q, h = module._encode(x)  # pylint: disable=protected-access
    flow = module.posterior_flow(z, h)
    w, log_det_inverse = flow.inverse_and_log_det(z)
    return q.log_prob(w) + log_det_inverse

  expected = model.apply(params, z, x, method=inverse_log_q)
  np.testing.assert_allclose(log_q, expected, rtol=1e-4, atol=1e-3)
  with pytest.raises(ValueError, match="x-independent"):
    model.apply(params, z, method="unflow_posterior")


def test_free_bits_per_unit_needs_a_factorised_kl(tmp_path):
  config = tiny_config("realnvp")
  config.train.free_bits, config.train.free_bits_groups = 0.5, "dimension"
  config.train.num_epochs = 0.2
  with pytest.raises(ValueError, match="free_bits_groups='all'"):
    train.train_and_evaluate(config, str(tmp_path))


def test_polyak_average_is_the_exponential_average_of_the_steps(tmp_path):
  """averaged_params after n steps = decay^n * init + sum_k (1 - decay) decay^(n-k) params_k."""
  config = tiny_config("standard")
  config.train.polyak_decay, config.train.optimizer = 0.5, "adamax"
  run = train.setup_run(config)
  optimizer = train.make_optimizer(config.train, run.total_steps)
  state = train.create_train_state(run, optimizer)
  step = train.make_train_steps(run, optimizer)
  order = jnp.arange(run.train_images.shape[0])
  expected = jax.tree_util.tree_map(jnp.copy, state.params)
  for _ in range(3):
    state, _ = step(state, run.train_images, order, 1)
    expected = jax.tree_util.tree_map(lambda e, p: 0.5 * e + 0.5 * p, expected, state.params)
  jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7),
                         state.averaged_params, expected)
  assert not np.allclose(jax.tree_util.tree_leaves(state.averaged_params)[0],
                         jax.tree_util.tree_leaves(state.params)[0])


def test_every_paper_cell_builds_a_valid_config():
  for paper in (iaf, vlae):
    for cell in paper.cells():
      config = paper.get_config(cell)
      assert config.train.optimizer == "adamax"
  config = vlae.get_config("static_mnist-vlae")
  assert config.train.free_bits == pytest.approx(7.84) and config.train.polyak_decay == 0.998
  with pytest.raises(ValueError, match="Unknown IAF cell"):
    iaf.get_config("mnist-iaf-d3")


def test_collect_puts_each_run_beside_the_paper(tmp_path):
  """A run named <cell>-<N>ep lands in its table row labelled with its protocol; every run is
  listed."""
  import importlib.util  # pylint: disable=g-import-not-at-top
  spec = importlib.util.spec_from_file_location(
      "iaf_vlae_launch", __file__.replace("tests/test_iaf_vlae.py", "launch/iaf_vlae.py"))
  launch = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(launch)
  from vae_jax import configuration  # pylint: disable=g-import-not-at-top
  runs = tmp_path / "runs"
  for name, config, nll, epochs in (
      ("mnist-iaf-d2-w320-7ep", iaf.iaf_mnist(2, 320), 85.25, 7),
      ("static_mnist-vlae-3ep", vlae.vlae("static_mnist"), 91.5, 3)):
    (runs / name).mkdir(parents=True)
    (runs / name / "config.json").write_text(configuration.to_json(config))
    (runs / name / "train_summary.json").write_text(json.dumps({"epochs": epochs}))
    (runs / name / "eval_test.json").write_text(json.dumps(dict(
        nll=nll, elbo=-nll - 3, kl=20.0, bits_per_dim=0.15, active_units=30, num_samples=128,
        num_points=10000)))
  launch.collect(str(runs), str(tmp_path))
  iaf_md = (tmp_path / "iaf.md").read_text()
  assert ("| iaf-d2-w320 | -82.02 | 79.77 | 85.25 · IS-NLL, L=128 · 7 ep (paper: epochs not "
          "given) |") in iaf_md
  assert "| diagonal | -84.08 | 81.08 |  |" in iaf_md
  vlae_md = (tmp_path / "vlae.md").read_text()
  assert ("| 1 | static_mnist, VLAE | 79.03 | 91.50 · IS-NLL, L=128 (paper: 4,096) · 3 ep "
          "(paper: epochs not given) |") in vlae_md
  assert "static_mnist-vlae-3ep" in vlae_md and "static_mnist-vlae-3ep" not in iaf_md
