"""Bits-back compression with a trained VAE (vae_jax.compress, issue #21)."""
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import tiny_config, train_only
from vae_jax import compress, configuration, data
from vae_jax.models import create_model
from vae_jax.models.factory import component

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAGE_SHAPE = (8, 8, 1)  # the embedded digits of tiny_config
PRIORS = ("standard", "realnvp", "mog", "vampprior")
LIKELIHOODS = ("bernoulli", "discretized_logistic")


def _untrained(prior: str, likelihood: str = "bernoulli"):
  """(model, params) of tiny_config's DenseVAE, initialised on random inputs."""
  config = tiny_config(prior)
  config.model.likelihood = component("likelihood", likelihood)
  model = create_model(config.model, IMAGE_SHAPE)
  x = jax.random.uniform(jax.random.PRNGKey(0), (16,) + IMAGE_SHAPE)
  return model, model.init(jax.random.PRNGKey(1), x, jax.random.PRNGKey(2))["params"]


def _digits(binary: bool, n: int):
  """n real images: the binarized test digits, or 8-bit training digits (0..255)."""
  dataset = data.load(tiny_config().data)
  return dataset.test[:n] if binary else dataset.train[:n]


def _random_images(binary: bool, n: int, seed: int = 0):
  return np.random.default_rng(seed).integers(0, 2 if binary else 256, (n,) + IMAGE_SHAPE,
                                              dtype=np.uint8)


@pytest.mark.parametrize("likelihood", LIKELIHOODS)
@pytest.mark.parametrize("prior", PRIORS)
def test_round_trip_is_exact_for_random_and_real_images(prior, likelihood):
  """13 images in batches of at most 4 (growing from 1, and a partial last one): decode(encode(x))
  is x bit for bit, random images first, then real digits."""
  model, params = _untrained(prior, likelihood)
  binary = likelihood == "bernoulli"
  images = np.concatenate([_random_images(binary, 6), _digits(binary, 7)])
  codec = compress.make_codec(model, params, IMAGE_SHAPE, batch_size=4, latent_bits=8)
  words, sizes = compress.encode(codec, images)
  assert sum(sizes) == 13 and max(sizes) == 4 and sizes[0] == 1
  restored = compress.decode(codec, words, sizes)
  assert restored.dtype == np.uint8
  np.testing.assert_array_equal(restored, images)


def test_the_default_latent_grid_round_trips_and_its_bins_have_equal_prior_mass():
  model, params = _untrained("standard")
  images = _digits(True, 5)
  codec = compress.make_codec(model, params, IMAGE_SHAPE, batch_size=4,
                              latent_bits=compress.DEFAULT_LATENT_BITS)
  np.testing.assert_array_equal(compress.decode(codec, *compress.encode(codec, images)), images)
  edges, _ = compress.standard_normal_grid(compress.DEFAULT_LATENT_BITS)
  masses = np.asarray(compress.bin_masses(jnp.asarray(edges, jnp.float32)))
  np.testing.assert_allclose(masses, 2.0**-compress.DEFAULT_LATENT_BITS, rtol=1e-3)


def test_a_mixture_grid_follows_each_dimensions_marginal():
  """Bins of equal mass under the mixture's marginal: a component far from N(0, 1) gets bins."""
  loc = np.array([[-6.0, 0.0], [6.0, 0.5]])
  log_scale = np.log(np.array([[0.5, 1.0], [0.5, 2.0]]))
  edges, centres = compress.mixture_marginal_grid(loc, log_scale, np.log([0.5, 0.5]), 6)
  assert edges.shape == (2, 65) and centres.shape == (2, 64)
  assert np.all(np.diff(edges, axis=1) > 0) and np.all((edges[:, :-1] < centres)
                                                        & (centres < edges[:, 1:]))
  assert np.sum(centres[0] > 3) == 32  # half the mass sits at +6


def test_mixture_conditionals_are_the_exact_discretized_mixture():
  """prod_i P(bin_i | bins_<i) equals the joint mass sum_k pi_k prod_i P_k(bin_i) of each bin."""
  rng = np.random.default_rng(0)
  loc, log_scale = rng.normal(size=(3, 2)), rng.normal(size=(3, 2)) * 0.3
  log_weights = np.log(np.array([0.2, 0.3, 0.5]))
  edges, _ = compress.mixture_marginal_grid(loc, log_scale, log_weights, 3)
  components = tuple(jnp.asarray(a, jnp.float32) for a in (loc, log_scale, log_weights))
  grid = jnp.asarray(edges, jnp.float32)
  bins = jnp.array([[b0, b1] for b0 in range(8) for b1 in range(8)], jnp.int32)
  first = compress.mixture_conditional_probs(components, grid, bins, 0)
  second = compress.mixture_conditional_probs(components, grid, bins, 1)
  chain = np.take_along_axis(np.asarray(first), np.asarray(bins[:, :1]), 1)[:, 0] * \
      np.take_along_axis(np.asarray(second), np.asarray(bins[:, 1:]), 1)[:, 0]
  per_component = [np.asarray(compress.gaussian_bin_probs(grid, jnp.asarray(loc[k], jnp.float32),
                                                          jnp.asarray(log_scale[k], jnp.float32)))
                   for k in range(3)]  # [D, n] each
  joint = sum(np.exp(log_weights[k]) * per_component[k][0][bins[:, 0]]
              * per_component[k][1][bins[:, 1]] for k in range(3))
  np.testing.assert_allclose(chain, joint, rtol=1e-4, atol=1e-7)
  assert abs(joint.sum() - 1) < 1e-5


def test_unsupported_models_are_refused_with_a_reason():
  config = tiny_config("standard")
  config.model.posterior = component("posterior", "realnvp", num_blocks=2)
  with pytest.raises(compress.CompressionError, match="flow posteriors"):
    compress.make_codec(create_model(config.model, IMAGE_SHAPE), {}, IMAGE_SHAPE, 4, 8)
  config = tiny_config("af")
  with pytest.raises(compress.CompressionError, match="AutoregressiveFlowPrior is not supported"):
    compress.make_codec(create_model(config.model, IMAGE_SHAPE), {}, IMAGE_SHAPE, 4, 8)


def _packed_file():
  model, params = _untrained("standard")
  codec = compress.make_codec(model, params, IMAGE_SHAPE, batch_size=4, latent_bits=8)
  words, sizes = compress.encode(codec, _digits(True, 6))
  return codec, compress.pack({"batch_runs": compress.run_lengths(sizes)}, words), sizes


def test_a_corrupted_or_truncated_file_gives_a_clear_error():
  codec, data_bytes, sizes = _packed_file()
  header, words = compress.unpack(data_bytes)
  assert compress.expand_run_lengths(header["batch_runs"]) == sizes
  with pytest.raises(compress.CompressionError, match="truncated"):
    compress.unpack(data_bytes[:-3])
  with pytest.raises(compress.CompressionError, match="truncated: it ends inside its header"):
    compress.unpack(data_bytes[:20])
  flipped = bytearray(data_bytes)
  flipped[-5] ^= 0x10
  with pytest.raises(compress.CompressionError, match="corrupt: its code"):
    compress.unpack(bytes(flipped))
  flipped = bytearray(data_bytes)
  flipped[12] ^= 0x01  # inside the JSON header
  with pytest.raises(compress.CompressionError, match="corrupt: its header"):
    compress.unpack(bytes(flipped))
  with pytest.raises(compress.CompressionError, match="not a vae_jax compressed file"):
    compress.unpack(b"\x93NUMPY" + data_bytes[6:])
  # Code that passes the checksums but is not what was encoded (a checksum forged along with it)
  # fails the last check: decoding must end with exactly the initial words.
  tampered = words.copy()
  tampered[len(tampered) // 2] ^= 1
  with pytest.raises(compress.CompressionError, match="initial words"):
    compress.decode(codec, tampered, sizes)


def test_decompression_refuses_another_model_code_or_device():
  model, params = _untrained("standard")
  config = tiny_config("standard")
  fingerprint = compress.model_fingerprint(config.model, params)
  leaves, treedef = jax.tree_util.tree_flatten(params)
  leaves[0] = leaves[0].at[(0,) * leaves[0].ndim].add(1e-6)
  changed = jax.tree_util.tree_unflatten(treedef, leaves)
  assert compress.model_fingerprint(config.model, changed) != fingerprint
  expected = {"model_fingerprint": fingerprint, "code_fingerprint": compress.code_fingerprint(),
              "device": compress.device_description()}
  compress.check_compatible(dict(expected), expected)
  for key, message in (("model_fingerprint", "another model"),
                       ("code_fingerprint", "another version of the code"),
                       ("device", "another kind of device")):
    with pytest.raises(compress.CompressionError, match=message):
      compress.check_compatible(dict(expected, **{key: "x"}), expected)


@pytest.fixture(scope="module")
def trained_workdir(tmp_path_factory):
  """tiny_config's DenseVAE with the standard prior, trained for 12 epochs on the digits."""
  workdir = str(tmp_path_factory.mktemp("compress_run"))
  config = tiny_config("standard")
  config.train.num_epochs = 12
  train_only(config, workdir)  # compression computes its own -ELBO
  return workdir


def test_code_length_agrees_with_the_negative_elbo_and_files_round_trip(trained_workdir, tmp_path,
                                                                      monkeypatch):
  """The net code length of the 300 test digits is within 3% of the model's -ELBO (16 samples per
  image). It is a one-sample estimate of the -ELBO of the discretized latents: the per-image
  spread of log p(x|z) + log p(z) - log q(z|x) (a few nats on ~35) averages to about 1% over 300
  images, and 2^12 bins per unit change it by far less, as the posterior is far wider than a bin.
  The initial words cost 4 latents x 24 bits (+1 word), a share of the file too."""
  output = str(tmp_path / "test.vaez")
  report = compress.compress_to_file(trained_workdir, "test", output, batch_size=32)
  assert report["num_images"] == 300
  assert abs(report["net_over_neg_elbo"] - 1) < 0.03, report
  assert report["initial_bits"] == 32 * 4
  assert report["bytes"] == os.path.getsize(output)
  with open(output + ".json", encoding="utf-8") as f:
    assert json.load(f)["neg_elbo_bits_per_dim"] == report["neg_elbo_bits_per_dim"]
  restored_path = str(tmp_path / "restored.npy")
  compress.decompress_to_file(trained_workdir, output, restored_path)
  test_images = np.asarray(compress.load_workdir(trained_workdir).test_images)
  np.testing.assert_array_equal(np.load(restored_path), test_images)
  # An (N, H, W) array comes back in its own shape; batches capped by the size of their latent
  # tables (3 images of 4 latents here) decode too.
  np.save(tmp_path / "images.npy", test_images[:9, ..., 0])
  monkeypatch.setattr(compress, "_MAX_TABLE_ENTRIES", 3 * 4 * 2**compress.DEFAULT_LATENT_BITS)
  small = compress.compress_to_file(trained_workdir, str(tmp_path / "images.npy"),
                                    str(tmp_path / "images.vaez"), batch_size=4)
  assert small["batch_size"] == 3
  compress.decompress_to_file(trained_workdir, str(tmp_path / "images.vaez"),
                              str(tmp_path / "images_restored.npy"))
  np.testing.assert_array_equal(np.load(tmp_path / "images_restored.npy"), test_images[:9, ..., 0])
  with pytest.raises(compress.CompressionError, match="exists; pass --overwrite"):
    compress.compress_to_file(trained_workdir, "test", output)
  with pytest.raises(compress.CompressionError, match="is the input"):
    compress.decompress_to_file(trained_workdir, output, output, overwrite=True)
  with pytest.raises(FileNotFoundError, match="not found"):
    compress.compress_to_file(trained_workdir, str(tmp_path / "missing.npy"),
                              str(tmp_path / "missing.vaez"))


def test_batches_are_capped_where_their_latent_tables_would_be_large():
  assert compress.coded_batch_size(64, 40, 12) == 64  # MNIST's DenseVAE: 40 latents
  assert compress.coded_batch_size(64, 2048, 12) == 4  # CIFAR-10's B.5 model: 8 x 8 x 32
  assert compress.coded_batch_size(64, 2**14, 12) == 1


def test_a_realnvp_prior_codes_at_its_negative_elbo_too(tmp_path):
  """Local bits-back through a trained 4-block RealNVP prior: within 3% of the -ELBO on the 300
  test digits (the same one-sample spread as above; a wrong log-determinant or linearization
  would cost nats per latent), and the file decodes to the test set."""
  workdir = str(tmp_path / "run")
  config = tiny_config("realnvp")
  config.train.num_epochs = 12
  train_only(config, workdir)  # compression computes its own -ELBO
  output = str(tmp_path / "test.vaez")
  report = compress.compress_to_file(workdir, "test", output, batch_size=32)
  assert abs(report["net_over_neg_elbo"] - 1) < 0.03, report
  restored = str(tmp_path / "restored.npy")
  compress.decompress_to_file(workdir, output, restored)
  np.testing.assert_array_equal(np.load(restored),
                                np.asarray(compress.load_workdir(workdir).test_images))


def _cli(*args):
  return subprocess.run([sys.executable, "-m", "vae_jax.compress", *args], cwd=REPO,
                        capture_output=True, text=True, timeout=300, check=False)


def _assert_one_line_error(result, message):
  """Exit status 2 and one `vae_jax: ...` line naming the problem, without a traceback (other
  lines on stderr are JAX's start-up logs)."""
  errors = [line for line in result.stderr.splitlines() if line.startswith("vae_jax: ")]
  assert result.returncode == 2 and len(errors) == 1 and message in errors[0], result.stderr
  assert "Traceback" not in result.stderr


def test_the_command_line_refuses_bad_inputs_in_one_line_and_writes_nothing(trained_workdir,
                                                                              tmp_path):
  np.save(tmp_path / "gray.npy", np.full((2, 8, 8), 7, np.uint8))  # not binary
  cases = [(["--input=" + str(tmp_path / "gray.npy")], "values up to 7")]
  corrupt = tmp_path / "corrupt.vaez"
  corrupt.write_bytes(b"VAEZ\x01\x00\x05\x00\x00\x00{}")
  cases.append((["--decompress", f"--input={corrupt}"], "truncated"))
  for args, message in cases:
    output = tmp_path / "out"
    result = _cli(f"--workdir={trained_workdir}", f"--output={output}", *args)
    assert result.returncode == 2, result.stderr
    _assert_one_line_error(result, message)
    assert not os.path.exists(output)
    assert not os.path.exists(str(output) + ".json")


def test_the_command_line_refuses_an_unsupported_model(tmp_path):
  config = tiny_config("standard")
  config.model.posterior = component("posterior", "realnvp", num_blocks=2)
  (tmp_path / "config.json").write_text(configuration.to_json(config))
  result = _cli(f"--workdir={tmp_path}", "--input=test", f"--output={tmp_path / 'out.vaez'}")
  _assert_one_line_error(result, "flow posteriors")
  assert not os.path.exists(tmp_path / "out.vaez")
