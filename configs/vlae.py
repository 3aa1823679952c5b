"""Chen et al. (2017), VLAE: every table cell, --config=configs/vlae.py:<cell>.

For example `--config=configs/vlae.py:static_mnist-vlae` (Table 1);
`python launch/iaf_vlae.py list vlae` shows every cell.

Settings the paper gives (Appendix A): the IAF paper's MNIST networks (configs/iaf.py), decoder
features 28x28x4 into a 6-layer masked PixelCNN, z = 64, AF prior of 4 mean-only steps of a 3-layer
640-unit ReLU MADE, Adamax lr 0.002, free bits 0.01 nats per data dimension, Polyak averaging
alpha = 0.998, IS with 4096 samples. Batch size and epochs are not given: ours 100 and 1,000.
"""
import functools

import ml_collections

from vae_jax import config_files
from vae_jax.models.factory import component

iaf = config_files.module("configs/iaf.py")

IS_SAMPLES = 4096  # Section 4
_MNIST_PIXELS = 784
_FREE_BITS_PER_DIM = 0.01  # Appendix A: "0.01 nats/data-dim free bits"
DATASETS = ("static_mnist", "mnist", "omniglot", "caltech101_silhouettes")  # Tables 1-4


def af_mnist(depth: int, width: int, dataset: str) -> ml_collections.ConfigDict:
  """Table 1's AF VAE: the IAF model with its IAF posterior replaced by an equivalent AF prior
  (same steps and MADE widths, no context; Section 4.2)."""
  config = iaf.iaf_mnist(0, width, dataset)
  model = config.model
  model.prior = component("prior", "af", num_steps=depth, hidden=(width, width), mean_only=False)
  config.eval.num_samples = IS_SAMPLES
  return config


def vlae(dataset: str) -> ml_collections.ConfigDict:
  """VLAE (Appendix A) on a 28x28 binary dataset."""
  config = iaf.adamax_defaults(dataset)
  model = config.model
  model.latent_dim = 64
  model.encoder, model.decoder = component("encoder", "iaf_resnet"), component("decoder", "iaf_resnet")
  model.likelihood = component("likelihood", "masked_pixelcnn")  # Appendix A: a PixelCNN decoder
  # Appendix A: 4 mean-only ("more numerically stable") steps of a 3-layer MADE of 640 ReLUs.
  model.prior = component("prior", "af", num_steps=4, hidden=(640, 640, 640), mean_only=True)
  config.train.free_bits = _FREE_BITS_PER_DIM * _MNIST_PIXELS
  config.train.free_bits_groups = "all"
  config.eval.num_samples = IS_SAMPLES
  config.eval.sample_chunk = 128
  config.eval.batch_size = 100
  config.eval.decompressions = True
  return config


def cells() -> dict:
  """Cell name -> config factory: Table 1's IAF and AF VAEs, and VLAE on each dataset."""
  table = {"static_mnist-iaf-vae": functools.partial(iaf.iaf_mnist, 8, 1920, "static_mnist"),
           "static_mnist-af-vae": functools.partial(af_mnist, 8, 1920, "static_mnist")}
  table.update({f"{dataset}-vlae": functools.partial(vlae, dataset) for dataset in DATASETS})
  return table


def get_config(cell: str) -> ml_collections.ConfigDict:
  return config_files.cell_config(cells(), cell, "VLAE")
