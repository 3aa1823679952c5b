"""PixelCNN decoder (B.2): autoregressive masking, conditioning, dropout and sampling."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vae_jax.nets.pixelcnn import PixelCNN

H, W, CF = 6, 6, 4


def random_params(model, channels, seed=0):
  """Params of the init's shapes, all non-zero (random, and cheaper than compiling the init)."""
  shapes = jax.eval_shape(lambda: model.init(
      jax.random.PRNGKey(0), jnp.zeros((1, H, W, CF)), jnp.zeros((1, H, W, channels)), True))
  rng = np.random.default_rng(seed)
  return jax.tree_util.tree_map(
      lambda s: jnp.asarray(0.3 * rng.normal(size=s.shape), jnp.float32), shapes)


def random_features(seed, *batch):
  return jnp.asarray(np.random.default_rng(seed).normal(size=batch + (H, W, CF)), jnp.float32)


@pytest.fixture(scope="module")
def jacobians():
  """d logits / d x and d logits / d features, per pixel: [H W, H W] each (max over channels)."""
  channels = 2  # Several channels per pixel: the whole pixel is one autoregressive unit.
  model = PixelCNN(num_layers=2, features=8, out_channels=channels)
  params = random_params(model, channels)
  x = jnp.asarray(np.random.default_rng(1).integers(0, 2, H * W * channels), jnp.float32)

  def logits(x_flat, features):
    return model.apply(params, features, x_flat.reshape(H, W, channels), True).reshape(H * W, -1)

  jac_x, jac_features = jax.jit(jax.jacfwd(logits, argnums=(0, 1)))(x, random_features(2))
  return (np.abs(jac_x).reshape(H * W, channels, H * W, channels).max(axis=(1, 3)),
          np.abs(jac_features).reshape(H * W, channels, H * W, CF).max(axis=(1, 3)))


def test_logits_see_x_only_at_earlier_pixels(jacobians):
  dependence, _ = jacobians
  assert np.all(np.triu(dependence) == 0), "pixel i depends on x at some j >= i"
  for i in range(1, H * W):
    if i % W:
      assert dependence[i, i - 1] > 0, f"pixel {i} ignores its left neighbour"
    if i >= W:
      assert dependence[i, i - W] > 0, f"pixel {i} ignores the pixel above"
  # The receptive field covers more than the two neighbours.
  assert np.count_nonzero(np.tril(dependence, -1)) > 2 * H * W


def test_logits_see_features_at_the_same_position(jacobians):
  _, dependence = jacobians
  assert np.all(np.diag(dependence) > 0)


def test_broadcasts_leading_dims_and_names_nonlinear_layers():
  model = PixelCNN(num_layers=1, features=8)
  params = random_params(model, 1)
  logits = jax.jit(model.apply, static_argnums=3)(
      params, random_features(0, 2, 3), jnp.ones((3, H, W, 1)), True)
  assert logits.shape == (2, 3, H, W, 1)
  layers = params["params"]
  # The L2 penalty of B.3 takes kernels under `hidden_*` names: all of the blocks, none outside.
  assert set(layers) == {"input_vertical", "input_horizontal_above", "input_horizontal_left",
                         "vertical_0", "horizontal_0", "logits"}
  assert set(layers["vertical_0"]) == {"hidden_conv_0", "hidden_conv_1", "hidden_cond"}
  assert set(layers["horizontal_0"]) == {"hidden_conv_0", "hidden_skip", "hidden_conv_1",
                                         "hidden_cond"}


def test_dropout():
  model = PixelCNN(num_layers=1, features=8)
  params = random_params(model, 1)
  features, x = random_features(0, 2), jnp.ones((2, H, W, 1))

  @jax.jit
  def outputs(key_a, key_b):
    def apply(deterministic, key):
      return model.apply(params, features, x, deterministic, rngs={"dropout": key})
    return apply(True, key_a), apply(True, key_b), apply(False, key_a), apply(False, key_b)

  kept_a, kept_b, dropped_a, dropped_b = outputs(jax.random.PRNGKey(0), jax.random.PRNGKey(1))
  np.testing.assert_array_equal(kept_a, kept_b)
  assert not np.allclose(dropped_a, dropped_b)
  assert not np.allclose(dropped_a, kept_a)


def test_sequential_sample_is_a_valid_autoregressive_sample():
  model = PixelCNN(num_layers=1, features=8)
  params = random_params(model, 1)
  features = random_features(0, 3)
  sample = jax.jit(functools.partial(model.apply, method=PixelCNN.sample))
  x, logits = sample(params, features, jax.random.PRNGKey(2))
  assert x.shape == logits.shape == (3, H, W, 1)
  assert set(np.unique(x)) == {0.0, 1.0}
  # Each pixel was drawn from the logits the network gives, on the final image, at that pixel.
  np.testing.assert_allclose(
      jax.jit(model.apply, static_argnums=3)(params, features, x, True), logits, atol=1e-4)
  # Extreme output bias: the samples are certain.
  for bias, value in ((100.0, 1.0), (-100.0, 0.0)):
    params["params"]["logits"]["bias"] = jnp.full((1,), bias)
    np.testing.assert_array_equal(sample(params, features, jax.random.PRNGKey(3))[0], value)
