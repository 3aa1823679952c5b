"""launch/compression_table.py: the classic codecs' sizes and checks, and the markdown it renders."""
import copy
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import launch_module

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


compression = launch_module("compression_table.py")


def _binary(seed, n=6, h=28, w=28):
  return np.random.default_rng(seed).integers(0, 2, (n, h, w, 1), dtype=np.uint8)


def test_bits_per_dim_arithmetic():
  assert compression.bits_per_dim(98, (1, 28, 28, 1)) == 1.0  # 784 packed bits
  assert compression.bits_per_dim(3 * 32 * 32 * 3, (3, 32, 32, 3)) == 8.0


def test_stream_codecs_pack_random_bits_to_about_one_bit_per_dim():
  images = _binary(0, n=20)
  results = {entry["name"]: entry for entry in compression.stream_codecs(images, binary=True)}
  assert set(results) == {f"{c}, {w}" for c in compression.STREAMS
                          for w in ("uint8 array", "packed bits")}
  for name, entry in results.items():
    assert entry["bytes_per_image"] == entry["bytes"] / 20
    assert entry["bits_per_dim"] == pytest.approx(8 * entry["bytes"] / (20 * 784))
    # Fair coin flips do not compress below 1 bit per pixel, whatever the codec.
    assert entry["bits_per_dim"] > 0.99, name
  # Packed, gzip stays near 1 bit/dim (plus its headers); a byte per pixel costs it more.
  assert results["gzip -9, packed bits"]["bits_per_dim"] < 1.1
  assert (results["gzip -9, uint8 array"]["bits_per_dim"]
          > results["gzip -9, packed bits"]["bits_per_dim"])
  gray = compression.stream_codecs(images * 255, binary=False)
  assert [e["name"] for e in gray] == [f"{c}, uint8 array" for c in compression.STREAMS]


def test_png_of_a_constant_image_is_smaller_than_of_random_bits():
  constant = np.ones((3, 28, 28, 1), np.uint8)
  random = _binary(1, n=3)
  small = {e["name"]: e for e in compression.image_codecs(constant, binary=True)}
  large = {e["name"]: e for e in compression.image_codecs(random, binary=True)}
  assert small["PNG"]["bytes"] < large["PNG"]["bytes"]
  # A 1-bit PNG of 784 random pixels holds at least their 98 bytes.
  assert large["PNG"]["bytes_per_image"] > 98
  assert "mode '1'" in large["PNG"]["note"]
  if compression.webp_available():
    assert small["WebP lossless"]["bytes"] < large["WebP lossless"]["bytes"]


def test_image_codecs_are_lossless_on_gray_and_colour_images():
  rng = np.random.default_rng(2)
  gray = rng.integers(0, 256, (2, 28, 20, 1), dtype=np.uint8)
  colour = rng.integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
  for images in (gray, colour):
    results = compression.image_codecs(images, binary=False)  # raises if not restored
    # 8 random bits per sub-pixel do not compress.
    assert results[0]["name"] == "PNG" and results[0]["bits_per_dim"] > 8


def _fake_result(name="mnist-standard", net=0.1010, neg_elbo=0.1000):
  n, shape = 10, [28, 28, 1]
  dims = 784
  compress = {"bytes": 200, "bytes_per_image": 20.0, "bits_per_dim": 8 * 200 / (n * dims),
              "code_bits": 1536, "initial_bits": 64, "net_bits_per_dim": net,
              "net_bits_per_image": net * dims, "neg_elbo_bits_per_dim": neg_elbo,
              "elbo_samples": 16, "images_per_second": 40.0, "batch_size": 64,
              "latent_bits": 12}
  return {
      "model": name, "dataset": "mnist", "label": "A fake model", "workdir": "fake-20ep",
      "num_images": n, "image_shape": shape, "binary": True, "lossless": True, "seed": 0,
      "epochs": 20.0, "train_images_per_second": 1234.0,
      "is_nll": {"nll": 60.0, "num_samples": 1000, "num_points": n,
                 "bits_per_dim": 0.0921, "test_binarizations": 1, "same_images": True},
      "compress": compress, "decompress": dict(compress, images_per_second=50.0),
      "codecs": [{"name": "gzip -9, packed bits", "bytes": 500, "bytes_per_image": 50.0,
                  "bits_per_dim": 0.5102, "compress_images_per_second": 1e5,
                  "decompress_images_per_second": 2e5,
                  "note": "the whole packed bits as one stream"}],
      "environment": {"cpu": "Fake CPU", "cpu_count": 2, "python": "3.12",
                      "versions": {"jax": "0.12"}, "commit": "abc", "date": "2026-01-01"},
      "commands": {"train": "python -m vae_jax.main T", "compress": "python -m vae_jax.compress C",
                   "decompress": "python -m vae_jax.compress D"},
  }


def test_render_reports_the_numbers_and_the_target():
  met = _fake_result()
  text = compression.render([met])
  assert "| **ours: bits-back ANS file** (header and initial bits included) | 20.00 | 0.2041 |" \
      in text
  assert "| 40.0 | 50.0 |" in text
  assert ("IS-NLL (a stochastic upper bound on −log p(x), not a file; 1,000 samples) | 9.03 | "
          "0.0921 |") in text
  assert "| gzip -9, packed bits | 50.00 | 0.5102 | 100,000 | 200,000 |" in text
  assert "= **1.0100** (target ≤ 1.01: met)" in text
  assert "One-off initial bits: 64 (6.40 bits per image over 10 images), header 8 bytes" in text
  assert "## CIFAR-10" not in text  # neither measured nor given
  cifar = dict(_fake_result("cifar10-standard"), dataset="cifar10")
  with_cifar = compression.render([met, cifar], {"cifar10": {"codecs": [], "num_images": 1,
                                                             "image_shape": [32, 32, 3]}})
  assert with_cifar.count("## CIFAR-10, 8-bit colour") == 1  # its classic-only table is dropped
  assert "RealNVP priors over latent vectors only" in with_cifar
  assert "python -m vae_jax.compress C" in text
  assert "The file is 40.0% of the smallest classic codec's output (gzip -9, packed bits" in text
  assert "IS-NLL is over other test images" not in text
  missed = _fake_result(net=0.1020)
  missed["is_nll"]["same_images"] = False
  text = compression.render([missed])
  assert "= **1.0200** (target ≤ 1.01: not met)" in text
  assert "IS-NLL is over other test images** (10 points" in text


def test_read_results_orders_by_model_and_renders_from_the_files(tmp_path):
  other = _fake_result("mnist-rnvp_prior")
  first = _fake_result("mnist-standard")
  for result in (other, first):
    compression.write_json_atomically(str(tmp_path / f"{result['model']}.json"), result)
  results = compression.read_results(str(tmp_path))
  assert [r["model"] for r in results] == ["mnist-standard", "mnist-rnvp_prior"]
  assert compression.render(results) == compression.render([copy.deepcopy(first), other])


def test_a_launch_script_runs_with_launch_on_its_path():
  """`python launch/<script>.py` puts launch/ first on sys.path, so a file there named like a
  module that a library tries to import shadows it: launch/compression.py once broke the
  launchers that import JAX first, as JAX tries `from compression import zstd` (Python 3.14's
  stdlib) when imported."""
  result = subprocess.run([sys.executable, "launch/iaf_figure1.py", "--helpshort"], cwd=_ROOT,
                          capture_output=True, text=True, timeout=300, check=False)
  assert "--iaf_steps" in result.stdout and "Traceback" not in result.stderr, result.stderr[-2000:]
