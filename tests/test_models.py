"""Flow posteriors, pure and convolutional RealNVPs, the HVAE and the model factory."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vae_jax import config_files, configuration, flows
from vae_jax.distributions import DiagonalGaussian
from vae_jax.models import HierarchicalVAE, VAE, create_model
from vae_jax.models import factory
from vae_jax.nets.dense import MLP
from vae_jax.nets.gated import GatedMLP
from vae_jax.models.factory import component

from conftest import tiny_config
from test_flows import _check_bijector, _perturb

xu2020 = config_files.module("configs/xu2020.py")


def _init(model, x, seed=0):
  return model.init({"params": jax.random.PRNGKey(seed), "dropout": jax.random.PRNGKey(seed + 1)},
                    x, jax.random.PRNGKey(seed + 2))["params"]


def test_flow_posterior_density_matches_change_of_variables():
  """log q(z|x) of a RealNVP posterior (Eq. B.1) against an independent computation: invert the
  flow and add log|det d f^-1 / dz| from the autodiff Jacobian."""
  config = tiny_config(prior="standard").model
  config.posterior = component("posterior", "realnvp", num_blocks=2, coupling_hidden=16)
  model = create_model(config, (8, 8, 1))
  x = jax.random.bernoulli(jax.random.PRNGKey(0), 0.4, (3, 8, 8, 1)).astype(jnp.float32)
  params = _perturb(_init(model, x), jax.random.PRNGKey(1), scale=0.1)
  z, log_q = model.apply({"params": params}, x, jax.random.PRNGKey(2), 5,
                         method=VAE.sample_posterior)

  def independent_log_q(module, z):
    gaussian = module.gaussian_posterior(x)
    flow = module.posterior_flow(z)
    inverse = lambda v: flow.inverse(v[None])[0]
    w = jax.vmap(jax.vmap(inverse))(z)
    jacobians = jax.vmap(jax.vmap(jax.jacfwd(inverse)))(z)
    return gaussian.log_prob(w) + jnp.linalg.slogdet(jacobians)[1]

  expected = model.apply({"params": params}, z, method=independent_log_q)
  np.testing.assert_allclose(log_q, expected, rtol=1e-4, atol=1e-3)


@pytest.mark.usefixtures("float64")
@pytest.mark.parametrize("num_blocks", [1, 2, 3])
def test_pure_realnvp_is_exact_and_alternates(num_blocks):
  """B.7's pure RealNVP (couplings only): exact log-det, and with two or more blocks both halves
  are transformed (a flow of couplings that never swap would leave one half untouched)."""
  dim, x = 6, 1.5 * jax.random.normal(jax.random.PRNGKey(3), (5, 6))
  module = flows.RealNVP(num_blocks, coupling_hidden=8, pure=True)
  params = _perturb(module.init(jax.random.PRNGKey(4), x), jax.random.PRNGKey(5))
  bijector = module.apply(params, x)
  _check_bijector(bijector, x)
  assert not any("invertible_dense" in str(p) or "actnorm" in str(p)
                 for p in jax.tree_util.tree_leaves_with_path(params))
  jacobian = jax.jacfwd(lambda v: bijector.forward(v[None])[0])(x[0])
  left_untouched = np.allclose(jacobian[:dim // 2, :dim // 2], np.eye(dim // 2))
  right_untouched = np.allclose(jacobian[dim // 2:, dim // 2:], np.eye(dim - dim // 2))
  assert not right_untouched
  assert left_untouched == (num_blocks == 1)


def test_convolutional_realnvp_is_exact():
  """B.5's flow on latent tensors: invertible 1x1 convolution -> residual coupling -> ActNorm.
  The log-det over an 2x2x4 event against the autodiff Jacobian of the flattened map."""
  x = jax.random.normal(jax.random.PRNGKey(6), (3, 2, 2, 4)) + 0.3
  module = flows.RealNVP(2, coupling_hidden=8, event_ndims=3)
  params = _perturb(module.init(jax.random.PRNGKey(7), x), jax.random.PRNGKey(8), scale=0.1)
  bijector = lambda: module.apply(params, x)
  y, log_det = jax.jit(lambda v: bijector().forward_and_log_det(v))(x)
  np.testing.assert_allclose(jax.jit(lambda v: bijector().inverse(v))(y), x, rtol=1e-4, atol=1e-4)
  flat = lambda v: bijector().forward(v.reshape((1,) + x.shape[1:])).reshape(-1)
  jacobians = jax.jit(jax.vmap(jax.jacfwd(flat)))(x.reshape(3, -1))
  np.testing.assert_allclose(log_det, jnp.linalg.slogdet(jacobians)[1], rtol=1e-4, atol=1e-4)


def test_actnorm_of_conv_flow_standardises_each_channel_at_init():
  x = 3.0 * jax.random.normal(jax.random.PRNGKey(9), (64, 4, 4, 6)) - 2.0
  module = flows.RealNVP(1, coupling_hidden=8, event_ndims=3)
  y = module.apply(module.init(jax.random.PRNGKey(10), x), x).forward(x)
  np.testing.assert_allclose(y.mean((0, 1, 2)), 0.0, atol=1e-4)
  np.testing.assert_allclose(y.std((0, 1, 2)), 1.0, atol=1e-3)


# B.13; the VampPrior paper (its HVAE's prior on z2 is tested in test_vampprior.py).
@pytest.mark.parametrize("t_x_reads_features", [True, pytest.param(False, marks=pytest.mark.slow)])
def test_hvae_log_weights_are_the_sum_of_its_factors(t_x_reads_features):
  """log q = log q(z2|x) + log q(z1|x, z2) and log p = log p(z2) + log p(z1|z2) (Eq. 10-15,
  B.13), checked against the Gaussians built directly from the submodules."""
  config = tiny_config(prior="realnvp").model
  vae = create_model(config, (8, 8, 1))
  model = HierarchicalVAE(encoder=vae.encoder, decoder=vae.decoder, head=vae.head,
                          prior=factory.create_prior(config),
                          t_x=MLP((6,)) if t_x_reads_features else GatedMLP((6,), flatten_dims=3),
                          u_z2=MLP((6,)),
                          g=MLP((5,)), t_z2=MLP((6,)), latent_dim=config.latent_dim,
                          t_x_reads_features=t_x_reads_features)
  x = jax.random.bernoulli(jax.random.PRNGKey(11), 0.4, (3, 8, 8, 1)).astype(jnp.float32)
  params = jax.jit(lambda x: _init(model, x))(x)
  parts = jax.jit(lambda p: model.apply({"params": p}, x, jax.random.PRNGKey(12), 4,
                                        method="log_weights"))(params)
  d = config.latent_dim
  z1, z2 = parts.z[..., :d], parts.z[..., d:]

  def factors(module):
    h = module.encoder(x)
    q2 = module.q_z2(h)
    q1 = module._q_z1(module.t_x(h if t_x_reads_features else x), z2)
    p1 = module.p_z1(module.t_z2(z2))
    return q2.log_prob(z2) + q1.log_prob(z1), module.prior.log_prob(z2) + p1.log_prob(z1)

  log_q, log_p = jax.jit(lambda p: model.apply({"params": p}, method=factors))(params)
  np.testing.assert_allclose(parts.log_posterior, log_q, rtol=1e-5, atol=1e-4)
  np.testing.assert_allclose(parts.log_prior, log_p, rtol=1e-5, atol=1e-4)
  means = model.apply({"params": params}, x, jax.random.PRNGKey(13), 8, method="posterior_mean")
  assert means.shape == (3, 2 * d)
  assert set(model.latent_groups) == {"z1", "z2"}


def test_gaussian_posterior_of_latent_tensor_has_tensor_event():
  gaussian = DiagonalGaussian(jnp.zeros((5, 8, 8, 3)), jnp.zeros((5, 8, 8, 3)), event_ndims=3)
  assert gaussian.log_prob(jnp.zeros((5, 8, 8, 3))).shape == (5,)
  np.testing.assert_allclose(gaussian.log_prob(jnp.zeros((8, 8, 3))),
                             -0.5 * np.log(2 * np.pi) * 192, rtol=1e-5)  # float32 sum of 192


@pytest.mark.parametrize("cell,image_shape,num_latent", [
    ("dense,rnvp_both,K=2,mnist", (28, 28, 1), 40),
    ("conv,standard,mnist", (28, 28, 1), 40),
    ("resnet,rnvp_prior,K=2,fashion_mnist", (28, 28, 1), 64),
    ("resnet_small,rnvp_prior,K=2,pure,static_mnist", (28, 28, 1), 40),
    ("pixel,rnvp_posterior,K=2,omniglot", (28, 28, 1), 64),
    ("resnet_hvae,rnvp_prior,K=2,mnist", (28, 28, 1), 80),
    ("resnet,rnvp_prior,K=2,cifar10", (32, 32, 3), 8 * 8 * 32),
])
def test_every_architecture_builds_with_the_papers_shapes(cell, image_shape, num_latent):
  """Each architecture initialises (abstractly: no compute) and gives per-sample log weights."""
  config = xu2020.get_config(cell)
  configuration.validate(config, 1)
  model = create_model(config.model, image_shape)
  x = jnp.zeros((2,) + image_shape)
  params = jax.eval_shape(lambda: _init(model, x))
  parts = jax.eval_shape(lambda p: model.apply({"params": p}, x, jax.random.PRNGKey(0), 3,
                                              method="log_weights"), params)
  assert parts.log_likelihood.shape == parts.log_prior.shape == (3, 2)
  assert np.prod(parts.z.shape[2:]) == num_latent
  assert ("posterior_flow" in params) == ("posterior" in cell or "both" in cell)


def test_width_scales_the_cifar10_channels_but_not_the_latent():
  """width=0.25: B.5's 96/192/256 channels become 24/48/64 in the encoder and decoder, the
  couplings' 64 become 16; the latent stays 8x8x32. Elsewhere the token is refused, and so is a width <= 0."""
  config = xu2020.get_config("resnet,rnvp_prior,K=2,cifar10,width=0.25")
  assert xu2020.canonical("width=0.25,cifar10,resnet,rnvp_prior,K=2") == (
      "resnet,rnvp_prior,K=2,width=0.25,cifar10")
  configuration.validate(config, 1)
  model = create_model(config.model, (32, 32, 3))
  x = jnp.zeros((2, 32, 32, 3))
  params = jax.eval_shape(lambda: _init(model, x))
  channels = lambda tree: {leaf.shape[-1] for path, leaf in
                           jax.tree_util.tree_flatten_with_path(tree)[0]
                           if getattr(path[-1], "key", "") == "kernel" and leaf.ndim >= 4}
  # (>= 4: the prior's stacked blocks add a leading axis of K to their convolution kernels)
  assert channels(params["encoder"]) == channels(params["decoder"]) == {24, 48, 64}
  assert params["posterior_loc"]["kernel"].shape[-1] == 32
  assert 16 in channels(params["prior"])
  for bad in ("resnet,standard,mnist,width=0.5", "resnet,standard,cifar10,width=0"):
    with pytest.raises(ValueError, match="width"):
      xu2020.get_config(bad)
  config = xu2020.get_config("resnet,standard,cifar10")
  config.model.decoder.width = 0.0
  with pytest.raises(ValueError, match=r"config.model.decoder.width=0.0 must be > 0"):
    configuration.validate(config, 1)


def test_convolutional_realnvp_starts_volume_preserving():
  """With zero-initialised coupling outputs, each block's coupling (scale 1/2) and ActNorm
  (data-initialised scale 2) cancel: log|det| at initialisation is that of standardising."""
  x = jax.random.normal(jax.random.PRNGKey(11), (64, 4, 4, 6))
  module = flows.RealNVP(3, coupling_hidden=8, event_ndims=3)
  _, log_det = module.apply(module.init(jax.random.PRNGKey(12), x), x).forward_and_log_det(x)
  assert np.all(np.abs(log_det) < 5.0)  # 96 dimensions; random coupling outputs give ~-100
