"""Kingma et al. (2016), IAF: every table cell, --config=configs/iaf.py:<cell>.

For example `--config=configs/iaf.py:mnist-iaf-d2-w320` (Table 1) or
`--config=configs/iaf.py:cifar10-bidirectional-iaf-h1-depth8` (Table 4);
`python launch/iaf_vlae.py list iaf` shows the cells of the paper's tables.

Settings the paper gives (cited where set) and ours where it is silent:
  - MNIST (Appendix B): the iaf_resnet networks, z = 32, IAF steps of a 2-layer MADE with
    ordering reversed between steps; Table 1 reports IS with 128 samples. The optimiser, batch
    size and epochs are not given: we use VLAE's Adamax lr 0.002 and Polyak averaging (VLAE reuses
    this model), batch 100 and 1,000 epochs, no warm-up and no free bits.
  - CIFAR-10 (Appendix C): resnet_vae with 32 latent channels per layer; free bits per feature
    map with lambda = 0.125 (inside the range C.8 found helpful); Adamax lr 0.002 and batch 32 (the
    paper's code); 160 hidden channels; epochs not given: ours 1,000.
"""
import functools

import ml_collections

from vae_jax import config_files, configuration
from vae_jax.models.factory import component

TABLE1_SAMPLES = 128  # Table 1: "importance sampled estimate [...] with 128 samples"
_CIFAR_FREE_BITS = 0.125  # C.8: lambda in [0.125, 2] improved bits/dim by > 0.1 nats
_EPOCHS = 1000  # not given in the paper (nor in VLAE's)


def adamax_defaults(dataset: str) -> ml_collections.ConfigDict:
  """What the IAF and VLAE models share: Adamax at lr 0.002 with Polyak averaging (VLAE Appendix
  A; the IAF paper's code), no warm-up and no weight decay; batch 100 and 1,000 epochs (ours)."""
  config = configuration.base_config()
  config.data.name = dataset
  train = config.train
  train.optimizer = "adamax"
  train.learning_rates, train.lr_boundaries = (0.002,), ()
  train.polyak_decay = 0.998
  train.kl_warmup_fraction = 0.0
  train.l2_weight = 0.0
  train.batch_size = 100
  train.num_epochs = float(_EPOCHS)
  return config


def iaf_mnist(depth: int, width: int, dataset: str = "mnist") -> ml_collections.ConfigDict:
  """Table 1: the Appendix B ResNet VAE with `depth` IAF steps of width `width` (0: the
  diagonal-covariance baseline)."""
  config = adamax_defaults(dataset)
  model = config.model
  model.latent_dim = 32
  model.encoder, model.decoder = component("encoder", "iaf_resnet"), component("decoder", "iaf_resnet")
  model.likelihood = component("likelihood", "bernoulli", project=True, weight_norm=True)
  # Section 6.1: each step a 2-layer MADE, ELU (Appendix B)
  model.posterior = (component("posterior", "iaf", num_steps=depth, hidden=(width, width))
                     if depth else component("posterior", "gaussian"))
  config.eval.num_samples = TABLE1_SAMPLES
  return config


def resnet_vae_cifar(layers: int, inference: str, iaf_hidden_layers: int, iaf_steps: int,
                     location_only: bool = False) -> ml_collections.ConfigDict:
  """Tables 2-4: the Appendix C ResNet VAE on CIFAR-10. iaf_hidden_layers -1 is the factorized
  Gaussian; 0 the linear IAF; 1 or 2 the nonlinear IAF."""
  config = adamax_defaults("cifar10")
  model = config.model
  model.name, model.latent_dim = "resnet_vae", 32
  model.encoder, model.decoder = component("encoder", "none"), component("decoder", "none")
  model.likelihood = component("likelihood", "discretized_logistic")
  model.resnet_vae.layers, model.resnet_vae.inference = layers, inference
  model.posterior = (component("posterior", "gaussian") if iaf_hidden_layers < 0 else component(
      "posterior", "iaf", num_steps=iaf_steps, location_only=location_only,
      hidden=(model.resnet_vae.hidden,) * iaf_hidden_layers))
  config.train.batch_size = 32
  config.train.free_bits, config.train.free_bits_groups = _CIFAR_FREE_BITS, "channel"
  config.eval.num_samples, config.eval.sample_chunk, config.eval.batch_size = 1000, 10, 50
  config.eval.active_unit_samples = 10
  config.eval.active_unit_images = 1000
  return config


# Table 1's models: name -> (IAF steps, MADE width).
TABLE1_MODELS = {"diagonal": (0, 320), "iaf-d2-w320": (2, 320), "iaf-d2-w1920": (2, 1920),
                 "iaf-d4-w1920": (4, 1920), "iaf-d8-w1920": (8, 1920)}
# Posteriors of Tables 2-4: name -> (IAF hidden layers, steps).
CIFAR_POSTERIORS = {"gaussian": (-1, 1), "linear": (0, 1), "iaf-h1": (1, 1), "iaf-h2": (2, 1),
                    "iaf-h1-2steps": (1, 2)}


def cifar_cell(posterior: str, direction: str, layers: int, location_only: bool = False) -> str:
  return f"cifar10-{direction}-{posterior}-depth{layers}" + ("-loc" if location_only else "")


def cells() -> dict:
  """Cell name -> config factory: Table 1 (MNIST) and Tables 2-4 (CIFAR-10)."""
  table = {f"mnist-{name}": functools.partial(iaf_mnist, depth, width)
           for name, (depth, width) in TABLE1_MODELS.items()}
  table[cifar_cell("iaf-h2", "bidirectional", 20)] = functools.partial(
      resnet_vae_cifar, 20, "bidirectional", 2, 1)
  for layers in (4, 8):  # Table 3
    for direction in ("bottom_up", "bidirectional"):
      for hidden in (0, 1):
        for location_only in (True, False):
          table[cifar_cell(f"iaf-h{hidden}", direction, layers, location_only)] = (
              functools.partial(resnet_vae_cifar, layers, direction, hidden, 1, location_only))
  for layers in (4, 8, 12):  # Table 4
    for direction in ("bottom_up", "bidirectional"):
      for posterior, (hidden, steps) in CIFAR_POSTERIORS.items():
        table.setdefault(cifar_cell(posterior, direction, layers),
                         functools.partial(resnet_vae_cifar, layers, direction, hidden, steps))
  return table


def get_config(cell: str) -> ml_collections.ConfigDict:
  return config_files.cell_config(cells(), cell, "IAF")
