"""Datasets through TensorFlow Datasets: read without TensorFlow, prepared with it.

Reading needs only `tensorflow-datasets` (a dependency): a dataset prepared in TFDS's ArrayRecord
format is read through `tfds.data_source`, which decodes with NumPy and PIL. Preparing a dataset
(downloading or taking the source files, decoding, writing the records) needs TensorFlow, the `tfds`
extra; vae_jax prepares in ArrayRecord, so every later read is TensorFlow-free. A dataset that was
prepared earlier in TFRecord format (what `tfds.load` writes by default) is read through tf.data,
which needs TensorFlow too.

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
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  builder = tfds.builder(TFDS_NAMES[name], data_dir=data_dir or None)
  if not builder.is_prepared():
    _require_tensorflow(f"preparing TFDS '{builder.name}' in {builder.data_dir}")
    builder.download_and_prepare(
        file_format="array_record",
        download_config=tfds.download.DownloadConfig(manual_dir=manual_dir or None))
  splits = ["train", "validation", "test"] if name == "static_mnist" else ["train", "test"]
  if tfds.core.FileFormat.ARRAY_RECORD in builder.info.available_file_formats():
    # __getitems__ is the data source's batched read (one call per split, not one per image).
    images = [np.stack([example["image"] for example in source.__getitems__(range(len(source)))])
              for source in builder.as_data_source(split=splits)]
  else:
    _require_tensorflow(f"reading TFDS '{builder.name}', prepared as TFRecord in "
                        f"{builder.data_dir} (a copy prepared by vae_jax in another data_dir "
                        "is ArrayRecord, which reads without it)")
    images = [split["image"] for split in
              tfds.as_numpy(builder.as_dataset(split=splits, batch_size=-1))]
  images = [np.asarray(split, np.uint8) for split in images]
  if name == "static_mnist":
    return tuple(images)
  train, test = images
  return train, None, test


def _require_tensorflow(purpose: str) -> None:
  try:
    # importlib_resources is used by TFDS 4.9 when it prepares a dataset, on every Python, but
    # declared only for Python < 3.9 (tensorflow/datasets#11212).
    import importlib_resources  # pylint: disable=g-import-not-at-top,unused-import
    import tensorflow  # pylint: disable=g-import-not-at-top,unused-import
  except ImportError as e:
    raise ImportError(
        f"{purpose} needs TensorFlow ({e}). Install it with: pip install 'vae_jax[tfds]' "
        "(or use local files: set --config.data.data_dir or VAE_JAX_DATA_DIR).") from e
