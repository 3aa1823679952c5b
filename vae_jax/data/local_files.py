"""Parsers for the datasets' original file formats in a local data folder.

Layout under the data folder (the same as the project's offline copies):

  mnist/          train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz,
                  t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz
                  (idx files, gzip-compressed or plain without the .gz)
  fashion_mnist/  the same file names (the official Fashion-MNIST names)
  binarized_mnist/ binarized_mnist_{train,valid,test}.mat (key X, N x 784),
                  or the original text files binarized_mnist_{train,valid,test}.amat
  omniglot/       chardata.mat (Burda et al. 2016: data 784 x 24,345, testdata 784 x 8,070)
  cifar10/        data_batch_{1..5}.bin and test_batch.bin (or test_batch_first1000.bin),
                  or the python version in cifar10/cifar-10-batches-py/
  caltech101_silhouettes/ caltech101_silhouettes_28_split1.mat (Marlin's official split:
                  train_data, val_data, test_data, N x 784), or caltech101_silhouettes_28.mat
                  (all 8,671 images in X, split by `vae_jax.data.sources`)
  freyfaces/      frey_rawface.mat (Roweis: ff, 560 x 1,965) or freyfaces_uint8_1965x560.npy
  histopathology/ histopathology.pkl (the VampPrior authors' file: a dict of 'training',
                  'validation', 'test' arrays of 28 x 28 intensities in [0, 1])

Each reader returns uint8 NHWC arrays (train, validation, test); validation is the dataset's own
validation split where it has one (static MNIST), else None. Sets that come unsplit (Frey Faces,
Caltech-101 without split1) return (all images, None, None).
"""
import gzip
import pathlib
import pickle

from absl import logging
import numpy as np
import scipy.io

_MNIST_HOW = (
    "Download the four MNIST files from http://yann.lecun.com/exdb/mnist/ (mirror: "
    "https://storage.googleapis.com/cvdf-datasets/mnist/), or set --config.data.source=tfds.")
_FASHION_HOW = (
    "Download the four Fashion-MNIST files from https://github.com/zalandoresearch/fashion-mnist "
    "(data/fashion), or set --config.data.source=tfds.")
_STATIC_MNIST_HOW = (
    "Download binarized_mnist_{train,valid,test}.amat (Larochelle & Murray 2011) from "
    "http://www.cs.toronto.edu/~larocheh/public/datasets/binarized_mnist/, or set "
    "--config.data.source=tfds.")
_OMNIGLOT_HOW = (
    "Download chardata.mat (Burda et al. 2016, 28x28 Omniglot) from "
    "https://github.com/yburda/iwae/tree/master/datasets/OMNIGLOT. TFDS has no 28x28 Omniglot.")
_CALTECH_HOW = (
    "Download caltech101_silhouettes_28_split1.mat from "
    "https://people.cs.umass.edu/~marlin/data.shtml (Caltech 101 Silhouettes).")
_FREY_HOW = "Download frey_rawface.mat from https://cs.nyu.edu/~roweis/data.html."
_HISTOPATHOLOGY_HOW = (
    "Get histopathology.pkl (gray 28x28 patches of Tomczak et al., split 6,800 / 2,000 / 2,000) "
    "from the VampPrior authors' repository, github.com/jmtomczak/vae_vampprior (datasets/).")
_CIFAR10_HOW = (
    "Download the CIFAR-10 binary version from https://www.cs.toronto.edu/~kriz/cifar.html and put "
    "the files of cifar-10-batches-bin/ in {dir} (or extract the python version so that "
    "{dir}/cifar-10-batches-py/ exists), or set --config.data.source=tfds.")


def read(name: str, data_dir: str):
  """Returns (train, validation or None, test) uint8 NHWC arrays of dataset `name`."""
  root = pathlib.Path(data_dir).expanduser()
  readers = {
      "mnist": lambda: _read_mnist_like(root / "mnist", _MNIST_HOW),
      "fashion_mnist": lambda: _read_mnist_like(root / "fashion_mnist", _FASHION_HOW),
      "static_mnist": lambda: _read_static_mnist(root / "binarized_mnist"),
      "omniglot": lambda: _read_omniglot(root / "omniglot" / "chardata.mat"),
      "cifar10": lambda: _read_cifar10(root / "cifar10"),
      "caltech101_silhouettes": lambda: _read_caltech(root / "caltech101_silhouettes"),
      "freyfaces": lambda: _read_frey(root / "freyfaces"),
      "histopathology": lambda: _read_histopathology(root / "histopathology"),
  }
  return readers[name]()


def _first_existing(candidates, how_to_get: str) -> pathlib.Path:
  """The first of `candidates` that exists; else an error naming the expected path."""
  for path in candidates:
    if path.is_file():
      return path
  alternatives = "".join(f" (or {p})" for p in candidates[1:])
  raise FileNotFoundError(f"Dataset file not found: {candidates[0]}{alternatives}. {how_to_get}")


# --- MNIST and Fashion-MNIST: idx files ---------------------------------------------------------


def read_idx(path: pathlib.Path, ndim: int) -> np.ndarray:
  """Reads an idx file of unsigned bytes (gzip-compressed or plain) with `ndim` dimensions.

  Format (http://yann.lecun.com/exdb/mnist/): big-endian int32 magic 0x0800 + ndim (2051 for
  images, 2049 for labels), then ndim big-endian int32 sizes, then the uint8 data.
  """
  with open(path, "rb") as f:
    data = f.read()
  if data[:2] == b"\x1f\x8b":  # gzip magic: the official files are compressed.
    try:
      data = gzip.decompress(data)
    except (OSError, EOFError) as e:
      raise ValueError(f"{path}: corrupt gzip data ({e}).") from e
  header_size = 4 + 4 * ndim
  if len(data) < header_size:
    raise ValueError(f"{path}: {len(data)} bytes is too short for an idx header.")
  magic = int.from_bytes(data[:4], "big")
  if magic != 0x0800 + ndim:
    raise ValueError(f"{path}: idx magic number is {magic}, expected {0x0800 + ndim} "
                     f"(unsigned bytes, {ndim} dimensions).")
  shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
  if len(data) - header_size != np.prod(shape):
    raise ValueError(f"{path}: header says shape {shape} ({np.prod(shape)} bytes) but the file "
                     f"holds {len(data) - header_size} data bytes.")
  return np.frombuffer(data, np.uint8, offset=header_size).reshape(shape)


def _read_idx_pair(folder: pathlib.Path, prefix: str, how_to_get: str) -> np.ndarray:
  """Images [N, H, W, 1] of one split; the labels are read only to check the count matches."""
  paths = {}
  for kind, ndim in (("images-idx3", 3), ("labels-idx1", 1)):
    name = f"{prefix}-{kind}-ubyte"
    paths[kind] = _first_existing([folder / f"{name}.gz", folder / name], how_to_get)
  images = read_idx(paths["images-idx3"], 3)
  labels = read_idx(paths["labels-idx1"], 1)
  if len(labels) != len(images):
    raise ValueError(f'{paths["images-idx3"]} holds {len(images)} images but '
                     f'{paths["labels-idx1"]} holds {len(labels)} labels.')
  return images[..., None]


def _read_mnist_like(folder: pathlib.Path, how_to_get: str):
  train = _read_idx_pair(folder, "train", how_to_get)
  test = _read_idx_pair(folder, "t10k", how_to_get)
  return train, None, test


# --- Static (Larochelle & Murray) binarized MNIST -----------------------------------------------


def _load_mat(path: pathlib.Path) -> dict:
  try:
    return scipy.io.loadmat(path)
  except (OSError, ValueError, scipy.io.matlab.MatReadError) as e:
    raise ValueError(f"{path}: not a readable MATLAB file ({e}).") from e


def _read_binarized_mat(path: pathlib.Path) -> np.ndarray:
  contents = _load_mat(path)
  if "X" not in contents:
    raise ValueError(f'{path}: no array "X" (found {sorted(k for k in contents if k[0] != "_")}).')
  x = contents["X"]
  if x.ndim != 2 or x.shape[1] != 784:
    raise ValueError(f'{path}: "X" has shape {x.shape}, expected (N, 784).')
  return x


def _read_amat(path: pathlib.Path) -> np.ndarray:
  """The original text format: one image per line, 784 '0'/'1' separated by single spaces."""
  with open(path, "rb") as f:
    lines = [line.rstrip() for line in f if line.strip()]
  line_length = 2 * 784 - 1
  for number, line in enumerate(lines, start=1):
    if len(line) != line_length:
      raise ValueError(f"{path}: line {number} has {len(line)} characters, expected "
                       f"{line_length} (784 values 0/1 separated by single spaces).")
  chars = np.frombuffer(b"".join(lines), np.uint8).reshape(len(lines), line_length)
  if np.any(chars[:, 1::2] != ord(" ")):
    raise ValueError(f"{path}: values must be separated by single spaces.")
  return chars[:, ::2] - ord("0")  # Non-digits wrap around to values > 1, caught by the caller.


def _read_static_mnist(folder: pathlib.Path):
  splits = []
  for split in ("train", "valid", "test"):
    stem = folder / f"binarized_mnist_{split}"
    path = _first_existing([stem.with_suffix(".mat"), stem.with_suffix(".amat")],
                           _STATIC_MNIST_HOW)
    x = _read_binarized_mat(path) if path.suffix == ".mat" else _read_amat(path)
    if not np.all((x == 0) | (x == 1)):
      raise ValueError(f"{path}: values must be 0 or 1.")
    # Rows are row-major 28x28 images (the same layout as the idx files).
    splits.append(x.astype(np.uint8).reshape(-1, 28, 28, 1))
  return tuple(splits)


# --- Omniglot (Burda et al. 2016, 28x28) --------------------------------------------------------


def _read_omniglot(path: pathlib.Path):
  contents = _load_mat(_first_existing([path], _OMNIGLOT_HOW))
  splits = []
  for key in ("data", "testdata"):
    if key not in contents:
      raise ValueError(f"{path}: no array {key!r} (found "
                       f'{sorted(k for k in contents if k[0] != "_")}).')
    x = contents[key]
    if x.ndim != 2 or x.shape[0] != 784:
      raise ValueError(f"{path}: {key!r} has shape {x.shape}, expected (784, N).")
    if x.min() < 0 or x.max() > 1:
      raise ValueError(f"{path}: {key!r} must hold intensities in [0, 1].")
    # Each column is one image stored column-major, so the upright image is
    # column.reshape(28, 28).T; the VampPrior code's reshape(-1, 28, 28) followed by an order='F'
    # flatten is this same transpose.
    images = x.T.reshape(-1, 28, 28).transpose(0, 2, 1)
    splits.append(np.round(images * 255).astype(np.uint8)[..., None])
  train, test = splits
  return train, None, test


# --- CIFAR-10 -----------------------------------------------------------------------------------


def _planes_to_nhwc(rows: np.ndarray) -> np.ndarray:
  """[N, 3072] rows of R, G, B 32x32 row-major planes -> [N, 32, 32, 3]."""
  return rows.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)


def _read_cifar_bin(path: pathlib.Path) -> np.ndarray:
  """Binary version: 3,073-byte records, one label byte then the R, G, B planes."""
  data = np.fromfile(path, np.uint8)
  if data.size == 0 or data.size % 3073:
    raise ValueError(f"{path}: {data.size} bytes is not a whole number of 3,073-byte "
                     "CIFAR-10 records.")
  records = data.reshape(-1, 3073)
  if records[:, 0].max() > 9:
    raise ValueError(f"{path}: label bytes above 9, not a CIFAR-10 record file.")
  return _planes_to_nhwc(records[:, 1:])


def _read_cifar_pickle(path: pathlib.Path) -> np.ndarray:
  """Python version: a pickled dict with b'data', uint8 [N, 3072] (files the user downloaded)."""
  try:
    with open(path, "rb") as f:
      batch = pickle.load(f, encoding="bytes")
  except (pickle.UnpicklingError, EOFError, ValueError) as e:
    raise ValueError(f"{path}: not a readable CIFAR-10 python batch ({e}).") from e
  if not isinstance(batch, dict) or b"data" not in batch:
    raise ValueError(f'{path}: expected a dict with key b"data".')
  rows = np.asarray(batch[b"data"])
  if rows.dtype != np.uint8 or rows.ndim != 2 or rows.shape[1] != 3072:
    raise ValueError(f'{path}: b"data" is {rows.dtype} {rows.shape}, expected uint8 (N, 3072).')
  return _planes_to_nhwc(rows)


def _read_cifar10(folder: pathlib.Path):
  how_to_get = _CIFAR10_HOW.format(dir=folder)
  python_dir = folder / "cifar-10-batches-py"
  if not (folder / "data_batch_1.bin").is_file() and (python_dir / "data_batch_1").is_file():
    train = [_read_cifar_pickle(_first_existing([python_dir / f"data_batch_{i}"], how_to_get))
             for i in range(1, 6)]
    test = _read_cifar_pickle(_first_existing([python_dir / "test_batch"], how_to_get))
    return np.concatenate(train), None, test
  train = [_read_cifar_bin(_first_existing([folder / f"data_batch_{i}.bin"], how_to_get))
           for i in range(1, 6)]
  test_path = _first_existing([folder / "test_batch.bin", folder / "test_batch_first1000.bin"],
                              how_to_get)
  if test_path.name == "test_batch_first1000.bin":
    logging.warning("CIFAR-10: %s holds only the first 1,000 of the 10,000 test images; test "
                    "metrics are estimates on this subset.", test_path)
  return np.concatenate(train), None, _read_cifar_bin(test_path)


# --- The VampPrior paper's small sets (Tomczak & Welling 2018, Supplement 8.4.1) ---------------


def _matrix(contents: dict, key: str, path: pathlib.Path, columns: int) -> np.ndarray:
  if key not in contents:
    raise ValueError(f"{path}: no array {key!r} (found "
                     f'{sorted(k for k in contents if k[0] != "_")}).')
  x = np.asarray(contents[key])
  if x.ndim != 2 or x.shape[1] != columns:
    raise ValueError(f"{path}: {key!r} has shape {x.shape}, expected (N, {columns}).")
  return x


def _caltech_images(rows: np.ndarray, path: pathlib.Path) -> np.ndarray:
  """Marlin's rows are column-major 28x28 silhouettes with the object 0 on a background 1; the
  VampPrior code flips them (1 - x) so that the object is 1, as in MNIST."""
  if not np.all((rows == 0) | (rows == 1)):
    raise ValueError(f"{path}: values must be 0 or 1.")
  images = rows.reshape(-1, 28, 28).transpose(0, 2, 1)  # order='F' per image
  return (1 - images).astype(np.uint8)[..., None]


def _read_caltech(folder: pathlib.Path):
  split1 = folder / "caltech101_silhouettes_28_split1.mat"
  if split1.is_file():
    contents = _load_mat(split1)
    return tuple(_caltech_images(_matrix(contents, key, split1, 784), split1)
                 for key in ("train_data", "val_data", "test_data"))
  path = _first_existing([split1, folder / "caltech101_silhouettes_28.mat"], _CALTECH_HOW)
  logging.warning("%s: the official split1 file is absent; the 8,671 images are split at random "
                  "(4,100 / 2,264 / 2,307, seeded by config.data.split_seed), a deviation from "
                  "the published protocol.", path)
  return _caltech_images(_matrix(_load_mat(path), "X", path, 784), path), None, None


def _read_frey(folder: pathlib.Path):
  """1,965 faces of 28 x 20 pixels, uint8, unsplit."""
  path = _first_existing([folder / "frey_rawface.mat", folder / "freyfaces_uint8_1965x560.npy"],
                         _FREY_HOW)
  if path.suffix == ".mat":
    faces = _matrix({"ff": _load_mat(path).get("ff", np.zeros((0, 0))).T}, "ff", path, 560)
  else:
    faces = _matrix({"faces": np.load(path, allow_pickle=False)}, "faces", path, 560)
  if faces.dtype != np.uint8:
    raise ValueError(f"{path}: expected uint8 pixels, found {faces.dtype}.")
  return faces.reshape(-1, 28, 20, 1), None, None


def _read_histopathology(folder: pathlib.Path):
  path = _first_existing([folder / "histopathology.pkl"], _HISTOPATHOLOGY_HOW)
  with open(path, "rb") as f:
    contents = pickle.load(f, encoding="latin1")
  splits = []
  for key in ("training", "validation", "test"):
    x = _matrix({key: np.asarray(contents[key]).reshape(len(contents[key]), -1)}
                if isinstance(contents, dict) and key in contents else {}, key, path, 784)
    if x.min() < 0 or x.max() > 1:
      raise ValueError(f"{path}: {key!r} must hold intensities in [0, 1].")
    splits.append(np.round(x * 255).astype(np.uint8).reshape(-1, 28, 28, 1))
  return tuple(splits)
