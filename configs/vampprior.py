"""Tomczak & Welling (2018), VampPrior: every model of Tables 1-5 and Figures 2-3 as a named cell,
--config=configs/vampprior.py:<cell>.

A cell is `<dataset>-<model>-<prior>`, with `-K<k>` when the number of components differs from the
paper's default, e.g. `static_mnist-vae-vampprior` (Table 1, VAE L=1 with the VampPrior, K = 500)
or `static_mnist-hvae-mog-K50`. `python launch/vampprior.py list` shows the cells of the paper's
tables, `launch/vampprior.py` runs them and collects them beside the paper's numbers into
results/vampprior.md.

Settings the paper gives (Section 5.1, Supplement 8.4):
  - MLPs of two gated layers of 300 units (Dauphin et al. 2017), z1 and z2 of 40 units;
    ConvHVAE with gated convolutions, PixelHVAE with a PixelCNN decoder.
  - Bernoulli likelihood for binary data; discretized logistic for Frey Faces and Histopathology
    (bits per dimension).
  - Adam, lr in {1e-4, 5e-4}, batches of 100, KL warm-up over 100 epochs, early stopping with a
    look-ahead of 50 epochs; K = 500 pseudo-inputs (1000 on Omniglot); test LL by importance
    sampling with 5,000 samples.
Ours where the paper is silent, after the authors' public code (github.com/jmtomczak/vae_vampprior):
  - lr 5e-4 (its default); at most 2,000 epochs (its max_epoch); warm-up beta from 0 up to 1;
    early stopping on the validation ELBO (one sample per image), evaluated every epoch.
  - Posterior and p(z1|z2) log-variances clipped to [-6, 2] by a hard tanh: we clip the log-std
    below at -3 (`min_logstd`).
  - Plain Adam: the normalized-gradient variant the paper cites is
    `normalize_gradients` in vae_jax/train_state.py.
  - The convolutional shapes of ConvHVAE and PixelHVAE (`vae_jax/nets/gated.py`), 8 masked
    convolutions of 64 filters in the PixelCNN (`VampPixelCNN`), no batch normalisation.
  - MoG components start at N(0, I) draws with unit scales.
"""
import functools

import ml_collections

from vae_jax import config_files, configuration
from vae_jax.models.factory import component

IS_SAMPLES = 5000  # Section 5.2: "Importance Sampling with 5,000 sample points"
_LATENT = 40  # Section 5.1: 40 stochastic units for z1 and z2
_BATCH = 100  # Section 5.1
_LEARNING_RATE = 5e-4  # Section 5.1: {1e-4, 5e-4}; the authors' code defaults to 5e-4
_WARMUP_EPOCHS = 100  # Section 5.1
_LOOK_AHEAD_EPOCHS = 50  # Section 5.1: early stopping with a look-ahead of 50
_MAX_EPOCHS = 2000  # the authors' code
_MIN_LOGSTD = -3.0  # the authors' code: log-variance hard tanh [-6, 2]
_PSEUDO_INPUTS = 500  # Section 5.1
_OMNIGLOT_PSEUDO_INPUTS = 1000  # Section 5.1
_OMNIGLOT_VALIDATION = 1345  # Supplement 8.4.1

DATASETS = ("static_mnist", "mnist", "omniglot", "caltech101_silhouettes", "freyfaces",
            "histopathology")
GRAY_DATASETS = ("freyfaces", "histopathology")  # discretized logistic, bits/dim
MODELS = ("vae", "hvae", "conv_hvae", "pixel_hvae")
PRIORS = ("standard", "mog", "vampprior_data", "vampprior")
# Figure 2 (HVAE on static MNIST, ELBO vs K for SG, MoG, VampPrior) and Figure 3 (active units
# of z1, z2 vs K) vary K; the paper's axis values are not in our text: ours.
FIGURE_PRIORS = ("mog", "vampprior")
FIGURE_COMPONENTS = (1, 10, 50, 100, 250, 500, 1000)


def default_components(dataset: str) -> int:
  return _OMNIGLOT_PSEUDO_INPUTS if dataset == "omniglot" else _PSEUDO_INPUTS


def prior_config(prior: str, num_components: int) -> ml_collections.ConfigDict:
  """Eq. 9 and Section 4: the VampPrior of K pseudo-inputs (`vampprior_data`: fixed training
  images), the MoG of K components, or N(0, I); uniform mixture weights (the paper's)."""
  if prior == "standard":
    return component("prior", "standard")
  if prior == "mog":
    return component("prior", "mog", num_components=num_components)
  # The pseudo-inputs start as N(0.05, 0.01^2) draws (the authors' code).
  return component("prior", "vampprior", num_components=num_components,
                   from_data=prior == "vampprior_data", init_mean=0.05, init_std=0.01)


def networks(model: str, likelihood: str):
  """(model name, encoder, decoder, likelihood) of a Section 5.1 model for `likelihood`
  'bernoulli' (binary data) or 'discretized_logistic' (gray)."""
  two_latent = model != "vae"
  projected = likelihood == "bernoulli" and model == "conv_hvae"  # conv features -> 1x1 conv
  head = component("likelihood", likelihood, **({"project": True} if projected else {}))
  if model in ("vae", "hvae"):  # MLPs of two gated layers of 300 units
    return ("hvae" if two_latent else "vae", component("encoder", "gated"),
            component("decoder", "two_latent" if two_latent else "gated"), head)
  if model == "pixel_hvae":  # the decoder's map feeds a PixelCNN (the authors' code)
    return ("hvae", component("encoder", "gated_conv"),
            component("decoder", "two_latent", conv=True, conv_layers=()),
            component("likelihood", "masked_pixelcnn", vampprior=True,
                      discretized_logistic=likelihood == "discretized_logistic"))
  return ("hvae", component("encoder", "gated_conv"),
          component("decoder", "two_latent", conv=True), head)


def vampprior_config(dataset: str, model: str, prior: str,
                     num_components: int = 0) -> ml_collections.ConfigDict:
  """A model of Section 5.1 on `dataset`; num_components 0: the paper's K for the dataset."""
  if dataset not in DATASETS or model not in MODELS or prior not in PRIORS:
    raise ValueError(f"Unknown setting ({dataset!r}, {model!r}, {prior!r}); datasets "
                     f"{DATASETS}, models {tuple(MODELS)}, priors {PRIORS}.")
  config = configuration.base_config()
  config.data.name, config.data.validation = dataset, True
  if dataset == "omniglot":
    config.data.num_validation = _OMNIGLOT_VALIDATION
  m = config.model
  m.latent_dim = _LATENT
  m.name, m.encoder, m.decoder, m.likelihood = networks(
      model, "discretized_logistic" if dataset in GRAY_DATASETS else "bernoulli")
  m.prior = prior_config(prior, num_components or default_components(dataset))
  m.min_logstd = _MIN_LOGSTD
  t = config.train
  t.optimizer, t.batch_size = "adam", _BATCH
  t.learning_rates, t.lr_boundaries = (_LEARNING_RATE,), ()
  t.num_epochs = float(_MAX_EPOCHS)
  t.kl_warmup_fraction, t.kl_warmup_start = _WARMUP_EPOCHS / _MAX_EPOCHS, 0.0
  t.l2_weight, t.grad_clip_norm = 0.0, 0.0
  t.validate_every_epochs, t.validation_samples = 1, 1
  t.early_stopping_patience_epochs = _LOOK_AHEAD_EPOCHS
  e = config.eval
  e.num_samples, e.sample_chunk, e.batch_size = IS_SAMPLES, 100, 100
  return config


def cell_name(dataset: str, model: str, prior: str, num_components: int = 0) -> str:
  name = f"{dataset}-{model}-{prior}"
  if num_components and num_components != default_components(dataset):
    name += f"-K{num_components}"
  return name


def cells() -> dict:
  """Cell name -> config factory: every dataset, model and prior of Section 5.1, and the Figure 2-3
  series of the HVAE on static MNIST over the number of components K."""
  table = {}
  for dataset in DATASETS:
    for model in MODELS:
      for prior in PRIORS:
        table[cell_name(dataset, model, prior)] = functools.partial(vampprior_config, dataset,
                                                                     model, prior)
  for prior in FIGURE_PRIORS:
    for k in FIGURE_COMPONENTS:
      table[cell_name("static_mnist", "hvae", prior, k)] = functools.partial(
          vampprior_config, "static_mnist", "hvae", prior, k)
  return table


def get_config(cell: str) -> ml_collections.ConfigDict:
  return config_files.cell_config(cells(), cell, "VampPrior")
