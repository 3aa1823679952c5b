"""Issue #21, "measured against real codecs": bits-back compression with trained VAEs
(vae_jax.compress) against gzip, bz2, xz, PNG and WebP lossless on the same test images.

  export VAE_JAX_DATA_DIR=../shared/data
  python launch/compression_table.py train [--runs_dir=runs/compression] [--models=a,b] [--dry_run]
  python launch/compression_table.py measure [--runs_dir=runs/compression] [--to=results/compression]
  python launch/compression_table.py render [--to=results/compression] [--output=results/compression.md]
  python launch/compression_table.py all    # train, measure, render

Run from the repository root. The models (MODELS below), each trained by `python -m
vae_jax.main` in <runs_dir>/<workdir> on a CPU budget:
  - mnist-standard: configs/xu2020.py:dense,standard,mnist (DenseVAE, N(0, I) prior), 20 epochs
    of the paper's 2,400 (its learning-rate thirds and 100-of-2,400-epoch warm-up scale with it);
  - mnist-rnvp_prior: configs/xu2020.py:dense,rnvp_prior,K=20,mnist (RealNVP prior, K = 20),
    the same;
  - freyfaces-standard: configs/vampprior.py:freyfaces-vae-standard (the VampPrior paper's VAE
    (L = 1), standard prior, discretized logistic on 8-bit faces), 500 epochs with a 100-epoch
    warm-up (as results/vampprior/runs/freyfaces-vae-standard-500ep).
Both MNIST runs evaluate one binarization of the test set (--config.data.test_binarizations=1,
the paper: 10), so the workdir's IS-NLL is over exactly the 10,000 binary images we compress.

`train` skips a finished workdir (eval_test.json) and resumes an unfinished one. `measure`, per
model: compresses the workdir's test set (`python -m vae_jax.compress --input=test`), decompresses
it, checks the restored array against the test images loaded independently
(vae_jax.data.load(config.data), as the compressor's --input=test does) bit for bit, runs the
classic codecs on the same array, and writes <to>/<model>.json (plus the run's small files in
<to>/runs/<workdir>/ and the compressed file in <to>/files/ when it is at most 1 MB). `render`
writes results/compression.md from <to>/*.json only, so it works from the repository alone;
re-run `measure` and `render` after a change to vae_jax/compress.py.
"""
import argparse
import bz2
import datetime
import gzip
import hashlib
import io
import json
import lzma
import math
import os
import platform
import shutil
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)

# pylint: disable-next=wrong-import-position
from launch import runs as runs_lib
# pylint: disable-next=wrong-import-position
from vae_jax.metric_writer import write_json_atomically, write_text_atomically

DEFAULT_RUNS_DIR = "runs/compression"
DEFAULT_TO = "results/compression"
DEFAULT_OUTPUT = "results/compression.md"
MAX_ARCHIVED_FILE_BYTES = 1 << 20  # compressed files up to 1 MB go into the repository
NET_TARGET = 1.01  # issue #21: the mean code length within 1% of the negative ELBO

MODELS = {
    "mnist-standard": {
        "dataset": "mnist",
        "label": "DenseVAE, standard prior N(0, I)",
        "config": "configs/xu2020.py:dense,standard,mnist",
        "workdir": "dense-standard-mnist-20ep",
        "overrides": ("train.num_epochs=20", "data.test_binarizations=1"),
        "compress_flags": ("--test_binarizations=1",),
    },
    "mnist-rnvp_prior": {
        "dataset": "mnist",
        "label": "DenseVAE, RealNVP prior (K = 20)",
        "config": "configs/xu2020.py:dense,rnvp_prior,K=20,mnist",
        "workdir": "dense-rnvp_prior-K20-mnist-20ep",
        "overrides": ("train.num_epochs=20", "data.test_binarizations=1"),
        "compress_flags": ("--test_binarizations=1",),
    },
    "freyfaces-standard": {
        "dataset": "freyfaces",
        "label": "VAE (L = 1) of the VampPrior paper, standard prior N(0, I)",
        "config": "configs/vampprior.py:freyfaces-vae-standard",
        "workdir": "freyfaces-vae-standard-500ep",
        "overrides": ("train.num_epochs=500", "train.kl_warmup_fraction=0.2"),
        "compress_flags": (),
    },
    "cifar10-standard": {
        "dataset": "cifar10",
        "label": ("ResnetVAE of Xu et al. B.5 at a quarter of its channels (issue #17's CPU-budget "
                  "model), standard prior N(0, I)"),
        "config": "configs/xu2020.py:resnet,standard,cifar10,width=0.25,epochs=4",
        "workdir": "resnet-standard-epochs4-width0.25-cifar10",
        # launch/cifar10_budget.sh's protocol (results/README.md, issue #17 part 3).
        "overrides": ("train.batch_size=32", "train.learning_rates=(1e-3,1e-4)",
                      "train.lr_boundaries=(0.75,)", "train.checkpoint_every_steps=500",
                      "train.log_every_steps=100", "eval.num_samples=100", "eval.sample_chunk=10",
                      "eval.num_images=64"),
        "compress_flags": (),
    },
}

DATASETS = {
    "mnist": ("Dynamically binarized MNIST: the 10,000 test images, binarized once "
              "(seed 0, the first of the paper's 10 binarizations)"),
    "freyfaces": ("Frey Faces, 8-bit: the 200 test faces of the seeded 1,565 / 200 / 200 split "
                  "(28 × 20)"),
    "cifar10": ("CIFAR-10, 8-bit colour: the 1,000 test images in the data directory (the first "
                "1,000 of the official 10,000; 32 × 32 × 3)"),
}
NOT_MEASURED = {
    "cifar10": ("Not measured: the same model with the RealNVP prior (K = 50, 4.56 bits/dim IS-NLL "
                "in results/README.md, issue #17). Its prior is a convolutional flow over the "
                "8 × 8 × 32 latent tensor, and the compressor's local bits-back coding through a "
                "flow needs the flow's Jacobian per image (2,048 × 2,048 here), so it supports "
                "RealNVP priors over latent vectors only."),
}


# ----------------------------------------------------------------------------------------------
# train

def train_command(name: str, runs_dir: str) -> list[str]:
  spec = MODELS[name]
  return ([sys.executable, "-m", "vae_jax.main", f"--config={spec['config']}",
           f"--workdir={os.path.join(runs_dir, spec['workdir'])}"]
          + [f"--config.{override}" for override in spec["overrides"]])


def train(names, runs_dir: str, dry_run: bool) -> int:
  """Trains the models one after another; a finished workdir (eval_test.json) is skipped, an
  unfinished one resumes from its latest checkpoint (launch/runs.py)."""
  runs_dir = _relative(runs_dir)
  return runs_lib.run_commands([train_command(name, runs_dir) for name in names],
                               not dry_run, ROOT)


# ----------------------------------------------------------------------------------------------
# classic codecs

def bits_per_dim(num_bytes: float, shape) -> float:
  """8 * bytes / (N * H * W * C) for an image array of `shape`."""
  return 8 * num_bytes / math.prod(shape)


def _timed(function, *args):
  start = time.perf_counter()
  result = function(*args)
  return result, time.perf_counter() - start


STREAMS = {
    "gzip -9": (lambda b: gzip.compress(b, compresslevel=9, mtime=0), gzip.decompress),
    "bzip2 -9": (lambda b: bz2.compress(b, compresslevel=9), bz2.decompress),
    "xz -9e": (lambda b: lzma.compress(b, preset=9 | lzma.PRESET_EXTREME), lzma.decompress),
}


def stream_codecs(images: np.ndarray, binary: bool) -> list[dict]:
  """gzip, bz2 and xz (maximum presets) of the whole uint8 array as one stream, N*H*W*C bytes in
  C order; for binary images also of the bits packed 8 to a byte (np.packbits) first. Each is
  decompressed and checked. A list of entries (name, bytes, bits_per_dim, ...)."""
  results = []
  raw = np.ascontiguousarray(images, np.uint8).tobytes()
  inputs = {"uint8 array": raw}
  if binary:
    inputs["packed bits"] = np.packbits(images.reshape(-1)).tobytes()
  for what, data in inputs.items():
    for name, (compress, decompress) in STREAMS.items():
      compressed, seconds = _timed(compress, data)
      restored, decompress_seconds = _timed(decompress, compressed)
      if restored != data:
        raise AssertionError(f"{name} of the {what} did not restore it")
      results.append(_entry(f"{name}, {what}", len(compressed), images, seconds,
                            decompress_seconds, f"the whole {what} as one stream"))
  return results


def _image_mode(image: np.ndarray, binary: bool):
  """A PIL image of one [H, W, C] uint8 image: mode '1' (1 bit per pixel) for binary images,
  'L' for gray, 'RGB' for colour."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  if binary:
    return Image.fromarray(image[..., 0].astype(bool))
  return Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)


def _decoded(data: bytes, binary: bool, channels: int) -> np.ndarray:
  from PIL import Image  # pylint: disable=g-import-not-at-top
  with Image.open(io.BytesIO(data)) as image:
    mode = "L" if channels == 1 else "RGB"
    array = np.asarray(image.convert(mode))
  if binary:
    array = (array > 127).astype(np.uint8)
  return array.reshape(array.shape[:2] + (channels,))


def webp_available() -> bool:
  from PIL import features  # pylint: disable=g-import-not-at-top
  return bool(features.check("webp"))


def image_codecs(images: np.ndarray, binary: bool) -> list[dict]:
  """Each image as its own file: PNG (optimize=True; mode '1', one bit per pixel, for binary
  images) and WebP lossless (method 6; binary images as 8-bit gray 0/255, WebP has no 1-bit
  mode), where Pillow has WebP. Every file is decoded and checked. A list of entries."""
  formats = {"PNG": {"format": "PNG", "optimize": True}}
  if webp_available():
    formats["WebP lossless"] = {"format": "WEBP", "lossless": True, "quality": 100, "method": 6}
  results = []
  for name, options in formats.items():
    files, seconds = [], 0.0
    for image in images:
      pil = _image_mode(image, binary)
      if name != "PNG" and binary:
        pil = pil.convert("L")
      start = time.perf_counter()
      buffer = io.BytesIO()
      pil.save(buffer, **options)
      seconds += time.perf_counter() - start
      files.append(buffer.getvalue())
    restored, decompress_seconds = _timed(
        lambda fs: np.stack([_decoded(f, binary, images.shape[-1]) for f in fs]), files)
    if not np.array_equal(restored, images):
      raise AssertionError(f"{name} did not restore the images")
    note = "each image its own file (headers included)"
    if name == "PNG":
      note += ", optimize=True" + (", mode '1' (1 bit per pixel)" if binary else "")
    else:
      note += ", method 6" + (", as 8-bit gray 0/255 (WebP has no 1-bit mode)" if binary else "")
    results.append(_entry(name, sum(len(f) for f in files), images, seconds, decompress_seconds,
                          note))
  return results


def _entry(name: str, num_bytes: int, images: np.ndarray, seconds: float,
           decompress_seconds: float, note: str) -> dict:
  n = images.shape[0]
  return {"name": name, "bytes": num_bytes, "bytes_per_image": num_bytes / n,
          "bits_per_dim": bits_per_dim(num_bytes, images.shape),
          "compress_images_per_second": n / max(seconds, 1e-9),
          "decompress_images_per_second": n / max(decompress_seconds, 1e-9), "note": note}


def classic_codecs(images: np.ndarray, binary: bool) -> list[dict]:
  return stream_codecs(images, binary) + image_codecs(images, binary)


# ----------------------------------------------------------------------------------------------
# measure

def load_test_images(workdir: str, test_binarizations=None) -> tuple[np.ndarray, bool]:
  """(the workdir's test images [N, H, W, C] uint8, binary?) as vae_jax.compress's --input=test
  takes them: the config's test set, binarized `test_binarizations` times on dynamically
  binarized sets, cut to config.eval.test_images."""
  from vae_jax import data  # pylint: disable=g-import-not-at-top
  from vae_jax.runs import workdir_config  # pylint: disable=g-import-not-at-top
  config = workdir_config(workdir)
  if test_binarizations:
    config.data.test_binarizations = test_binarizations
  dataset = data.load(config.data)
  return dataset.test[:config.eval.test_images or None], dataset.binary


def _run(cmd: list[str]) -> None:
  print(f"running: {runs_lib.display(cmd)}", flush=True)
  subprocess.run(cmd, cwd=ROOT, check=True)


def _sha256(path: str) -> str:
  with open(path, "rb") as f:
    return hashlib.sha256(f.read()).hexdigest()


def environment() -> dict:
  from importlib import metadata  # pylint: disable=g-import-not-at-top
  cpu = platform.processor() or ""
  try:
    with open("/proc/cpuinfo", encoding="utf-8") as f:
      cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")),
                 cpu)
  except OSError:
    pass
  versions = {}
  for package in ("jax", "jaxlib", "flax", "numpy", "constriction", "pillow"):
    try:
      versions[package] = metadata.version(package)
    except metadata.PackageNotFoundError:
      versions[package] = None
  commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, check=False,
                          capture_output=True, text=True).stdout.strip()
  return {"cpu": cpu, "cpu_count": os.cpu_count(), "python": platform.python_version(),
          "versions": versions, "commit": commit,
          "date": datetime.date.today().isoformat()}


def measure(name: str, runs_dir: str, to: str) -> dict:
  """Compresses, decompresses and checks one model's test set, runs the classic codecs on it
  and writes <to>/<name>.json."""
  spec = MODELS[name]
  workdir = os.path.join(runs_dir, spec["workdir"])
  if not os.path.exists(os.path.join(workdir, "eval_test.json")):
    raise SystemExit(f"{workdir} has no eval_test.json: run `python launch/compression_table.py "
                     "train` first.")
  out_dir = os.path.join(runs_dir, "compressed")
  os.makedirs(out_dir, exist_ok=True)
  compressed = os.path.join(out_dir, f"{name}.vaez")
  restored = os.path.join(out_dir, f"{name}.restored.npy")
  python = [sys.executable, "-m", "vae_jax.compress", f"--workdir={workdir}"]
  compress_cmd = python + ["--input=test", f"--output={compressed}", "--overwrite",
                           *spec["compress_flags"]]
  decompress_cmd = python + ["--decompress", f"--input={compressed}", f"--output={restored}",
                             "--overwrite"]
  _run(compress_cmd)
  _run(decompress_cmd)
  with open(compressed + ".json", encoding="utf-8") as f:
    compress_report = json.load(f)
  with open(restored + ".json", encoding="utf-8") as f:
    decompress_report = json.load(f)

  binarizations = next((int(flag.split("=")[1]) for flag in spec["compress_flags"]
                        if flag.startswith("--test_binarizations=")), None)
  images, binary = load_test_images(workdir, binarizations)
  restored_images = np.load(restored, allow_pickle=False)
  identical = (restored_images.dtype == images.dtype and restored_images.shape == images.shape
               and np.array_equal(restored_images, images)
               and compress_report["num_images"] == images.shape[0])
  if not identical:
    raise SystemExit(f"{restored} ({restored_images.dtype} {restored_images.shape}) differs from "
                     f"the test images ({images.dtype} {images.shape}) of {workdir}")
  print(f"{name}: decompressed {images.shape[0]} images bit for bit; classic codecs...",
        flush=True)
  codecs = classic_codecs(images, binary)

  run = {file: runs_lib.load_json(os.path.join(workdir, file))
         for file in ("config.json", "eval_test.json", "train_summary.json")}
  evaluation = run["eval_test.json"]
  config = run["config.json"]
  # The IS-NLL is over the compressed images when the evaluation saw the same number of test
  # images, binarized as many times (same seed: the config's).
  same_images = (evaluation.get("num_points") == images.shape[0]
                 and evaluation.get("test_binarizations", 1) == (binarizations or 1))
  result = {
      "model": name, "dataset": spec["dataset"], "label": spec["label"],
      "workdir": spec["workdir"], "num_images": int(images.shape[0]),
      "image_shape": list(images.shape[1:]), "binary": bool(binary),
      "test_binarizations": binarizations or 1,
      "images_sha256": hashlib.sha256(images.tobytes()).hexdigest(),
      "lossless": True,
      "seed": config["seed"], "epochs": (run["train_summary.json"] or {}).get("epochs"),
      "train_images_per_second": (run["train_summary.json"] or {}).get(
          "train_images_per_second"),
      "is_nll": {key: evaluation.get(key) for key in (
          "nll", "elbo", "bits_per_dim", "num_samples", "num_points", "test_binarizations",
          "seconds")} | {"same_images": same_images},
      "compress": compress_report, "decompress": decompress_report,
      "compressed_file_sha256": _sha256(compressed),
      "codecs": codecs, "environment": environment(),
      "commands": {"train": runs_lib.display(train_command(name, runs_dir)),
                   "compress": runs_lib.display(compress_cmd),
                   "decompress": runs_lib.display(decompress_cmd)},
  }
  os.makedirs(to, exist_ok=True)
  write_json_atomically(os.path.join(to, f"{name}.json"), result)
  archive_run(workdir, os.path.join(to, "runs", spec["workdir"]))
  files = os.path.join(to, "files")
  archived = os.path.join(files, f"{name}.vaez")
  if os.path.getsize(compressed) <= MAX_ARCHIVED_FILE_BYTES:
    os.makedirs(files, exist_ok=True)
    shutil.copy2(compressed, archived)
  elif os.path.exists(archived):
    os.remove(archived)  # a stale copy of a smaller file
  return result


def archive_run(workdir: str, to: str) -> None:
  """The run's small files (config, evaluation, summary, command, image grids), no checkpoints."""
  os.makedirs(to, exist_ok=True)
  for file in sorted(os.listdir(workdir)):
    if runs_lib.ARCHIVED_FILES.fullmatch(file):
      shutil.copy2(os.path.join(workdir, file), os.path.join(to, file))


# ----------------------------------------------------------------------------------------------
# render

def _num(value, digits) -> str:
  if value is None:
    return "—"
  return f"{value:,.{digits}f}"


def _rate(value) -> str:
  if value is None:
    return "—"
  return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"


def measure_classic(dataset: str, to: str) -> dict:
  """The classic codecs alone on a dataset's test images, where no model of ours codes them:
  `to`/classic/<dataset>.json."""
  from vae_jax import configuration, data  # pylint: disable=g-import-not-at-top
  config = configuration.base_config()
  config.data.name = dataset
  dataset_ = data.load(config.data)
  images = np.asarray(dataset_.test)
  result = {"dataset": dataset, "num_images": int(images.shape[0]),
            "image_shape": list(images.shape[1:]),
            "codecs": classic_codecs(images, dataset_.binary), "environment": environment()}
  os.makedirs(os.path.join(to, "classic"), exist_ok=True)
  write_json_atomically(os.path.join(to, "classic", f"{dataset}.json"), result)
  return result


def render_classic(result: dict) -> list[str]:
  """The markdown of the classic codecs alone on one dataset."""
  lines = [f"The classic codecs on the {result['num_images']:,} test images in the data "
           f"directory ({' × '.join(map(str, result['image_shape']))}), for scale "
           f"(`python launch/compression_table.py classic --dataset={result['dataset']}`):", "",
           "| codec | bytes/image | bits/dim | compress images/s | decompress images/s |",
           "|---|---|---|---|---|"]
  for codec in result["codecs"]:
    lines.append(f"| {codec['name']} | {_num(codec['bytes_per_image'], 2)} | "
                 f"{_num(codec['bits_per_dim'], 4)} | "
                 f"{_rate(codec['compress_images_per_second'])} | "
                 f"{_rate(codec['decompress_images_per_second'])} |")
  return lines + [""]


def render_table(result: dict) -> list[str]:
  """The markdown of one measured model: its table and the net/-ELBO check."""
  c, d, e = result["compress"], result["decompress"], result["is_nll"]
  n, dims = result["num_images"], math.prod(result["image_shape"])
  header_bytes = c["bytes"] - c["code_bits"] / 8
  ratio = c["net_bits_per_dim"] / c["neg_elbo_bits_per_dim"]
  rows = [
      ("**ours: bits-back ANS file** (header and initial bits included)", c["bytes_per_image"],
       c["bits_per_dim"], c["images_per_second"], d["images_per_second"]),
      ("**ours: net code length** (without the one-off initial bits and header)",
       c["net_bits_per_image"] / 8, c["net_bits_per_dim"], None, None),
      (f"the model's −ELBO (a bound, not a file; {c['elbo_samples']} samples)",
       c["neg_elbo_bits_per_dim"] * dims / 8, c["neg_elbo_bits_per_dim"], None, None),
      (f"the model's IS-NLL (a stochastic upper bound on −log p(x), not a file; "
       f"{e['num_samples']:,} samples)", e["bits_per_dim"] * dims / 8, e["bits_per_dim"], None,
       None),
  ]
  for codec in result["codecs"]:
    rows.append((codec["name"], codec["bytes_per_image"], codec["bits_per_dim"],
                 codec["compress_images_per_second"], codec["decompress_images_per_second"]))
  lines = [f"### {result['label']}", "",
           f"Workdir `{result['workdir']}` ({_num(result['epochs'], 0)} epochs, seed "
           f"{result['seed']}); {n:,} images of {' × '.join(map(str, result['image_shape']))}; "
           f"decompressed bit for bit: {'yes' if result['lossless'] else 'NO'}.", "",
           "| codec | bytes/image | bits/dim | compress images/s | decompress images/s |",
           "|---|---|---|---|---|"]
  for label, per_image, bpd, compress_rate, decompress_rate in rows:
    lines.append(f"| {label} | {_num(per_image, 2)} | {_num(bpd, 4)} | {_rate(compress_rate)} | "
                 f"{_rate(decompress_rate)} |")
  verdict = "met" if ratio <= NET_TARGET else "not met"
  best = min(result["codecs"], key=lambda codec: codec["bytes"])
  if not e.get("same_images", True):
    lines += ["", f"**The IS-NLL is over other test images** ({e['num_points']:,} points, "
              f"{e.get('test_binarizations')} binarizations) than the {n:,} compressed."]
  lines += ["",
            f"Net code length / −ELBO = **{ratio:.4f}** (target ≤ {NET_TARGET:.2f}: {verdict}). "
            f"One-off initial bits: {c['initial_bits']:,} ({c['initial_bits'] / n:.2f} bits per "
            f"image over {n:,} images), header {header_bytes:,.0f} bytes; the file "
            f"({c['bytes']:,} bytes) is {c['bits_per_dim'] / c['neg_elbo_bits_per_dim']:.4f} × "
            f"the −ELBO. Batches of {c['batch_size']} images, `--latent_bits={c['latent_bits']}`; "
            "the images/s exclude loading the model and compiling. The file is "
            f"{c['bytes'] / best['bytes']:.1%} of the smallest classic codec's output "
            f"({best['name']}, {best['bytes_per_image']:,.2f} bytes/image).", ""]
  return lines


def render(results: list[dict], classic=None) -> str:
  """results/compression.md from the models' measurements and `classic`: {dataset: the
  classic codecs alone} (measure_classic)."""
  classic = classic or {}
  lines = [
      "# Lossless compression with trained VAEs, against classic codecs (issue #21)", "",
      "Made by `launch/compression_table.py` from `results/compression/*.json` (re-render with "
      "`python launch/compression_table.py render`). Our codec is bits-back ANS with the trained VAE "
      "(`vae_jax/compress.py`, constriction's ANS coder). Every row codes the same images; "
      "bits/dim = 8 × bytes / (N × H × W × C). gzip, bzip2 and xz code the whole uint8 array "
      "(one byte per pixel, C order) as one stream at their maximum presets; for binary images "
      "also the same bits packed 8 to a byte (`np.packbits`), the fair baseline for binary "
      "data. PNG (`optimize=True`) and WebP lossless (method 6, where Pillow has WebP) code "
      "each image as its own file, headers included; binary PNGs are 1-bit (mode '1'), binary "
      "WebPs 8-bit gray with values 0 and 255 (WebP has no 1-bit mode). Every codec's output "
      "was decoded and checked against the images.", "",
      "Why the file is as long as the −ELBO and not the IS-NLL: bits-back coding first "
      "decodes a latent z from the bits already on the stack with q(z|x), then encodes x with "
      "p(x|z) and z with p(z); the receiver decodes z and x and re-encodes z with q(z|x), "
      "giving back the bits borrowed for z, so an image costs −log p(x|z) − log p(z) + "
      "log q(z|x) bits, whose mean over q(z|x) is the negative ELBO. The negative ELBO exceeds "
      "−log p(x), the ideal code length under the model, by KL(q(z|x) ‖ p(z|x)) ≥ 0. The "
      "IS-NLL with K importance samples lies between the two in expectation (−log p(x) ≤ "
      "E[IS-NLL] ≤ −ELBO) and approaches −log p(x) as K grows, so the file sits at the −ELBO, "
      "above the IS-NLL; the difference is what a better posterior could save. Our net length "
      "is a little above the −ELBO because z is coded on a grid of bins (with the RealNVP "
      "prior, by local bits-back coding through the flow on fine grids; see "
      "`vae_jax/compress.py`) and the coder quantizes probabilities to 24 bits. The one-off "
      "initial bits (the stack must hold bits before the first z is decoded) are paid once "
      "per file, not per image, and are reported separately.", ""]
  by_dataset = {}
  for result in results:
    by_dataset.setdefault(result["dataset"], []).append(result)
  for dataset, description in DATASETS.items():
    if dataset not in by_dataset:
      continue
    lines += [f"## {description}", ""]
    for result in by_dataset[dataset]:
      lines += render_table(result)
    lines += [NOT_MEASURED[dataset], ""] if dataset in NOT_MEASURED else []
  for dataset, result in classic.items():  # datasets that no model of ours has coded
    if dataset not in by_dataset:
      lines += [f"## {dataset}: classic codecs only", ""] + render_classic(result)
  lines += render_settings(results)
  return "\n".join(lines)


def render_settings(results: list[dict]) -> list[str]:
  if not results:
    return []
  env = results[0]["environment"]
  versions = ", ".join(f"{k} {v}" for k, v in env["versions"].items() if v)
  lines = ["## Settings and commands", "",
           f"Hardware: {env['cpu']}, {env['cpu_count']} cores, no accelerator (other jobs may "
           f"have shared it, so the images/s are indicative, not benchmarks). Software: Python "
           f"{env['python']}, {versions}; code of commit {env['commit']} plus the working tree "
           f"of {env['date']}.", "",
           "| model | config | epochs | seed | train images/s | IS-NLL samples × test images |",
           "|---|---|---|---|---|---|"]
  for r in results:
    spec = MODELS.get(r["model"], {})
    e = r["is_nll"]
    lines.append(f"| {r['model']} | `{spec.get('config', '')}` | {_num(r['epochs'], 0)} | "
                 f"{r['seed']} | {_rate(r['train_images_per_second'])} | "
                 f"{e['num_samples']:,} × {e['num_points']:,} |")
  lines += ["", "Budget: the MNIST models train 20 epochs (the paper: 2,400; its learning-rate "
            "schedule and KL warm-up scale with the budget), the Frey Faces model 500 epochs "
            "with a 100-epoch warm-up (its config: at most 2,000 with early stopping), the "
            "CIFAR-10 model 4 epochs at batch 32, learning rate 1e-3 and 1e-4 for the last "
            "quarter, at a quarter of B.5's channels (issue #17's CPU-budget protocol; the paper: "
            "the full model, 2,400 epochs at batch 128); every other setting is the config's. The MNIST workdirs evaluate one test binarization "
            "(`--config.data.test_binarizations=1`, the paper: 10) so that the IS-NLL is over "
            "the images we compress. The compressed files are in `results/compression/files/` "
            "(each under 1 MB; checksums in the JSONs); `--decompress` restores them only with "
            "the checkpoint, the code and the kind of device that wrote them (the file records "
            "their fingerprints), and the checkpoints are not in the repository.", "",
            "```bash",
            "export VAE_JAX_DATA_DIR=../shared/data",
            "python launch/compression_table.py train    # = these, each skipped once finished:"]
  lines += [f"#   {r['commands']['train']}" for r in results]
  lines += ["python launch/compression_table.py measure  # per model, then the classic codecs:"]
  for r in results:
    lines += [f"#   {r['commands']['compress']}", f"#   {r['commands']['decompress']}"]
  lines += ["python launch/compression_table.py render", "```", ""]
  return lines


def read_classic(to: str) -> dict:
  """{dataset: measure_classic's result} of the JSONs in `to`/classic."""
  folder = os.path.join(to, "classic")
  names = sorted(f[:-5] for f in os.listdir(folder) if f.endswith(".json")) if os.path.isdir(
      folder) else []
  return {name: runs_lib.load_json(os.path.join(folder, f"{name}.json")) for name in names}


def read_results(to: str) -> list[dict]:
  """The measurement JSONs in `to`, in MODELS order (then any others by name)."""
  names = sorted(f[:-5] for f in os.listdir(to) if f.endswith(".json")) if os.path.isdir(
      to) else []
  order = {name: i for i, name in enumerate(MODELS)}
  names.sort(key=lambda name: (order.get(name, len(order)), name))
  return [runs_lib.load_json(os.path.join(to, f"{name}.json")) for name in names]


# ----------------------------------------------------------------------------------------------

def _relative(path: str) -> str:
  """`path` relative to the repository root (where the commands run), if it is inside it."""
  relative = os.path.relpath(os.path.abspath(path), ROOT)
  return os.path.abspath(path) if relative.startswith("..") else relative


def _names(models_flag: str) -> list[str]:
  return runs_lib.select_cells(MODELS, models_flag, "python launch/compression_table.py --help")


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  sub = parser.add_subparsers(dest="action", required=True)
  for action in ("train", "measure", "render", "all", "classic"):
    p = sub.add_parser(action)
    if action == "classic":
      p.add_argument("--dataset", default="cifar10", help="a data.name without a model of ours")
      p.add_argument("--to", default=DEFAULT_TO)
      continue
    if action != "render":
      p.add_argument("--runs_dir", default=DEFAULT_RUNS_DIR)
      p.add_argument("--models", default="", help=f"comma-separated, of {', '.join(MODELS)}")
    if action == "train":
      p.add_argument("--dry_run", action="store_true")
    if action != "train":
      p.add_argument("--to", default=DEFAULT_TO)
    if action in ("render", "all"):
      p.add_argument("--output", default=DEFAULT_OUTPUT)
  args = parser.parse_args(argv)
  if args.action == "classic":
    measure_classic(args.dataset, args.to)
    print(f"wrote {os.path.join(args.to, 'classic', args.dataset + '.json')}; now render")
    return 0
  if args.action in ("train", "all"):
    status = train(_names(args.models), args.runs_dir, getattr(args, "dry_run", False))
    if status:
      return status
  if args.action in ("measure", "all"):
    for name in _names(args.models):
      measure(name, _relative(args.runs_dir), args.to)
  if args.action in ("render", "all"):
    write_text_atomically(args.output, render(read_results(args.to), read_classic(args.to)))
    print(f"wrote {args.output}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
