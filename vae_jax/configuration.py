"""The complete set of config keys, with neutral defaults, and their checks.

Files under `configs/` start from `base_config()` (a paper's files from that paper's common
settings, for example `paper_defaults()` in configs/xu2020.py) and override. The defaults are a
plain VAE: standard normal prior, no flows, no weight decay, a constant learning rate. The returned
ConfigDict is locked: a misspelt key fails at once and the error lists the keys that exist.
"""
import json

import ml_collections

from vae_jax import bounds

from vae_jax.models import factory

STRATEGIES = ("joint", "posthoc", "iterative")
OPTIMIZERS = ("adam", "adamax")


def base_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.seed = 0

  config.data = ml_collections.ConfigDict(dict(
      # digits | mnist | fashion_mnist | static_mnist | omniglot | cifar10 |
      # caltech101_silhouettes | freyfaces | histopathology
      name="digits",
      source="auto",  # auto | local | tfds | embedded
      data_dir="",  # '' -> $VAE_JAX_DATA_DIR
      tfds_data_dir="",
      tfds_manual_dir="",
      validation=False,  # hold out a validation split (50k/10k on MNIST)
      split_seed=0,
      num_validation=0,  # training images held out for validation; 0: the dataset's default
      test_binarizations=10,  # each dynamically binarized test image, 10 times (Xu et al. B.1)
      binarization_seed=0,
  ))

  config.model = ml_collections.ConfigDict(dict(
      # vae (one latent) | hvae (two: Xu et al. B.13; Tomczak & Welling 2018, L = 2) |
      # resnet_vae (IAF Appendix C; options in model.resnet_vae) | sere (options in model.sere)
      name="vae",
      # the latent's size: of z, or of each of z1 and z2 (hvae), or the channels of a latent map
      latent_dim=40,
      latent_map_side=0,  # > 0: z is a [side, side, latent_dim] map (Xu et al. B.5: 8); 0: a vector
      min_logstd=-11.0,  # lower clip of the posterior's log-std (Xu et al. 2020, B.6)
      # The parts: each a name and its module's keywords (factory.ENCODERS, DECODERS,
      # LIKELIHOODS, PRIORS, POSTERIORS; `python -m vae_jax.main --helpfull` does not list them,
      # the registries do). Networks: dense (features) | conv (layers mnist|small|cifar,
      # residual, width; Xu et al. B.2, B.5, B.7) | gated, gated_conv, two_latent (Tomczak &
      # Welling 2018) | iaf_resnet (IAF Appendix B) | none (resnet_vae, sere). Likelihoods:
      # bernoulli (project, weight_norm) | discretized_logistic (8-bit, B.5) | pixelcnn (B.2) |
      # masked_pixelcnn (VLAE; PixelHVAE) | discretized_logistic_mixture (sere).
      # Priors: standard | realnvp (num_blocks, coupling_hidden, pure; Xu et al. 2020) | af
      # (num_steps, hidden, mean_only; VLAE Section 3.2) | mog, vampprior (num_components,
      # learn_weights; vampprior also from_data, init_mean, init_std; Tomczak & Welling 2018).
      # Posteriors: gaussian | realnvp (Eq. B.1) | iaf (num_steps, hidden, location_only,
      # activation; Kingma et al. 2016).
      encoder=factory.component("encoder", "dense"),
      decoder=factory.component("decoder", "dense"),
      likelihood=factory.component("likelihood", "bernoulli"),
      prior=factory.component("prior", "standard"),
      posterior=factory.component("posterior", "gaussian"),
      # name='resnet_vae' (IAF Appendix C): stochastic layers ("ResNet depth", Tables 3-4),
      # channels of the deterministic features (160 in the paper's code; our reading), and the
      # inference direction (C.1). latent_dim is its z channels per layer (32); posterior 'iaf'
      # gives the steps and hidden channels of its masked-conv IAF.
      resnet_vae=ml_collections.ConfigDict(dict(
          layers=4, hidden=160,
          inference="bidirectional",  # bidirectional | bottom_up
      )),
  ))
  # name='sere': the Self-Reflective VAE (Apostolopoulou et al.) and its baselines, with
  # model.latent_dim latents per layer (channels of each layer's latent map for network='conv').
  # configs/serevae.py sets these per experiment and says which are the paper's and which ours.
  config.model.sere = ml_collections.ConfigDict(dict(
      layers=10,  # L stochastic layers, one image block each (4.1.1: 10; 4.2.1: 16)
      network="mlp",  # mlp (4.1.1) | resnet (4.1.2) | conv (4.2.1, latent maps over patches)
      partition="raster",  # raster blocks (4.1.1) | patches (4.2.1)
      width=256,  # hidden units (or channels) of the prior, bijector and data-layer networks
      encoder_width=256,  # of each deterministic encoder of x
      prior_feedback=True,  # p(eps_l | z_{l-1}), q(eps_l | z_{l-1}, x); else N(0, I), q(eps_l | x)
      bijector="affine",  # affine: c + (diag(d) + u u^T) eps (3.1) | none: z_l = eps_l
      bijector_feedback=True,  # f_l's c, d, u functions of z_{l-1}; else learned constants
      data_coupling=True,  # p(x_l | z_l, x_{l-1}) (residual data layers); else p(x_l | z_l)
      posterior="residual",  # residual (3.4.2) | precision_weighted (ladder VAE)
      encoder="independent",  # independent per layer (4.1.1) | bottom_up (ladder VAE)
      min_prior_scale=0.0,  # lower bound on the prior layers' sigma(z) (4.2.1: 1); 0: none
      num_mixtures=10,  # components of the discretized logistic mixture (8-bit data)
  ))

  config.train = ml_collections.ConfigDict(dict(
      num_epochs=100.0,  # may be fractional: a budget of part of an epoch
      batch_size=128,
      learning_rates=(1e-3,),  # piecewise constant, changing at lr_boundaries
      lr_boundaries=(),  # fractions of all steps
      kl_warmup_fraction=0.0,  # of all steps, over which beta rises linearly from kl_warmup_start
      kl_warmup_start=0.01,
      l2_weight=0.0,  # on kernels of non-linear layers (Xu et al. 2020, B.3: 1e-4)
      beta=1.0,  # beta-VAE (Eq. 4): the KL weight that the warm-up rises to
      reg_weight=0.0,  # weight of Reg[q(z)] (B.3); 1.0 in the paper's regularized models
      # joint | posthoc | iterative (B.3, Algorithm B.1). posthoc and iterative start from the
      # encoder and decoder of the standard-prior run in `init_from` and train the prior alone
      # (posthoc) or alternate prior and VAE phases (iterative, `iterations` of them).
      strategy="joint",
      init_from="",
      iterations=16,
      optimizer="adam",  # adam (B.3) | adamax (IAF's CIFAR-10 code; VLAE Appendix A)
      # Free bits (IAF Eq. 15): lambda nats per group (0: off), groups 'dimension' (each latent
      # unit), 'channel' (each latent feature map, IAF Appendix C.8) or 'all' (VLAE: 0.01 nats
      # per data dimension, lambda = 0.01 * 784 on MNIST). The KL warm-up applies on top.
      free_bits=0.0,
      free_bits_groups="dimension",
      polyak_decay=0.0,  # Polyak averaging of parameters for evaluation; VLAE: 0.998 (0: off)
      grad_clip_norm=100.0,  # a guard against rare huge gradients (Xu et al. 2020, Sec. 3). 0: off
      # Normalized gradients (Yu et al. 2017; VampPrior paper Section 5.1): each parameter
      # array's gradient divided by its norm before Adam.
      normalize_gradients=False,
      log_every_steps=200,
      # Optimizer steps per jitted call: > 1 runs them in a device-side loop, without per-step
      # dispatch from Python. 0: chosen per model and device (runs.Run.steps_per_call). Calls
      # end at every log, epoch end and checkpoint, so results do not depend on it.
      steps_per_call=0,
      checkpoint_every_steps=5000,
      keep_checkpoints=2,
      validate_every_epochs=0,  # B.3: 20 where early stopping is used; needs data.validation
      validation_samples=100,  # B.3: validation NLL with 100 samples
      early_stopping_patience_epochs=0,  # 0: train to the end, keep the best validated params
  ))

  config.eval = ml_collections.ConfigDict(dict(
      num_samples=1000,  # importance samples per test point
      # Samples per point evaluated at once; memory grows with this, not num_samples. 0: the
      # largest divisor of num_samples that fits in a quarter of a device's memory (a conv
      # decoder's 500 points x 100 samples would need tens of GB).
      sample_chunk=0,
      batch_size=500,  # test points per evaluation call
      test_images=0,  # evaluate the first this many test images; 0: all (the papers' protocol)
      active_unit_threshold=0.01,  # Burda et al. 2016; B.3
      # Samples per point for E_q[z|x] where it has no closed form (flow posteriors, the HVAE's
      # z1): Xu et al. (2020) B.3 use 1,000.
      active_unit_samples=1000,
      active_unit_images=0,  # training images used for active units; 0: all of them (B.3)
      num_images=64,  # samples and reconstructions in the PNG grids
      decompressions=False,  # also decompressions.png (VLAE Fig. 1a); on in the VLAE configs
  ))
  config.lock()
  return config


class ConfigError(ValueError):
  """A config value that cannot run, with the key and what to set instead."""


def _check_choice(value, valid, key):
  if value not in valid:
    raise ConfigError(f"config.{key}={value!r}; valid values: {', '.join(valid)}.")


def validate(config, num_devices: int) -> None:
  """Raises ValueError with an actionable message for an inconsistent config."""
  try:
    factory.check_choices(config.model)
  except ValueError as e:
    raise ConfigError(str(e)) from e
  _check_choice(config.train.strategy, STRATEGIES, "train.strategy")
  _check_choice(config.train.optimizer, OPTIMIZERS, "train.optimizer")
  _check_choice(config.train.free_bits_groups, bounds.FREE_BITS_GROUPS, "train.free_bits_groups")
  if config.model.prior.name == "vampprior" and config.train.strategy != "joint":
    raise ConfigError("A VampPrior shares the encoder, so it trains jointly with the VAE: set "
                      "config.train.strategy='joint'.")
  positive = {"model.latent_dim": config.model.latent_dim,
              "train.batch_size": config.train.batch_size,
              "train.num_epochs": config.train.num_epochs,
              "train.validation_samples": config.train.validation_samples,
              "eval.num_samples": config.eval.num_samples,
              "eval.batch_size": config.eval.batch_size}
  for key, value in positive.items():
    if value <= 0:
      raise ConfigError(f"config.{key}={value} must be > 0.")
  if config.model.latent_map_side < 0:
    raise ConfigError(f"config.model.latent_map_side={config.model.latent_map_side} must be >= 0.")
  if not 0 <= config.train.polyak_decay < 1:
    raise ConfigError(f"config.train.polyak_decay={config.train.polyak_decay} must be in [0, 1).")
  train, evaluation = config.train, config.eval
  if train.batch_size % num_devices:
    raise ConfigError(f"config.train.batch_size={train.batch_size} must be divisible by the "
                      f"number of devices ({num_devices}).")
  if evaluation.batch_size % num_devices:
    raise ConfigError(f"config.eval.batch_size={evaluation.batch_size} must be divisible by the "
                      f"number of devices ({num_devices}).")
  if evaluation.sample_chunk < 0:
    raise ConfigError(f"config.eval.sample_chunk={evaluation.sample_chunk} must be >= 0.")
  for key, num_samples in (("eval.num_samples", evaluation.num_samples),
                           ("train.validation_samples", train.validation_samples)):
    if evaluation.sample_chunk and num_samples % min(num_samples, evaluation.sample_chunk):
      raise ConfigError(f"config.{key}={num_samples} must be a multiple of "
                        f"config.eval.sample_chunk={evaluation.sample_chunk}, or smaller than it.")
  if train.steps_per_call < 0:
    raise ConfigError(f"config.train.steps_per_call={train.steps_per_call} must be >= 0 "
                      "(0: chosen per model and device).")
  for key in ("log_every_steps", "checkpoint_every_steps"):
    if train[key] < 1:
      raise ConfigError(f"config.train.{key}={train[key]} must be >= 1.")
  if len(train.learning_rates) != len(train.lr_boundaries) + 1:
    raise ConfigError("config.train.learning_rates needs one more entry than lr_boundaries.")
  if train.validate_every_epochs and not config.data.validation:
    raise ConfigError("config.train.validate_every_epochs > 0 needs config.data.validation=True.")


def to_json(config) -> str:
  return config.to_json(indent=2, sort_keys=True)


def from_json(text: str) -> ml_collections.ConfigDict:
  """A config saved by `to_json`, restored over `base_config()` so every key is checked; one
  saved before issue #20 (model.architecture, model.prior a name, flow_depth, ...) is converted
  (`upgrade_model`)."""
  tree = json.loads(text)
  model = upgrade_model(tree.pop("model", {}))
  config = base_config()
  for kind in factory.COMPONENTS:
    if kind in model:
      config.model[kind] = factory.component(kind, **model.pop(kind))
  config.update_from_flattened_dict(flatten({**tree, "model": model}))
  return config


# The keys of model.prior and model.posterior before issue #20, with their defaults then (older
# config.json files lack the keys added later).
_OLD_COMPONENT_KEYS = dict(flow_depth=20, flow_type="full", coupling_hidden=256,
                           af_hidden=(640, 640, 640), af_mean_only=True, num_components=500,
                           learn_prior_weights=False, pseudo_input_mean=0.05,
                           pseudo_input_std=0.01, posterior_flow="realnvp", posterior_flow_depth=0,
                           iaf_hidden=(320, 320), iaf_location_only=False)


def upgrade_model(model: dict) -> dict:
  """A config.json's `model` tree in today's form (`_upgrade_components`, then
  `_upgrade_architecture`)."""
  return _upgrade_architecture(_upgrade_components(model))


def _upgrade_components(model: dict) -> dict:
  """Before issue #20, `prior` was a name with its options spread over the model's keys
  (flow_depth was the RealNVP's K or the AF's steps), and the posterior flow was
  `posterior_flow` with `posterior_flow_depth` (0: Gaussian)."""
  if not isinstance(model.get("prior"), str):
    return dict(model)
  old = {**_OLD_COMPONENT_KEYS, **model}
  new = {k: v for k, v in model.items() if k not in _OLD_COMPONENT_KEYS}
  realnvp = dict(coupling_hidden=old["coupling_hidden"], pure=old["flow_type"] == "pure")
  prior = old["prior"]
  if prior == "realnvp":
    new["prior"] = dict(name="realnvp", num_blocks=old["flow_depth"], **realnvp)
  elif prior == "af":
    new["prior"] = dict(name="af", num_steps=old["flow_depth"], hidden=old["af_hidden"],
                        mean_only=old["af_mean_only"])
  elif prior == "mog":
    new["prior"] = dict(name="mog", num_components=old["num_components"],
                        learn_weights=old["learn_prior_weights"])
  elif prior in ("vampprior", "vampprior_data"):
    new["prior"] = dict(name="vampprior", num_components=old["num_components"],
                        learn_weights=old["learn_prior_weights"],
                        from_data=prior == "vampprior_data", init_mean=old["pseudo_input_mean"],
                        init_std=old["pseudo_input_std"])
  else:
    new["prior"] = dict(name=prior)
  depth = old["posterior_flow_depth"]
  if not depth:
    new["posterior"] = dict(name="gaussian")
  elif old["posterior_flow"] == "realnvp":
    new["posterior"] = dict(name="realnvp", num_blocks=depth, **realnvp)
  else:
    new["posterior"] = dict(name="iaf", num_steps=depth, hidden=old["iaf_hidden"],
                            location_only=old["iaf_location_only"])
  return new


# architecture -> (model name, encoder, decoder), the networks it chose before issue #20.
_DENSE = dict(name="dense")  # features: the old hidden_units
_MNIST_CONV = dict(name="conv", layers="mnist", residual=True)
_OLD_ARCHITECTURES = {
    "dense": ("vae", _DENSE, _DENSE),
    "conv": ("vae", dict(_MNIST_CONV, residual=False), dict(_MNIST_CONV, residual=False)),
    "resnet": ("vae", _MNIST_CONV, _MNIST_CONV), "pixel": ("vae", _MNIST_CONV, _MNIST_CONV),
    "resnet_small": ("vae", dict(_MNIST_CONV, layers="small"), dict(_MNIST_CONV, layers="small")),
    "resnet_hvae": ("hvae", _MNIST_CONV, _MNIST_CONV),
    "resnet_cifar": ("vae", dict(name="conv", layers="cifar"), dict(name="conv", layers="cifar")),
    "iaf_resnet": ("vae", dict(name="iaf_resnet"), dict(name="iaf_resnet")),
    "vlae": ("vae", dict(name="iaf_resnet"), dict(name="iaf_resnet")),
    "gated_dense": ("vae", dict(name="gated"), dict(name="gated")),
    "hvae": ("hvae", dict(name="gated"), dict(name="two_latent", conv=False)),
    "conv_hvae": ("hvae", dict(name="gated_conv"), dict(name="two_latent", conv=True)),
    "pixel_hvae": ("hvae", dict(name="gated_conv"), dict(name="two_latent", conv=True,
                                                           conv_layers=())),
    "resnet_vae": ("resnet_vae", dict(name="none"), dict(name="none")),
    "sere": ("sere", dict(name="none"), dict(name="none")),
}


def _upgrade_architecture(model: dict) -> dict:
  """Before issue #20 part 2, `architecture` chose the networks and, with `likelihood` (a name),
  the likelihood head; `hidden_units` were the dense networks' layers, `width` the CIFAR-10
  ResnetVAE's channel fraction, and resnet_vae's options were `resnet_vae_*` and `inference`."""
  if "architecture" not in model:
    return model
  defaults = dict(hidden_units=(500, 500), width=1.0, likelihood="bernoulli",
                  resnet_vae_layers=4, resnet_vae_hidden=160, inference="bidirectional")
  old = {**defaults, **model}
  new = {k: v for k, v in model.items() if k not in defaults and k != "architecture"}
  architecture, likelihood = old["architecture"], old["likelihood"]
  new["name"], encoder, decoder = _OLD_ARCHITECTURES[architecture]
  networks = {"dense": dict(features=old["hidden_units"]), "conv": {}}
  if architecture == "resnet_cifar":
    networks["conv"] = dict(width=old["width"])
    new["latent_map_side"] = 8
  new["encoder"] = dict(encoder, **networks.get(encoder["name"], {}))
  new["decoder"] = dict(decoder, **networks.get(decoder["name"], {}))
  if architecture == "pixel_hvae":
    new["likelihood"] = dict(name="masked_pixelcnn", vampprior=True,
                             discretized_logistic=likelihood == "discretized_logistic")
  elif likelihood != "bernoulli" or architecture in ("sere", "resnet_vae"):
    new["likelihood"] = dict(name=likelihood)
  elif architecture == "pixel":
    new["likelihood"] = dict(name="pixelcnn")
  elif architecture == "vlae":
    new["likelihood"] = dict(name="masked_pixelcnn")
  else:
    new["likelihood"] = dict(name="bernoulli",
                             project=architecture not in ("dense", "gated_dense", "hvae"),
                             weight_norm=architecture == "iaf_resnet")
  new["resnet_vae"] = dict(layers=old["resnet_vae_layers"], hidden=old["resnet_vae_hidden"],
                           inference=old["inference"])
  return new


def networks_label(model: dict) -> str:
  """A config.json's model networks in a word or two for results tables: the `architecture` of a
  config from before issue #20 part 2 (so archived tables stay as they were), else the model
  and its encoder/decoder, e.g. 'vae[conv]', 'hvae[gated/two_latent]', 'sere'."""
  if "architecture" in model:
    return model["architecture"]
  model = upgrade_model(model)
  encoder, decoder = model["encoder"]["name"], model["decoder"]["name"]
  if encoder == "none":
    return model["name"]
  return f"{model['name']}[{encoder if encoder == decoder else f'{encoder}/{decoder}'}]"


def flatten(tree, prefix=""):
  flat = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      flat.update(flatten(value, f"{prefix}{key}."))
    else:
      flat[f"{prefix}{key}"] = tuple(value) if isinstance(value, list) else value
  return flat
