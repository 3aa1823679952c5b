"""Conv/Resnet encoders and decoders of B.2 and B.5: shapes, strides, resnet sum, L2 naming."""
import json
import os
import subprocess
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vae_jax.nets import conv
from vae_jax.nets.dense import Dense

BATCH = (2, 3)


def _init_shapes(module, input_shape):
  """Shapes of (output, variables), without computing anything."""
  x = jax.ShapeDtypeStruct(input_shape, jnp.float32)
  return jax.eval_shape(lambda x: module.init_with_output(jax.random.PRNGKey(0), x), x)


def _random_params(module, input_shape, seed=0):
  """Random parameters (biases included) from NumPy: Flax's initializers compile slowly on CPU."""
  rng = np.random.default_rng(seed)
  shapes = _init_shapes(module, input_shape)[1]["params"]
  return jax.tree_util.tree_map(
      lambda s: (0.3 * rng.standard_normal(s.shape)).astype(np.float32), shapes)


def _apply(module, params, x):
  return jax.jit(module.apply)({"params": params}, x)


def _normal(shape, seed=1):
  return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("residual", [True, False])
@pytest.mark.parametrize("encoder_shapes, decoder_shapes", [
    (conv.MNIST_ENCODER_SHAPES, conv.MNIST_DECODER_SHAPES),
    (conv.SMALL_ENCODER_SHAPES, conv.SMALL_DECODER_SHAPES)])
def test_mnist_shapes(residual, encoder_shapes, decoder_shapes):
  encoder = conv.ConvEncoder(encoder_shapes, residual)
  assert _init_shapes(encoder, BATCH + (28, 28, 1))[0].shape == BATCH + (7 * 7 * 16,)
  decoder = conv.ConvDecoder(decoder_shapes, residual, conv.MNIST_DECODER_UNFLATTEN)
  out, variables = _init_shapes(decoder, BATCH + (40,))
  assert out.shape == BATCH + (28, 28, 32)
  assert variables["params"]["hidden_dense"]["kernel"].shape == (40, 784)  # B.2: Dense[784]


def test_cifar_shapes():
  encoder = conv.ConvEncoder(conv.CIFAR_ENCODER_SHAPES, residual=True, flatten=False)
  assert _init_shapes(encoder, BATCH + (32, 32, 3))[0].shape == BATCH + (8, 8, 256)
  decoder = conv.ConvDecoder(conv.CIFAR_DECODER_SHAPES, residual=True, unflatten_shape=None)
  assert _init_shapes(decoder, BATCH + (8, 8, 32))[0].shape == BATCH + (32, 32, 96)


def test_leading_batch_dims_are_only_reshaped():
  """[2, 3, ...] inputs give the outputs of the flattened [6, ...] batch."""
  x = _normal(BATCH + (8, 8, 1))
  encoder = conv.ConvEncoder(((4, 4, 4), (4, 4, 2)), residual=True)
  params = _random_params(encoder, x.shape)
  flat = _apply(encoder, params, x.reshape((-1, 8, 8, 1)))
  np.testing.assert_allclose(_apply(encoder, params, x), flat.reshape(BATCH + (32,)), rtol=1e-5,
                             atol=1e-5)
  z = _normal(BATCH + (5,))
  decoder = conv.ConvDecoder(((8, 8, 4),), residual=True, unflatten_shape=(4, 4, 2))
  params = _random_params(decoder, z.shape)
  flat = _apply(decoder, params, z.reshape((-1, 5)))
  np.testing.assert_allclose(_apply(decoder, params, z), flat.reshape(BATCH + (8, 8, 4)),
                             rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("residual", [True, False])
def test_transpose_stack_maps_7_to_14_to_28(residual):
  stack = conv.ConvStack(((14, 14, 8), (28, 28, 4), (28, 28, 4)), residual, transpose=True)
  x = _normal((2, 7, 7, 16))
  out = _apply(stack, _random_params(stack, x.shape), x)
  assert out.shape == (2, 28, 28, 4)
  assert np.all(np.isfinite(out))


@pytest.mark.parametrize("transpose", [False, True])
def test_stride_1_layers_are_centered(transpose):
  """'SAME' padding: with an all-ones 3x3 kernel, a delta spreads to its 3x3 neighbourhood."""
  stack = conv.ConvStack(((9, 9, 1),), residual=False, transpose=transpose)
  params = {"hidden_0": {"kernel": jnp.ones((3, 3, 1, 1)), "bias": jnp.zeros((1,))}}
  x = np.zeros((1, 9, 9, 1), np.float32)
  x[0, 4, 4, 0] = 1.0
  expected = np.zeros_like(x)
  expected[0, 3:6, 3:6, 0] = 1.0
  np.testing.assert_array_equal(_apply(stack, params, x), expected)


def test_layer_strides():
  assert conv.layer_strides(28, 28, transpose=False) == 1
  assert conv.layer_strides(28, 14, transpose=False) == 2
  assert conv.layer_strides(7, 14, transpose=True) == 2
  for in_height, out_height, transpose in [(28, 10, False), (14, 28, False), (14, 7, True),
                                           (7, 21, True)]:
    with pytest.raises(ValueError, match="Cannot derive the strides"):
      conv.layer_strides(in_height, out_height, transpose)


@pytest.mark.parametrize("residual", [True, False])
def test_stack_rejects_bad_shapes(residual):
  with pytest.raises(ValueError, match="height 28 to 10"):
    _init_shapes(conv.ConvStack(((28, 28, 8), (10, 10, 8)), residual, transpose=False),
                 (1, 28, 28, 1))
  # The width is not used to derive strides, but a mismatch is caught.
  with pytest.raises(ValueError, match="requested"):
    _init_shapes(conv.ConvStack(((14, 7, 8),), residual, transpose=False), (1, 28, 28, 1))


def _zero_branch(params):
  """The block's parameters at initialisation's branch scale: zero, so it is its shortcut."""
  return dict(params, branch_scale=np.zeros((), np.float32))


@pytest.mark.parametrize("transpose", [False, True])
def test_residual_block_identity_shortcut(transpose):
  x = _normal((2, 14, 14, 8))
  block = conv.ResidualBlock(8, transpose=transpose)
  params = _random_params(block, x.shape)
  assert set(params) == {"hidden_0", "hidden_1", "branch_scale"}
  np.testing.assert_array_equal(_apply(block, _zero_branch(params), x), x)
  # Pre-activation: the branch is hidden_1(leaky_relu(hidden_0(leaky_relu(x)))), scaled.
  layer = nn.ConvTranspose if transpose else nn.Conv
  conv_apply = lambda name, v: layer(8, (3, 3)).apply({"params": params[name]}, v)
  branch = conv_apply("hidden_1", conv.leaky_relu(conv_apply("hidden_0", conv.leaky_relu(x))))
  np.testing.assert_allclose(_apply(block, params, x), x + params["branch_scale"] * branch,
                             rtol=1e-5, atol=1e-5)


def test_residual_block_starts_as_its_shortcut_with_a_random_branch():
  """At initialisation the branch scale is zero and both branch kernels are random (a zero kernel
  would take Adam's first, sign-sized step in unison: see ResidualBlock)."""
  x = _normal((2, 14, 14, 8))
  block = conv.ResidualBlock(8)
  params = block.init(jax.random.PRNGKey(0), x)["params"]
  assert params["branch_scale"] == 0
  assert np.std(params["hidden_1"]["kernel"]) > 0.05
  np.testing.assert_array_equal(_apply(block, params, x), x)


def test_residual_block_strided_shortcuts():
  x = _normal((2, 14, 14, 8))
  # Downsampling: a linear 1x1 stride-2 convolution samples every other pixel.
  block = conv.ResidualBlock(16, strides=2)
  params = _zero_branch(_random_params(block, x.shape))
  kernel, bias = params["shortcut"]["kernel"][0, 0], params["shortcut"]["bias"]
  np.testing.assert_allclose(_apply(block, params, x), x[:, ::2, ::2] @ kernel + bias,
                             rtol=1e-5, atol=1e-5)
  # Upsampling: a linear 1x1 stride-2 transposed convolution spreads pixels over a 2x grid.
  block = conv.ResidualBlock(16, strides=2, transpose=True)
  params = _zero_branch(_random_params(block, x.shape))
  kernel, bias = params["shortcut"]["kernel"][0, 0], params["shortcut"]["bias"]
  expected = np.broadcast_to(bias, (2, 28, 28, 16)).copy()
  expected[:, ::2, ::2] += x @ kernel
  np.testing.assert_allclose(_apply(block, params, x), expected, rtol=1e-5, atol=1e-5)


def test_full_rank_shortcuts_are_space_to_depth_and_back():
  """B.5's resampling shortcuts (issue #17): every input pixel reaches the output and every output
  pixel is reached, through one 2x2 tap each (written here with NumPy slices)."""
  x = _normal((2, 14, 14, 8))
  block = conv.ResidualBlock(16, strides=2, full_rank_shortcut=True)
  params = _zero_branch(_random_params(block, x.shape))
  kernel, bias = params["shortcut"]["kernel"], params["shortcut"]["bias"]
  expected = sum(x[:, a::2, b::2] @ kernel[a, b] for a in range(2) for b in range(2)) + bias
  np.testing.assert_allclose(_apply(block, params, x), expected, rtol=1e-5, atol=1e-5)
  # Transposed, as nn.ConvTranspose does it: output pixel (2i + a, 2j + b) takes tap (1-a, 1-b).
  block = conv.ResidualBlock(16, strides=2, transpose=True, full_rank_shortcut=True)
  params = _zero_branch(_random_params(block, x.shape))
  kernel, bias = params["shortcut"]["kernel"], params["shortcut"]["bias"]
  expected = np.empty((2, 28, 28, 16), np.float32)
  for a in range(2):
    for b in range(2):
      expected[:, a::2, b::2] = x @ kernel[1 - a, 1 - b] + bias
  np.testing.assert_allclose(_apply(block, params, x), expected, rtol=1e-5, atol=1e-5)


def test_cifar_decoder_reaches_every_pixel_through_its_shortcuts():
  """With every branch shut, each output pixel of B.5's decoder depends on z (1 in 16 with 1x1
  shortcuts), and z on each input pixel of the encoder."""
  shapes = conv.scale_channels(conv.CIFAR_DECODER_SHAPES, 0.125)
  decoder = conv.ConvDecoder(shapes, residual=True, unflatten_shape=None, full_rank_shortcuts=True)
  z = _normal((1, 8, 8, 4))
  params = jax.tree_util.tree_map_with_path(
      lambda path, v: np.zeros_like(v) if "branch_scale" in jax.tree_util.keystr(path) else v,
      _random_params(decoder, z.shape))
  grads = jax.jacrev(lambda z: _apply(decoder, params, z).sum(axis=-1))(z)  # [1,32,32,1,8,8,4]
  assert np.all(np.abs(grads).reshape(32 * 32, -1).max(axis=1) > 0)
  encoder = conv.ConvEncoder(conv.scale_channels(conv.CIFAR_ENCODER_SHAPES, 0.125), residual=True,
                             flatten=False, full_rank_shortcuts=True)
  x = _normal((1, 32, 32, 3))
  params = jax.tree_util.tree_map_with_path(
      lambda path, v: np.zeros_like(v) if "branch_scale" in jax.tree_util.keystr(path) else v,
      _random_params(encoder, x.shape))
  grads = jax.grad(lambda x: _apply(encoder, params, x).sum())(x)
  assert np.all(np.abs(grads) > 0)


@pytest.mark.parametrize("residual", [True, False])
def test_l2_naming_rule(residual):
  """Kernels under hidden_* names (penalized in B.3) are exactly those of non-linear layers."""
  encoder = conv.ConvEncoder(conv.MNIST_ENCODER_SHAPES, residual)
  decoder = conv.ConvDecoder(conv.MNIST_DECODER_SHAPES, residual, conv.MNIST_DECODER_UNFLATTEN)
  trees = {"encoder": _init_shapes(encoder, (1, 28, 28, 1))[1]["params"],
           "decoder": _init_shapes(decoder, (1, 40))[1]["params"]}
  penalized, shortcuts = [], []
  for path, _ in jax.tree_util.tree_flatten_with_path(trees)[0]:
    names = [str(p.key) for p in path]
    if names[-1] != "kernel":
      continue
    if any(n.startswith("hidden_") for n in names):
      # The layer owning the kernel is itself a non-linear hidden_* layer.
      assert names[-2].startswith("hidden_"), names
      penalized.append(names)
    else:
      # Every kernel outside hidden_* names is a linear shortcut.
      assert names[-2] == "shortcut", names
      shortcuts.append(names)
  num_layers = len(conv.MNIST_ENCODER_SHAPES) + len(conv.MNIST_DECODER_SHAPES)
  assert len(penalized) == (2 * num_layers if residual else num_layers) + 1  # + hidden_dense
  # Residual: a shortcut in blocks 0, 2, 4, 5 of q and 0, 1, 3 of p, where the shape changes.
  assert len(shortcuts) == (7 if residual else 0)


@pytest.mark.parametrize("shape", [(3, 3, 16, 24), (1, 1, 3, 24), (2, 2, 24, 48), (5, 7)])
def test_lecun_normal_is_flax_lecun_normal_bit_for_bit(shape):
  """Drawn as a 2-D matrix (fast to compile), the same numbers as Flax's draw of the shape."""
  key = jax.random.PRNGKey(7)
  np.testing.assert_array_equal(conv.lecun_normal(key, shape),
                                nn.initializers.lecun_normal()(key, shape))


def test_drawn_as_matrix_keeps_a_normal_draw():
  """WNConv's directions: N(0, 0.05^2) drawn as a matrix are the draw of the 4-D shape."""
  key, shape = jax.random.PRNGKey(8), (3, 3, 16, 24)
  normal = nn.initializers.normal(0.05)
  np.testing.assert_array_equal(conv.drawn_as_matrix(normal)(key, shape), normal(key, shape))


@pytest.mark.parametrize("kernel_size,strides", [(3, 2), (1, 2), (3, 1)])
def test_conv_transpose_equals_flax_in_parameters_and_outputs(kernel_size, strides):
  x = _normal((2, 7, 6, 5))
  ours = conv.Conv(4, kernel_size, strides, transpose=True)
  flax_layer = nn.ConvTranspose(4, (kernel_size, kernel_size), strides=(strides, strides),
                                padding="SAME")
  params = ours.init(jax.random.PRNGKey(0), x)
  reference = flax_layer.init(jax.random.PRNGKey(0), x)
  jax.tree_util.tree_map(np.testing.assert_array_equal, params, reference)
  params = _random_params(ours, x.shape)  # a random bias too
  np.testing.assert_allclose(_apply(ours, params, x), _apply(flax_layer, params, x),
                             rtol=1e-6, atol=1e-6)


@pytest.mark.usefixtures("float64")
@pytest.mark.parametrize("kernel_size,shape", [(3, (2, 5, 4, 3)), (1, (2, 4, 4, 3)),
                                               (3, (1, 8, 8, 6))])
def test_strided_conv_transpose_gradients_equal_autodiff(kernel_size, shape):
  """Its custom VJP (the kernel gradient through the adjoint strided convolution) against JAX's
  own derivative of lax.conv_transpose, in float64."""
  rng = np.random.default_rng(kernel_size + shape[1])
  x = rng.standard_normal(shape)
  kernel = rng.standard_normal((kernel_size, kernel_size, shape[-1], 4))
  dy = rng.standard_normal((shape[0], 2 * shape[1], 2 * shape[2], 4))
  reference = lambda x, k: jax.lax.conv_transpose(x, k, (2, 2), "SAME",
                                                  dimension_numbers=("NHWC", "HWIO", "NHWC"))
  ours = lambda x, k: conv.strided_conv_transpose(x, k, 2)
  out, ours_vjp = jax.vjp(ours, x, kernel)
  expected, reference_vjp = jax.vjp(reference, x, kernel)
  assert out.dtype == jnp.float64
  np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)
  for got, want in zip(ours_vjp(dy), reference_vjp(dy)):
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("kernel_size,strides,padding", [
    (3, 2, "SAME"), (1, 2, "SAME"), (3, 1, "SAME"), (1, 1, "SAME"),
    ((2, 3), 1, ((1, 0), (1, 1))), ((2, 2), 1, ((1, 0), (1, 0)))])  # PixelCNN's shifted layers
def test_conv_equals_flax_in_parameters_and_outputs(kernel_size, strides, padding):
  x = _normal((3, 2, 7, 6, 5))  # with two batch axes, as the coupling networks call it
  ours = conv.Conv(4, kernel_size, strides, padding=padding)
  size = (kernel_size,) * 2 if isinstance(kernel_size, int) else kernel_size
  flax_layer = nn.Conv(4, size, strides=(strides, strides), padding=padding)
  params = ours.init(jax.random.PRNGKey(0), x)
  jax.tree_util.tree_map(np.testing.assert_array_equal, params,
                         flax_layer.init(jax.random.PRNGKey(0), x))
  params = _random_params(ours, x.shape)
  np.testing.assert_allclose(_apply(ours, params, x), _apply(flax_layer, params, x),
                             rtol=1e-6, atol=1e-6)


def test_kernel_gradient_chunks_only_large_cpu_images():
  """B.5's 32x32x96 and 16x16x192 layers at batch 128 are chunked on this single CPU device;
  its 8x8x256 layers, small batches and small images are not."""
  assert jax.default_backend() == "cpu" and jax.device_count() == 1
  assert conv.kernel_gradient_chunk((128, 32, 32, 96)) == 16
  assert conv.kernel_gradient_chunk((128, 16, 16, 192)) == 16
  assert conv.kernel_gradient_chunk((128, 8, 8, 256)) is None
  assert conv.kernel_gradient_chunk((16, 32, 32, 96)) is None


def test_masked_conv_equals_flax():
  x = _normal((2, 7, 6, 5))
  mask = np.random.default_rng(0).integers(0, 2, (3, 3, 5, 4)).astype(np.float32)
  ours, flax_layer = conv.Conv(4, 3, mask=mask), nn.Conv(4, (3, 3), padding="SAME", mask=mask)
  params = _random_params(ours, x.shape)
  np.testing.assert_allclose(_apply(ours, params, x), _apply(flax_layer, params, x),
                             rtol=1e-6, atol=1e-6)


@pytest.mark.usefixtures("float64")
@pytest.mark.parametrize("transpose,strides", [(False, 1), (False, 2), (True, 1), (True, 2)])
def test_chunked_kernel_gradients_equal_autodiff(monkeypatch, transpose, strides):
  """With chunks of 3 images over a batch of 7 (the last chunk holds one), both gradients of
  every layer kind equal JAX's own derivatives of the plain lax operations, in float64."""
  monkeypatch.setattr(conv, "_CHUNK_IMAGES", 3)
  monkeypatch.setattr(conv, "_CHUNKED_MIN_ELEMENTS", 1)
  rng = np.random.default_rng(strides + 2 * transpose)
  x = rng.standard_normal((7, 6, 6, 3))
  kernel = rng.standard_normal((3, 3, 3, 4))
  numbers = ("NHWC", "HWIO", "NHWC")
  if transpose:
    ours = lambda x, k: conv.Conv(4, 3, strides, transpose=True).apply(
        {"params": {"kernel": k, "bias": jnp.zeros(4)}}, x)
    reference = lambda x, k: jax.lax.conv_transpose(x, k, (strides,) * 2, "SAME",
                                                    dimension_numbers=numbers)
  else:  # PixelCNN's down-shifted padding
    padding = ((2, 0), (1, 1))
    ours = lambda x, k: conv.conv2d(x, k, strides, padding)
    reference = lambda x, k: jax.lax.conv_general_dilated(x, k, (strides,) * 2, padding,
                                                          dimension_numbers=numbers)
  out, ours_vjp = jax.vjp(ours, x, kernel)
  expected, reference_vjp = jax.vjp(reference, x, kernel)
  np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)
  dy = rng.standard_normal(out.shape)
  for got, want in zip(ours_vjp(dy), reference_vjp(dy)):
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


def test_dense_is_flax_dense_on_leading_axes_flattened():
  """nets.dense.Dense: nn.Dense's parameters (same names, same initialisation) and outputs for
  inputs with several leading axes; only how the matmul is laid out differs."""
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 3, 5))
  ours, flax_dense = Dense(4), nn.Dense(4)
  params = ours.init(jax.random.PRNGKey(1), x)
  reference = flax_dense.init(jax.random.PRNGKey(1), x)
  assert jax.tree_util.tree_all(jax.tree_util.tree_map(np.array_equal, params, reference))
  np.testing.assert_allclose(ours.apply(params, x), flax_dense.apply(params, x), rtol=1e-6)
  assert ours.apply(params, x).shape == (2, 3, 4)


_COMPILED_KERNELS = """
import json, vae_jax, jax, jax.numpy as jnp
from jax import lax
# YNNPACK takes convolutions above some size; this one, by default.
x, w, a = jnp.ones((8, 16, 16, 32)), jnp.ones((3, 3, 32, 32)), jnp.ones((64, 64))
conv = jax.jit(lambda x, w: lax.conv_general_dilated(x, w, (1, 1), "SAME",
                                                       dimension_numbers=("NHWC", "HWIO", "NHWC")))
text = lambda f, *args: f.lower(*args).compile().as_text()
print(json.dumps({"conv_in_ynnpack": "ynn_fusion" in text(conv, x, w),
                  "dot_in_ynnpack": "ynn_fusion" in text(jax.jit(jnp.matmul), a, a)}))
"""


def _compiled_kernels(xla_flags: str) -> dict:
  env = {**os.environ, "XLA_FLAGS": xla_flags}
  result = subprocess.run([sys.executable, "-c", _COMPILED_KERNELS], env=env, check=True,
                          capture_output=True, text=True)
  return json.loads(result.stdout.splitlines()[-1])


def test_cpu_convolutions_run_in_xla_and_matmuls_in_ynnpack():
  """Importing vae_jax leaves XLA:CPU's convolutions to XLA's own kernels (YNNPACK's kernel
  gradients were 2-6.5x slower; vae_jax/__init__.py) and matmuls in YNNPACK; a user's own setting
  of the flag wins."""
  if jax.default_backend() != "cpu":
    pytest.skip("an XLA:CPU setting")
  assert _compiled_kernels("") == {"conv_in_ynnpack": False, "dot_in_ynnpack": True}
  xla_default = ("--xla_cpu_experimental_ynn_fusion_type="
                 "individual_dot,reduce,individual_convolution")
  assert _compiled_kernels(xla_default) == {"conv_in_ynnpack": True, "dot_in_ynnpack": True}
