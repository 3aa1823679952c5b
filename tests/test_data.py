"""Tests of vae_jax.data loading: parsers on small files in the real formats, splits, binarization,
source selection, and (where available) the real offline data and TFDS."""
import gzip
import hashlib
import logging
import os
import pathlib
import pickle
import re
import struct
import subprocess
import sys

import ml_collections
import numpy as np
import pytest
import scipy.io

from vae_jax import data
from vae_jax.data import local_files
from vae_jax.data import sources
from vae_jax.data import tfds_source

# CI checks the repository out with shared/ beside it; VAE_JAX_DATA_DIR overrides.
SHARED_DATA = pathlib.Path(
    os.environ.get(sources.DATA_DIR_ENV)
    or pathlib.Path(__file__).resolve().parents[2] / "shared" / "data")


def make_config(**overrides):
  config = dict(name="digits", source="auto", data_dir="", tfds_data_dir="", tfds_manual_dir="",
                validation=False, split_seed=0, num_validation=0, test_binarizations=10,
                binarization_seed=0)
  config.update(overrides)
  return ml_collections.ConfigDict(config)


def escaped(path):
  """A regex matching the path literally (error messages must name the file)."""
  return re.escape(str(path))


def check_contract(dataset):
  for array in (dataset.train, dataset.validation, dataset.test):
    if array is not None:
      assert array.dtype == np.uint8 and array.ndim == 4 and array.flags.c_contiguous
  assert dataset.image_shape == dataset.train.shape[1:] == dataset.test.shape[1:]


def asymmetric_images(n, height, width, values=(0, 255)):
  """Distinct images with no symmetry (a random pattern per image) so flips/transposes show."""
  rng = np.random.default_rng(n)
  return rng.choice(np.array(values, np.uint8), size=(n, height, width))


# --- Writers of the real formats ----------------------------------------------------------------


def write_idx(path, array, magic=None, compress=True):
  header = struct.pack(f">I{array.ndim}I", magic or 0x0800 + array.ndim, *array.shape)
  payload = header + array.astype(np.uint8).tobytes()
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_bytes(gzip.compress(payload) if compress else payload)


def write_mnist_folder(folder, train, test, compress=True):
  suffix = ".gz" if compress else ""
  for prefix, images in (("train", train), ("t10k", test)):
    write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", images, compress=compress)
    write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", np.arange(len(images)) % 10,
              compress=compress)


def write_amat(path, x):
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text("".join(" ".join(str(v) for v in row) + "\n" for row in x))


def cifar_planes(n, seed):
  """[n, 3, 32, 32] random R, G, B planes."""
  return np.random.default_rng(seed).integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)


def write_cifar_bin(path, planes):
  labels = np.arange(len(planes), dtype=np.uint8)[:, None] % 10
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_bytes(np.concatenate([labels, planes.reshape(len(planes), -1)], axis=1).tobytes())


# --- Names and sources --------------------------------------------------------------------------


def test_unknown_name_lists_valid_names():
  with pytest.raises(ValueError, match="digits, mnist, fashion_mnist, static_mnist, omniglot, "
                     "cifar10"):
    data.load(make_config(name="mnits"))


def test_unknown_source_lists_valid_sources():
  with pytest.raises(ValueError, match="auto, local, tfds, embedded"):
    data.load(make_config(name="mnist", source="web"))


@pytest.mark.parametrize("name, source, message", [
    ("omniglot", "tfds", "105x105"),
    ("mnist", "embedded", "data_dir"),
    ("digits", "local", "source=embedded"),
    ("digits", "tfds", "source=embedded"),
])
def test_invalid_source_for_dataset_says_what_to_do(name, source, message):
  with pytest.raises(ValueError, match=message):
    data.load(make_config(name=name, source=source, data_dir="/nonexistent"))


def test_local_source_without_data_folder(monkeypatch):
  monkeypatch.delenv(sources.DATA_DIR_ENV, raising=False)
  with pytest.raises(ValueError, match=sources.DATA_DIR_ENV):
    data.load(make_config(name="mnist", source="local"))


def test_auto_omniglot_without_data_folder_asks_for_one(monkeypatch):
  monkeypatch.delenv(sources.DATA_DIR_ENV, raising=False)
  with pytest.raises(ValueError, match="'auto' chose 'tfds'.*data_dir"):
    data.load(make_config(name="omniglot"))


def test_auto_source_uses_env_data_dir_then_tfds(monkeypatch, tmp_path):
  train, test = asymmetric_images(3, 28, 28), asymmetric_images(2, 28, 28)
  write_mnist_folder(tmp_path / "mnist", train, test)
  monkeypatch.setenv(sources.DATA_DIR_ENV, str(tmp_path))
  np.testing.assert_array_equal(data.load(make_config(name="mnist")).train[..., 0], train)

  # With no data folder, 'auto' goes to TFDS (stubbed: this test is about the choice).
  monkeypatch.delenv(sources.DATA_DIR_ENV)
  calls = []
  def fake_tfds_read(name, data_dir, manual_dir):
    calls.append((name, data_dir, manual_dir))
    return train[..., None], None, test[..., None]
  monkeypatch.setattr(tfds_source, "read", fake_tfds_read)
  data.load(make_config(name="mnist", tfds_data_dir="/prepared", tfds_manual_dir="/manual"))
  assert calls == [("mnist", "/prepared", "/manual")]


# --- MNIST and Fashion-MNIST idx files ----------------------------------------------------------


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
@pytest.mark.parametrize("compress", [True, False])
def test_idx_files_round_trip(tmp_path, name, compress):
  train, test = asymmetric_images(5, 28, 28, values=range(256)), asymmetric_images(3, 28, 28)
  write_mnist_folder(tmp_path / name, train, test, compress=compress)
  dataset = data.load(make_config(name=name, source="local", data_dir=str(tmp_path),
                                  test_binarizations=4))
  check_contract(dataset)
  assert dataset.dynamic_binarization and dataset.binary and dataset.validation is None
  np.testing.assert_array_equal(dataset.train[..., 0], train)  # Intensities, as stored.
  # Test pixels are 0 or 255, so each of the 4 binarized copies is exactly test / 255.
  np.testing.assert_array_equal(dataset.test[..., 0], np.tile(test // 255, (4, 1, 1)))


def test_idx_bad_magic(tmp_path):
  write_mnist_folder(tmp_path / "mnist", asymmetric_images(2, 28, 28), asymmetric_images(2, 28, 28))
  bad = tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz"
  write_idx(bad, asymmetric_images(2, 28, 28), magic=2049)
  with pytest.raises(ValueError, match=f"{escaped(bad)}.*magic number is 2049, expected 2051"):
    data.load(make_config(name="mnist", source="local", data_dir=str(tmp_path)))


def test_idx_truncated(tmp_path):
  write_mnist_folder(tmp_path / "mnist", asymmetric_images(2, 28, 28), asymmetric_images(2, 28, 28))
  path = tmp_path / "mnist" / "train-images-idx3-ubyte"
  path.write_bytes(gzip.decompress((tmp_path / "mnist" / "train-images-idx3-ubyte.gz")
                                   .read_bytes())[:-10])
  (tmp_path / "mnist" / "train-images-idx3-ubyte.gz").unlink()  # The plain file is used instead.
  with pytest.raises(ValueError, match=f"{escaped(path)}.*shape \\(2, 28, 28\\)"):
    data.load(make_config(name="mnist", source="local", data_dir=str(tmp_path)))


def test_idx_corrupt_gzip(tmp_path):
  write_mnist_folder(tmp_path / "mnist", asymmetric_images(2, 28, 28), asymmetric_images(2, 28, 28))
  path = tmp_path / "mnist" / "train-images-idx3-ubyte.gz"
  path.write_bytes(path.read_bytes()[:40])
  with pytest.raises(ValueError, match=f"{escaped(path)}.*gzip"):
    data.load(make_config(name="mnist", source="local", data_dir=str(tmp_path)))


def test_idx_label_count_mismatch(tmp_path):
  write_mnist_folder(tmp_path / "mnist", asymmetric_images(2, 28, 28), asymmetric_images(2, 28, 28))
  labels = tmp_path / "mnist" / "train-labels-idx1-ubyte.gz"
  write_idx(labels, np.zeros(3))
  with pytest.raises(ValueError, match=f"2 images but {escaped(labels)} holds 3 labels"):
    data.load(make_config(name="mnist", source="local", data_dir=str(tmp_path)))


# --- Missing files ------------------------------------------------------------------------------


@pytest.mark.parametrize("name, expected", [
    ("mnist", "mnist/train-images-idx3-ubyte.gz"),
    ("fashion_mnist", "fashion_mnist/train-images-idx3-ubyte.gz"),
    ("static_mnist", "binarized_mnist/binarized_mnist_train.mat"),
    ("omniglot", "omniglot/chardata.mat"),
    ("cifar10", "cifar10/data_batch_1.bin"),
])
def test_missing_file_names_path_and_how_to_get_it(tmp_path, name, expected):
  with pytest.raises(FileNotFoundError, match="Download") as error:
    data.load(make_config(name=name, source="local", data_dir=str(tmp_path)))
  assert str(tmp_path / expected) in str(error.value)


# --- Static binarized MNIST ---------------------------------------------------------------------


def static_mnist_splits():
  return [asymmetric_images(n, 28, 28, values=(0, 1)) for n in (4, 2, 3)]


@pytest.mark.parametrize("file_format", ["mat", "amat"])
def test_static_mnist_round_trip(tmp_path, file_format):
  folder = tmp_path / "binarized_mnist"
  folder.mkdir()
  splits = static_mnist_splits()
  for split, images in zip(("train", "valid", "test"), splits):
    rows = images.reshape(len(images), 784)
    if file_format == "mat":
      scipy.io.savemat(folder / f"binarized_mnist_{split}.mat", {"X": rows})
    else:
      write_amat(folder / f"binarized_mnist_{split}.amat", rows)

  config = make_config(name="static_mnist", source="local", data_dir=str(tmp_path))
  dataset = data.load(config)
  check_contract(dataset)
  assert not dataset.dynamic_binarization and dataset.binary
  # Without validation, train is the given 50k-style train split only (valid is not merged in).
  assert dataset.validation is None
  np.testing.assert_array_equal(dataset.train[..., 0], splits[0])
  np.testing.assert_array_equal(dataset.test[..., 0], splits[2])  # As given: not re-binarized.

  config.validation = True
  dataset = data.load(config)
  np.testing.assert_array_equal(dataset.train[..., 0], splits[0])
  np.testing.assert_array_equal(dataset.validation[..., 0], splits[1])


@pytest.mark.parametrize("contents, message", [
    ({"Y": np.zeros((2, 784))}, 'no array "X"'),
    ({"X": np.zeros((2, 783))}, "shape \\(2, 783\\)"),
    ({"X": np.full((2, 784), 2)}, "values must be 0 or 1"),
])
def test_static_mnist_malformed_mat(tmp_path, contents, message):
  folder = tmp_path / "binarized_mnist"
  folder.mkdir()
  path = folder / "binarized_mnist_train.mat"
  scipy.io.savemat(path, contents)
  with pytest.raises(ValueError, match=f"{escaped(path)}.*{message}"):
    data.load(make_config(name="static_mnist", source="local", data_dir=str(tmp_path)))


def test_static_mnist_malformed_amat(tmp_path):
  path = tmp_path / "binarized_mnist" / "binarized_mnist_train.amat"
  write_amat(path, np.zeros((2, 783), np.uint8))
  with pytest.raises(ValueError, match=f"{escaped(path)}: line 1 has 1565 characters"):
    data.load(make_config(name="static_mnist", source="local", data_dir=str(tmp_path)))


def test_not_a_mat_file(tmp_path):
  path = tmp_path / "omniglot" / "chardata.mat"
  path.parent.mkdir()
  path.write_bytes(b"<html>404 Not Found</html>" * 10)
  with pytest.raises(ValueError, match=f"{escaped(path)}: not a readable MATLAB file"):
    data.load(make_config(name="omniglot", source="local", data_dir=str(tmp_path)))


# --- Omniglot -----------------------------------------------------------------------------------


def letter_l():
  """An upright 'L': a vertical bar on the left and a foot on the bottom, nothing symmetric."""
  image = np.zeros((28, 28))
  image[4:24, 6] = 1.0
  image[23, 6:18] = 1.0
  image[4, 6] = 100 / 255  # A marked top end.
  return image


def vampprior_upright(columns):
  """Upright images exactly as the VampPrior code (utils/load_data.py) makes them from chardata."""
  rows = columns.T.reshape((-1, 28, 28)).reshape((-1, 28 * 28), order="F")
  return rows.reshape(-1, 28, 28)


def write_chardata(path, train_columns, test_columns):
  path.parent.mkdir(parents=True, exist_ok=True)
  scipy.io.savemat(path, {"data": train_columns, "testdata": test_columns,
                          "target": np.zeros((50, train_columns.shape[1]))})


def test_omniglot_orientation_and_intensities(tmp_path):
  rng = np.random.default_rng(0)
  # MATLAB stores a 28x28 image column-major: column[r + 28 c] = image[r, c].
  train_columns = np.stack([letter_l().ravel(order="F"),
                            rng.integers(0, 256, 784) / 255], axis=1)
  test_columns = rng.integers(0, 256, (784, 3)) / 255
  write_chardata(tmp_path / "omniglot" / "chardata.mat", train_columns, test_columns)

  dataset = data.load(make_config(name="omniglot", source="local", data_dir=str(tmp_path),
                                  test_binarizations=2))
  check_contract(dataset)
  assert dataset.dynamic_binarization and dataset.binary
  train = dataset.train[..., 0]
  np.testing.assert_array_equal(train[0], np.round(letter_l() * 255))
  assert train[0, 4, 6] == 100 and train[0, 23, 17] == 255 and train[0, 6, 23] == 0
  np.testing.assert_array_equal(train, np.round(vampprior_upright(train_columns) * 255))
  assert dataset.test.shape == (6, 28, 28, 1)


@pytest.mark.parametrize("contents, message", [
    ({"data": np.zeros((784, 2))}, "no array 'testdata'"),
    ({"data": np.zeros((2, 784)), "testdata": np.zeros((784, 2))}, "'data' has shape \\(2, 784\\)"),
    ({"data": np.full((784, 2), 255.0), "testdata": np.zeros((784, 2))}, "in \\[0, 1\\]"),
])
def test_omniglot_malformed(tmp_path, contents, message):
  path = tmp_path / "omniglot" / "chardata.mat"
  path.parent.mkdir()
  scipy.io.savemat(path, contents)
  with pytest.raises(ValueError, match=f"{escaped(path)}.*{message}"):
    data.load(make_config(name="omniglot", source="local", data_dir=str(tmp_path)))


# --- CIFAR-10 -----------------------------------------------------------------------------------


def expected_cifar(planes):
  # Pixel (y, x) of channel c is byte y * 32 + x of plane c.
  return np.stack([planes[:, c] for c in range(3)], axis=-1)


@pytest.mark.parametrize("test_file", ["test_batch.bin", "test_batch_first1000.bin"])
def test_cifar10_binary_round_trip(tmp_path, caplog, test_file):
  folder = tmp_path / "cifar10"
  train = [cifar_planes(2, seed) for seed in range(5)]
  for i, planes in enumerate(train, start=1):
    write_cifar_bin(folder / f"data_batch_{i}.bin", planes)
  test = cifar_planes(3, seed=9)
  write_cifar_bin(folder / test_file, test)

  with caplog.at_level(logging.WARNING):
    dataset = data.load(make_config(name="cifar10", source="local", data_dir=str(tmp_path)))
  check_contract(dataset)
  assert not dataset.dynamic_binarization and not dataset.binary
  np.testing.assert_array_equal(dataset.train, expected_cifar(np.concatenate(train)))
  np.testing.assert_array_equal(dataset.test, expected_cifar(test))  # Never binarized.
  subset_warned = "only the first 1,000" in caplog.text
  assert subset_warned == (test_file == "test_batch_first1000.bin")


def test_cifar10_python_round_trip(tmp_path):
  folder = tmp_path / "cifar10" / "cifar-10-batches-py"
  folder.mkdir(parents=True)
  batches = {f"data_batch_{i}": cifar_planes(2, seed=i) for i in range(1, 6)}
  batches["test_batch"] = cifar_planes(3, seed=9)
  for file_name, planes in batches.items():
    with open(folder / file_name, "wb") as f:
      pickle.dump({b"data": planes.reshape(len(planes), 3072), b"labels": [0] * len(planes)}, f)

  dataset = data.load(make_config(name="cifar10", source="local", data_dir=str(tmp_path)))
  check_contract(dataset)
  train = np.concatenate([batches[f"data_batch_{i}"] for i in range(1, 6)])
  np.testing.assert_array_equal(dataset.train, expected_cifar(train))
  np.testing.assert_array_equal(dataset.test, expected_cifar(batches["test_batch"]))


def test_cifar10_malformed_bin(tmp_path):
  folder = tmp_path / "cifar10"
  for i in range(1, 6):
    write_cifar_bin(folder / f"data_batch_{i}.bin", cifar_planes(2, seed=i))
  truncated = folder / "data_batch_3.bin"
  truncated.write_bytes(truncated.read_bytes()[:-1])
  config = make_config(name="cifar10", source="local", data_dir=str(tmp_path))
  with pytest.raises(ValueError, match=f"{escaped(truncated)}: 6145 bytes"):
    data.load(config)

  truncated.write_bytes(bytes([42]) + bytes(3072))  # E.g. a CIFAR-100 file: labels up to 99.
  with pytest.raises(ValueError, match=f"{escaped(truncated)}: label bytes above 9"):
    data.load(config)


def test_cifar10_malformed_pickle(tmp_path):
  folder = tmp_path / "cifar10" / "cifar-10-batches-py"
  folder.mkdir(parents=True)
  with open(folder / "data_batch_1", "wb") as f:
    pickle.dump({b"images": np.zeros((2, 3072), np.uint8)}, f)
  with pytest.raises(ValueError, match=f'{escaped(folder / "data_batch_1")}.*b"data"'):
    data.load(make_config(name="cifar10", source="local", data_dir=str(tmp_path)))


# --- Splits and binarization --------------------------------------------------------------------


def test_random_split_disjoint_sized_and_reproducible():
  images = np.arange(100, dtype=np.uint8).reshape(100, 1, 1, 1)  # Each image is its own index.
  kept, held_out = sources.random_split(images, 30, seed=3)
  assert kept.shape == (70, 1, 1, 1) and held_out.shape == (30, 1, 1, 1)
  assert not set(kept.ravel()) & set(held_out.ravel())
  assert set(kept.ravel()) | set(held_out.ravel()) == set(range(100))
  again_kept, again_held_out = sources.random_split(images, 30, seed=3)
  np.testing.assert_array_equal(again_kept, kept)
  np.testing.assert_array_equal(again_held_out, held_out)
  assert set(sources.random_split(images, 30, seed=4)[1].ravel()) != set(held_out.ravel())


@pytest.mark.parametrize("num_held_out", [0, 100, 101])
def test_random_split_rejects_impossible_sizes(num_held_out):
  with pytest.raises(ValueError, match=f"Cannot hold out {num_held_out} of 100"):
    sources.random_split(np.zeros((100, 1, 1, 1), np.uint8), num_held_out, seed=0)


def test_validation_split_in_load(tmp_path):
  # Tiny files cannot hold the paper's 10,000 validation images; the error says so.
  write_mnist_folder(tmp_path / "mnist", asymmetric_images(5, 28, 28), asymmetric_images(2, 28, 28))
  with pytest.raises(ValueError, match="Cannot hold out 10000 of 5 images"):
    data.load(make_config(name="mnist", source="local", data_dir=str(tmp_path), validation=True))


def test_binarize_statistics_and_determinism():
  intensities = np.arange(0, 256, 17, dtype=np.uint8).reshape(1, 4, 4, 1)  # 0, 17, ..., 255.
  binarized = sources.binarize(intensities, 2000, seed=1)
  assert binarized.shape == (2000, 4, 4, 1) and binarized.dtype == np.uint8
  assert set(np.unique(binarized)) <= {0, 1}
  # Each pixel's mean over 2,000 draws is within ~4.5 standard deviations of x / 255.
  np.testing.assert_allclose(binarized.mean(axis=0), intensities[0] / 255, atol=0.05)
  assert binarized[:, 0, 0].max() == 0 and binarized[:, 3, 3].min() == 1  # 0 -> 0, 255 -> 1.
  np.testing.assert_array_equal(sources.binarize(intensities, 2000, seed=1), binarized)
  assert not np.array_equal(sources.binarize(intensities, 2000, seed=2), binarized)


def test_binarize_copies_are_concatenated_in_order():
  images = asymmetric_images(3, 5, 5, values=range(256))[..., None]
  copies = sources.binarize(images, 3, seed=0)
  assert copies.shape == (9, 5, 5, 1)
  assert not np.array_equal(copies[:3], copies[3:6])  # Independent draws of the same images.
  with pytest.raises(ValueError, match="at least 1"):
    sources.binarize(images, 0, seed=0)


# --- Embedded digits ----------------------------------------------------------------------------


def test_digits():
  dataset = data.load(make_config(test_binarizations=1))
  check_contract(dataset)
  assert dataset.train.shape == (1497, 8, 8, 1) and dataset.test.shape == (300, 8, 8, 1)
  assert dataset.validation is None and dataset.dynamic_binarization and dataset.binary
  assert dataset.train.max() == 255 and set(np.unique(dataset.test)) == {0, 1}

  with_validation = data.load(make_config(validation=True, test_binarizations=1))
  assert with_validation.train.shape == (1197, 8, 8, 1)
  assert with_validation.validation.shape == (300, 8, 8, 1)
  # The train/test split depends only on split_seed: the same test set either way.
  np.testing.assert_array_equal(with_validation.test, dataset.test)
  other_split = data.load(make_config(split_seed=1, test_binarizations=1))
  assert not np.array_equal(other_split.train, dataset.train)


# --- The real offline data ----------------------------------------------------------------------


def real_data_config(name, folder=None, **overrides):
  """A config for the offline copy in SHARED_DATA / folder; skips the test when it is absent."""
  if not (SHARED_DATA / (folder or name)).is_dir():
    pytest.skip(f"no offline copy at {SHARED_DATA / (folder or name)} "
                f"(set {sources.DATA_DIR_ENV} to the data folder)")
  return make_config(**{"name": name, "source": "local", "data_dir": str(SHARED_DATA), **overrides})


def test_real_mnist():
  dataset = data.load(real_data_config("mnist", test_binarizations=1))
  check_contract(dataset)
  assert dataset.train.shape == (60000, 28, 28, 1) and dataset.test.shape == (10000, 28, 28, 1)
  assert abs(dataset.train.mean() / 255 - 0.1307) < 1e-3  # The well-known MNIST pixel mean.
  with_validation = data.load(real_data_config("mnist", validation=True, test_binarizations=1))
  assert with_validation.train.shape[0] == 50000 and with_validation.validation.shape[0] == 10000


def test_real_static_mnist():
  dataset = data.load(real_data_config("static_mnist", "binarized_mnist", validation=True))
  check_contract(dataset)
  assert [len(x) for x in (dataset.train, dataset.validation, dataset.test)] == [50000, 10000,
                                                                                 10000]
  for split in (dataset.train, dataset.validation, dataset.test):
    assert set(np.unique(split)) == {0, 1}


def test_real_cifar10():
  dataset = data.load(real_data_config("cifar10"))
  check_contract(dataset)
  assert dataset.train.shape == (50000, 32, 32, 3)
  assert len(dataset.test) in (1000, 10000)
  # Known first pixels of the red channel (data_batch_1[0] and test_batch[0]).
  np.testing.assert_array_equal(dataset.train[0, 0, :10, 0],
                                [59, 43, 50, 68, 98, 119, 139, 145, 149, 149])
  np.testing.assert_array_equal(dataset.test[0, 0, :5, 0], [158, 159, 165, 166, 160])


def test_real_omniglot():
  dataset = data.load(real_data_config("omniglot", test_binarizations=1))
  check_contract(dataset)
  assert dataset.train.shape == (24345, 28, 28, 1) and dataset.test.shape == (8070, 28, 28, 1)


# --- TFDS ---------------------------------------------------------------------------------------


# Runs Python with TensorFlow hidden, as on a machine where it is not installed: TFDS asks
# importlib whether it exists, so the path finder answers 'no' (sys.modules['tensorflow'] = None
# is not enough: TFDS takes a key there for an imported TensorFlow).
_WITHOUT_TENSORFLOW = """
import importlib.machinery, sys

class _PathFinderWithoutTensorFlow(importlib.machinery.PathFinder):
  @classmethod
  def find_spec(cls, name, path=None, target=None):
    if name.partition('.')[0] == 'tensorflow':
      return None
    return super().find_spec(name, path, target)

sys.meta_path[:] = [_PathFinderWithoutTensorFlow if f is importlib.machinery.PathFinder else f
                    for f in sys.meta_path]
"""


def run_without_tensorflow(code: str) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, "-c", _WITHOUT_TENSORFLOW + code], capture_output=True,
                        text=True, timeout=300, check=False)


def test_tfds_mnist_prepared_offline_equals_local_files_and_reads_without_tensorflow(tmp_path):
  """Prepared from the official files with no network (TensorFlow needed), then read back: the
  same images as the local parser's, and the same array again from a process that cannot import
  TensorFlow."""
  pytest.importorskip("tensorflow", reason="TensorFlow is optional (pip install 'vae_jax[tfds]')")
  config = real_data_config("mnist", source="tfds", tfds_data_dir=str(tmp_path),
                            tfds_manual_dir=str(SHARED_DATA / "mnist"), test_binarizations=1)
  dataset = data.load(config)
  check_contract(dataset)
  assert dataset.train.shape == (60000, 28, 28, 1) and dataset.test.shape == (10000, 28, 28, 1)
  # vae_jax prepares in ArrayRecord, the format that reads without TensorFlow.
  assert list(tmp_path.glob("mnist/*/mnist-train.array_record-*"))

  # The raw splits (no binarization); the prepared copy in tmp_path is reused.
  tfds_train, _, tfds_test = tfds_source.read("mnist", str(tmp_path), "")
  local_train, _, local_test = local_files.read("mnist", str(SHARED_DATA))
  # TFDS stores examples in its own fixed order, so compare the images as multisets.
  as_sorted_bytes = lambda images: sorted(image.tobytes() for image in images)
  assert as_sorted_bytes(tfds_train) == as_sorted_bytes(local_train)
  assert as_sorted_bytes(tfds_test) == as_sorted_bytes(local_test)

  result = run_without_tensorflow(f"""
import hashlib
from vae_jax.data import tfds_source
train, _, test = tfds_source.read('mnist', {str(tmp_path)!r}, '')
assert 'tensorflow' not in sys.modules
print(hashlib.sha256(train.tobytes() + test.tobytes()).hexdigest())
""")
  assert result.returncode == 0, result.stderr
  assert result.stdout.split()[-1] == hashlib.sha256(
      tfds_train.tobytes() + tfds_test.tobytes()).hexdigest()


def test_tfds_reads_a_tfrecord_preparation_through_tensorflow(tmp_path):
  """A copy that tfds.load prepared earlier (TFRecord, its default) is read, not prepared again."""
  tfds = pytest.importorskip("tensorflow_datasets")
  pytest.importorskip("tensorflow", reason="TensorFlow is optional (pip install 'vae_jax[tfds]')")
  real_data_config("mnist")  # skips without the offline files
  tfds.builder("mnist", data_dir=str(tmp_path)).download_and_prepare(
      file_format="tfrecord",
      download_config=tfds.download.DownloadConfig(manual_dir=str(SHARED_DATA / "mnist"),
                                                   try_download_gcs=False))
  train, _, test = tfds_source.read("mnist", str(tmp_path), "")
  _, _, local_test = local_files.read("mnist", str(SHARED_DATA))
  assert train.shape == (60000, 28, 28, 1)
  assert sorted(image.tobytes() for image in test) == sorted(image.tobytes() for image in local_test)
  assert not list(tmp_path.glob("mnist/*/*.array_record-*"))


def test_tfds_preparing_without_tensorflow_names_the_extra(tmp_path):
  result = run_without_tensorflow(f"""
from vae_jax.data import tfds_source
try:
  tfds_source.read('mnist', {str(tmp_path)!r}, '')
except ImportError as e:
  print(e)
""")
  assert result.returncode == 0, result.stderr
  assert "preparing TFDS 'mnist'" in result.stdout
  assert "pip install 'vae_jax[tfds]'" in result.stdout
