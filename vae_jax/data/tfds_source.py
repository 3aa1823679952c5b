"""Datasets through TensorFlow Datasets (optional: needs the `tfds` extra, i.e. TensorFlow).

Offline use: TFDS's download manager takes a file from `manual_dir` instead of downloading it when
the dataset registers a checksum entry whose file name exists there (then it still verifies the
file's size and sha256). MNIST, Fashion-MNIST, binarized MNIST and CIFAR-10 register the official
file names, so a folder holding the four official MNIST (or Fashion-MNIST) .gz files, the three
binarized_mnist_*.amat files or cifar-10-binary.tar.gz works as `manual_dir` with no network.

TFDS stores examples in its own order (shuffled by a hash of each example's key when the dataset is
prepared): a fixed permutation of the files' order, so a seeded validation split picks different
images than with local files.
"""
import numpy as np

# Our names -> TFDS names. TFDS 'omniglot' is the 105x105 version, not Burda et al.'s 28x28 one.
TFDS_NAMES = {
    "mnist": "mnist",
    "fashion_mnist": "fashion_mnist",
    "static_mnist": "binarized_mnist",
    "cifar10": "cifar10",
}


def read(name: str, data_dir: str, manual_dir: str):
  """Returns (train, validation or None, test) uint8 NHWC arrays of dataset `name` from TFDS.

  Args:
    name: one of TFDS_NAMES.
    data_dir: where TFDS keeps prepared datasets; '' for TFDS's default (~/tensorflow_datasets).
    manual_dir: folder of already-downloaded source files; '' for none (download them).
  """
  try:
    # TensorFlow decodes and prepares the data. importlib_resources is used by TFDS 4.9 on every
    # Python but declared only for Python < 3.9 (tensorflow/datasets#11212).
    import importlib_resources  # pylint: disable=g-import-not-at-top,unused-import
    import tensorflow  # pylint: disable=g-import-not-at-top,unused-import
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError(
        f"source='tfds' needs TensorFlow and TFDS's dependencies ({e}). Install them with: "
        "pip install 'vae_jax[tfds]' (or use local files: set --config.data.data_dir or "
        "VAE_JAX_DATA_DIR).") from e
  tfds_name = TFDS_NAMES[name]
  splits = ["train", "validation", "test"] if name == "static_mnist" else ["train", "test"]
  download_config = tfds.download.DownloadConfig(manual_dir=manual_dir or None)
  arrays = tfds.as_numpy(tfds.load(
      tfds_name, split=splits, batch_size=-1, data_dir=data_dir or None,
      download_and_prepare_kwargs={"download_config": download_config}))
  images = [np.asarray(split["image"], np.uint8) for split in arrays]
  if name == "static_mnist":
    return tuple(images)
  train, test = images
  return train, None, test
