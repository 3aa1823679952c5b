"""Loads a dataset as uint8 image arrays, from local files, TFDS or the embedded digits.

Splits and binarization follow Xu et al. 2020, "Shallow VAEs with RealNVP Prior Can Perform as Well
as Deep Hierarchical VAEs", Appendix B.1 (../shared/papers/xu2020_shallow_vae_realnvp_prior.txt):
- MNIST, Fashion-MNIST: 60,000 train / 10,000 test; with validation, a random 50,000 / 10,000
  split of train. Dynamic binarization: train/validation are re-binarized every batch; the test set
  is binarized once, 10 times over, and the copies are all evaluated.
- Static MNIST (Larochelle & Murray 2011): the given 50,000 / 10,000 / 10,000 split, used as is.
- Omniglot (Burda et al. 2016, 28x28): 24,345 train / 8,070 test; validation 4,000 of train.
  Dynamic binarization as MNIST.
- CIFAR-10 (not in B.1; never binarized): 50,000 train / 10,000 test; validation 5,000 of train.

The VampPrior paper's sets (Tomczak & Welling 2018, Supplement 8.4.1):
- Caltech-101 Silhouettes: 4,100 / 2,264 / 2,307, fixed binary images; Marlin's split1 when its
  file is there, else a seeded random split of the 8,671 images (a stated deviation).
- Frey Faces: 28 x 20 8-bit faces, a seeded random split 1,565 / 200 / 200.
- Histopathology: 28 x 28 8-bit gray patches, the given 6,800 / 2,000 / 2,000.
The paper holds 1,345 Omniglot training images out for validation
(`config.data.num_validation`).
"""
import dataclasses
import os

import numpy as np
import sklearn.datasets

from vae_jax.data import local_files
from vae_jax.data import tfds_source

DATA_DIR_ENV = "VAE_JAX_DATA_DIR"


@dataclasses.dataclass(frozen=True)
class Dataset:
  """A dataset's splits as uint8 [N, H, W, C] C-contiguous arrays.

  Attributes:
    name: the dataset's name in the config.
    train: training images.
    validation: validation images, or None when the config asks for no validation split.
    test: test images; for dynamically binarized sets already binarized to {0, 1} (and
      `test_binarizations` times as many as the source's test images).
    dynamic_binarization: True when train/validation hold intensities 0..255 that are drawn as
      Bernoulli(x / 255) per batch; False when the arrays hold the final values.
    binary: True when the model sees {0, 1} data (all sets but CIFAR-10).
  """
  name: str
  train: np.ndarray
  validation: np.ndarray | None
  test: np.ndarray
  dynamic_binarization: bool
  binary: bool

  @property
  def image_shape(self) -> tuple[int, int, int]:
    return self.train.shape[1:]

  @property
  def encoding(self) -> str:
    """How `batching.model_input` turns the stored uint8 arrays into model input."""
    if self.dynamic_binarization:
      return "dynamic"
    return "binary" if self.binary else "8bit"

  @property
  def test_encoding(self) -> str:
    """The encoding of the test images: final values, binarized beforehand (B.1), so every model
    sees the same test set."""
    return "binary" if self.binary else "8bit"


@dataclasses.dataclass(frozen=True)
class _Spec:
  sources: tuple[str, ...]  # The sources that have this dataset, first one preferred.
  dynamic_binarization: bool
  binary: bool
  num_validation: int | None  # Held out of train when validation is asked; None: given split.
  split_sizes: tuple[int, int, int] | None = None  # (train, validation, test) of an unsplit set


# Per dataset: (sources, dynamic_binarization, binary, num_validation).
_SPECS = {
    "digits": _Spec(("embedded",), True, True, 300),
    "mnist": _Spec(("local", "tfds"), True, True, 10_000),
    "fashion_mnist": _Spec(("local", "tfds"), True, True, 10_000),
    "static_mnist": _Spec(("local", "tfds"), False, True, None),
    "omniglot": _Spec(("local",), True, True, 4_000),
    "cifar10": _Spec(("local", "tfds"), False, False, 5_000),
    "caltech101_silhouettes": _Spec(("local",), False, True, None, (4_100, 2_264, 2_307)),
    "freyfaces": _Spec(("local",), False, False, None, (1_565, 200, 200)),
    "histopathology": _Spec(("local",), False, False, None),
}
_SOURCES = ("auto", "local", "tfds", "embedded")
_HOW_TO_USE = {
    "local": f"set --config.data.data_dir (or the {DATA_DIR_ENV} environment variable) to a "
             "folder laid out as described in vae_jax/data/local_files.py",
    "tfds": "set --config.data.source=tfds (needs pip install 'vae_jax[tfds]')",
    "embedded": "set --config.data.source=embedded",
}
# Digits: sklearn's 1,797 8x8 images, 300 held out as the test set.
_DIGITS_NUM_TEST = 300


def load(data_config) -> Dataset:
  """Loads the dataset `data_config.name` as described in the module docstring.

  Args:
    data_config: has the fields name, source, data_dir, tfds_data_dir, tfds_manual_dir,
      validation, split_seed, test_binarizations, binarization_seed.

  Returns:
    The Dataset, all arrays uint8 NHWC and C-contiguous.
  """
  name = data_config.name
  if name not in _SPECS:
    raise ValueError(f'Unknown dataset {name!r}; valid names: {", ".join(_SPECS)}.')
  spec = _SPECS[name]
  source, data_dir = _resolve_source(data_config, spec)

  if source == "embedded":
    train, given_validation, test = _read_digits(data_config.split_seed)
  elif source == "local":
    train, given_validation, test = local_files.read(name, data_dir)
  else:
    train, given_validation, test = tfds_source.read(
        name, data_config.tfds_data_dir, data_config.tfds_manual_dir)

  if test is None:
    train, given_validation, test = seeded_split(train, spec.split_sizes, data_config.split_seed)
  validation = None
  if data_config.validation:
    num_validation = data_config.num_validation or spec.num_validation
    if spec.num_validation is None:
      validation = given_validation
    else:
      train, validation = random_split(train, num_validation, data_config.split_seed)
  if spec.dynamic_binarization:
    test = binarize(test, data_config.test_binarizations, data_config.binarization_seed)

  contiguous = lambda x: None if x is None else np.ascontiguousarray(x, np.uint8)
  return Dataset(
      name=name,
      train=contiguous(train),
      validation=contiguous(validation),
      test=contiguous(test),
      dynamic_binarization=spec.dynamic_binarization,
      binary=spec.binary,
  )


def _resolve_source(data_config, spec: _Spec) -> tuple[str, str]:
  """The source to load from, and the local data folder ('' when there is none)."""
  name, source = data_config.name, data_config.source
  if source not in _SOURCES:
    raise ValueError(f'Unknown data source {source!r}; valid sources: {", ".join(_SOURCES)}.')
  data_dir = data_config.data_dir or os.environ.get(DATA_DIR_ENV, "")
  if source == "auto":
    if "embedded" in spec.sources:
      source = "embedded"
    else:
      source = "local" if data_dir else "tfds"
  if source not in spec.sources:
    how = " or ".join(_HOW_TO_USE[s] for s in spec.sources)
    why = ""
    if data_config.source == "auto":
      why = f" (source 'auto' chose {source!r} because no data folder is set)"
    if name == "omniglot" and source == "tfds":
      why += ("; TFDS 'omniglot' is the 105x105 version, not the 28x28 chardata.mat of "
              "Burda et al. 2016 that the papers use")
    raise ValueError(f"Dataset {name!r} cannot be loaded from source {source!r}{why}. "
                     f"To load it, {how}.")
  if source == "local" and not data_dir:
    raise ValueError(f"source='local' needs a data folder: {_HOW_TO_USE['local']}.")
  return source, data_dir


def random_split(images: np.ndarray, num_held_out: int, seed: int):
  """Splits `images` into (kept, held_out) by a permutation seeded with `seed`."""
  if not 0 < num_held_out < len(images):
    raise ValueError(f"Cannot hold out {num_held_out} of {len(images)} images.")
  permutation = np.random.default_rng(seed).permutation(len(images))
  return images[permutation[num_held_out:]], images[permutation[:num_held_out]]


def seeded_split(images: np.ndarray, sizes, seed: int):
  """(train, validation, test) of the given sizes from a permutation seeded with `seed`; a
  validation of size 0 is None."""
  if sum(sizes) != len(images):
    raise ValueError(f"Expected {sum(sizes)} images to split {sizes}, found {len(images)}.")
  permutation = np.random.default_rng(seed).permutation(len(images))
  ends = np.cumsum(sizes)
  return tuple(images[permutation[end - size:end]] for size, end in zip(sizes, ends))


def binarize(images: np.ndarray, copies: int, seed: int) -> np.ndarray:
  """`copies` Bernoulli(images / 255) draws of uint8 intensities, concatenated: [copies * N, ...].

  The test set of a dynamically binarized dataset is binarized once, beforehand, so that every
  evaluation sees the same data (Xu et al. 2020, B.1, binarize each test image 10 times).
  """
  if copies < 1:
    raise ValueError(f"test_binarizations must be at least 1, got {copies}.")
  rng = np.random.default_rng(seed)
  probs = images.astype(np.float32) / 255  # 255 -> exactly 1, and rng.random() < 1 always.
  # One copy at a time keeps the float buffers to the size of one test set.
  return np.concatenate([
      (rng.random(images.shape, dtype=np.float32) < probs).astype(np.uint8)
      for _ in range(copies)
  ])


def _read_digits(split_seed: int):
  """scikit-learn's bundled 8x8 digits (values 0..16) as intensities 0..255; works offline."""
  images = sklearn.datasets.load_digits().images  # [1797, 8, 8] floats 0..16.
  intensities = np.round(images * (255 / 16)).astype(np.uint8)[..., None]
  train, test = random_split(intensities, _DIGITS_NUM_TEST, split_seed)
  return train, None, test
