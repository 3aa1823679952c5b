"""Builds a model from `config.model` and the data's image shape (Xu et al. 2020, B.2, B.5, B.13;
Kingma et al. 2016; Chen et al. 2017; Tomczak & Welling 2018, Section 5.1)."""
import dataclasses
import inspect
from typing import Sequence

import ml_collections

from vae_jax import flows, nets, priors
from vae_jax.models import heads
from vae_jax.models.hvae import HierarchicalVAE
from vae_jax.models.resnet_vae import ResNetVAE
from vae_jax.models import sere_vae
from vae_jax.flows.autoregressive import IAF
from vae_jax.models.vae import VAE
from vae_jax.nets import conv, gated, iaf_resnet
from vae_jax.nets.dense import MLP

# The model classes of config.model.name: a VAE with one latent (Xu et al. 2020; IAF, VLAE;
# VampPrior L = 1), a two-level HVAE (Xu et al. B.13; VampPrior L = 2), the ResNet VAE of IAF
# Appendix C and the Self-Reflective VAE. The last two have their own networks and likelihood
# heads: their encoder and decoder are 'none', their options in config.model.resnet_vae / .sere.
MODELS = ("vae", "hvae", "resnet_vae", "sere")
_OWN_NETWORKS = ("resnet_vae", "sere")
INFERENCE = ("bidirectional", "bottom_up")

# Components chosen by a config sub-tree {name, **kwargs}: the module (or the function building
# it) of each name, called as Module(**kwargs, **context), where the context is the shapes that
# the model supplies and the module declares. A new prior is its module and one line here.
# "gaussian": the posterior without a flow; "none": no separate network (see MODELS).
PRIORS = {"standard": priors.StandardNormalPrior, "realnvp": priors.RealNVPPrior,
          "af": priors.AutoregressiveFlowPrior, "mog": priors.MixtureOfGaussiansPrior,
          "vampprior": priors.VampPrior}
POSTERIORS = {"gaussian": None, "realnvp": flows.RealNVP, "iaf": IAF}
ENCODERS = {"dense": nets.DenseEncoder, "conv": conv.encoder, "gated": gated.image_encoder,
            "gated_conv": gated.conv_image_encoder, "iaf_resnet": iaf_resnet.IAFResnetEncoder,
            "none": None}
DECODERS = {"dense": nets.DenseDecoder, "conv": conv.decoder, "gated": gated.GatedDecoder,
            "two_latent": gated.TwoLatentDecoder, "iaf_resnet": iaf_resnet.IAFResnetDecoder,
            "none": None}
# p(x|z) given the decoder's features. bernoulli and discretized_logistic: Xu et al. (2020) B.2,
# B.5; pixelcnn: their PixelVAE (B.2); masked_pixelcnn: VLAE's (Chen et al. 2017) and the
# PixelHVAE's (Tomczak & Welling 2018); discretized_logistic_mixture: PixelCNN++'s mixture, which
# only the SeRe-VAE's own networks model (4.2.1).
LIKELIHOODS = {"bernoulli": heads.BernoulliHead,
               "discretized_logistic": heads.DiscretizedLogisticHead,
               "pixelcnn": heads.PixelCNNHead, "masked_pixelcnn": heads.MaskedPixelCNNHead,
               "discretized_logistic_mixture": None}
COMPONENTS = {"encoder": ENCODERS, "decoder": DECODERS, "likelihood": LIKELIHOODS,
              "prior": PRIORS, "posterior": POSTERIORS}
_CONTEXT = ("latent_shape", "latent_dim", "image_shape", "event_ndims", "channels",
            "out_channels", "parent", "name")


def _choice(value, valid, key):
  if value not in valid:
    raise ValueError(f"config.model.{key}={value!r}; valid values: {', '.join(valid)}.")


def _parameters(builder) -> dict:
  """{keyword: default or inspect.Parameter.empty} of a module's fields or a function's."""
  if dataclasses.is_dataclass(builder):
    return {f.name: (inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default)
            for f in dataclasses.fields(builder)}
  return {k: v.default for k, v in inspect.signature(builder).parameters.items()}


def component_options(kind: str, name: str) -> dict:
  """{keyword: default, or inspect.Parameter.empty where the config must give it} of a
  component: its module's (or builder's) keywords other than the shapes the model supplies."""
  builder = COMPONENTS[kind][name]
  return {} if builder is None else {k: v for k, v in _parameters(builder).items()
                                     if k not in _CONTEXT}


def check_component(kind: str, tree) -> None:
  """Raises ValueError unless `tree` names a registered `kind` with only its keywords."""
  name = tree.get("name")
  _choice(name, tuple(COMPONENTS[kind]), f"{kind}.name")
  options = component_options(kind, name)
  unknown = sorted(set(tree) - {"name"} - set(options))
  missing = sorted(k for k, v in options.items() if v is inspect.Parameter.empty and k not in tree)
  if unknown or missing:
    raise ValueError(f"config.model.{kind} {name!r} takes {', '.join(options) or 'no options'}"
                     + (f"; not {', '.join(unknown)}" if unknown else "")
                     + (f"; it needs {', '.join(missing)}" if missing else "") + ".")
  for key, value in tree.items():
    if key.startswith("num_") and value < 1:
      raise ValueError(f"config.model.{kind}.{key}={value} must be >= 1.")
    if key in ("features", "width") and any(v <= 0 for v in _flat(value)):
      raise ValueError(f"config.model.{kind}.{key}={value} must be > 0.")


def _flat(value):
  return [v for item in value for v in _flat(item)] if isinstance(value, (tuple, list)) else [value]


def check_choices(model_config) -> None:
  """The one place where the model's choices are checked (config validation and create_model)."""
  _choice(model_config.name, MODELS, "name")
  _choice(model_config.resnet_vae.inference, INFERENCE, "resnet_vae.inference")
  for kind in COMPONENTS:
    check_component(kind, model_config[kind])
  own = model_config.name in _OWN_NETWORKS
  for kind in ("encoder", "decoder"):
    if own != (model_config[kind].name == "none"):
      raise ValueError(f"config.model.{kind}.name={model_config[kind].name!r}: "
                       + (f"the {model_config.name} model has its own networks; set it to 'none'."
                          if own else f"the {model_config.name} model needs one; 'none' is for "
                          f"{' and '.join(_OWN_NETWORKS)}."))
  if not own and LIKELIHOODS[model_config.likelihood.name] is None:
    raise ValueError(f"config.model.likelihood.name={model_config.likelihood.name!r} is the "
                     "SeRe-VAE's (config.model.name='sere'); use 'discretized_logistic' here.")


def component(kind: str, name: str, **kwargs) -> ml_collections.ConfigDict:
  """The config sub-tree of a component: its name and every keyword of its module, with the
  module's defaults where `kwargs` gives none; locked, so a misspelt key fails."""
  check_component(kind, {"name": name, **kwargs})
  options = {k: v for k, v in component_options(kind, name).items()
             if v is not inspect.Parameter.empty}
  tree = ml_collections.ConfigDict({"name": name, **options,
                                    **{k: _tuples(v) for k, v in kwargs.items()}})
  tree.lock()
  return tree


def _tuples(value):
  """JSON lists back to the tuples that the modules take (nested: layer specifications)."""
  return tuple(map(_tuples, value)) if isinstance(value, (tuple, list)) else value


def _build(kind: str, tree, **context):
  """The component of `tree`, given the parts of `context` (shapes) that its module declares."""
  check_component(kind, tree)
  builder = COMPONENTS[kind][tree["name"]]
  declared = _parameters(builder)
  return builder(**{k: _tuples(v) for k, v in tree.items() if k != "name"},
                 **{k: v for k, v in context.items() if k in declared})


def latent_shape(model_config) -> tuple:
  """(latent_dim,), or [S, S, latent_dim] for a latent map of side S (B.5: 8)."""
  side = model_config.latent_map_side
  return (side, side, model_config.latent_dim) if side else (model_config.latent_dim,)


def binary_pixels(model_config) -> bool:
  """Whether the likelihood is over binary pixels (else 8-bit)."""
  likelihood = model_config.likelihood
  return (likelihood.name in ("bernoulli", "pixelcnn")
          or (likelihood.name == "masked_pixelcnn" and not likelihood.discretized_logistic))


def convolutional(model_config) -> bool:
  """Whether the model convolves (for the device-loop choice of runs.Run.steps_per_call)."""
  dense = (model_config.name in ("vae", "hvae")
           and model_config.encoder.name in ("dense", "gated")
           and model_config.decoder.name in ("dense", "gated", "two_latent")
           and not model_config.decoder.get("conv", False)
           and model_config.likelihood.name in ("bernoulli", "discretized_logistic"))
  return not dense


def create_prior(model_config, image_shape=None):
  """p(z) (p(z2) for the two-level models); `image_shape` sizes a VampPrior's pseudo-inputs."""
  prior = model_config.prior
  shape = latent_shape(model_config)
  if "latent_dim" in _parameters(PRIORS[prior.name]) and len(shape) != 1:
    raise ValueError(f"config.model.prior {prior.name!r} is over a latent vector; "
                     f"the model has a latent tensor {shape}.")
  return _build("prior", prior, latent_shape=shape, latent_dim=shape[-1], image_shape=image_shape)


def _networks(model_config, image_shape):
  """(encoder, decoder, likelihood head) of config.model.{encoder, decoder, likelihood}."""
  channels = image_shape[-1]
  likelihood = model_config.likelihood
  if likelihood.name == "masked_pixelcnn" and likelihood.vampprior and channels != 1:
    raise ValueError(f"The PixelHVAE's PixelCNN is for one-channel images; the data have "
                     f"{channels}.")
  # A dense decoder's per-pixel outputs: the Bernoulli logits, or the 2 maps per channel that
  # the discretized logistic head mixes into its location and log-scale.
  out_channels = 2 * channels if likelihood.name == "discretized_logistic" else channels
  context = dict(image_shape=image_shape, latent_dim=model_config.latent_dim,
                 channels=channels, out_channels=out_channels)
  return (_build("encoder", model_config.encoder, **context),
          _build("decoder", model_config.decoder, **context),
          _build("likelihood", likelihood, **context))


def create_model(model_config, image_shape: Sequence[int]):
  check_choices(model_config)
  image_shape = tuple(image_shape)
  if model_config.name == "resnet_vae":
    return _resnet_vae(model_config, image_shape)
  if model_config.name == "sere":
    return _sere_vae(model_config, image_shape)
  if model_config.prior.name == "vampprior" and model_config.posterior.name != "gaussian":
    raise ValueError("The VampPrior's components are the Gaussian posteriors q(z|u_k): set "
                     "config.model.posterior.name='gaussian'.")
  encoder, decoder, head = _networks(model_config, image_shape)
  prior = create_prior(model_config, image_shape)
  if model_config.name == "hvae":
    return _hvae(model_config, image_shape, encoder, decoder, head, prior)
  shape = latent_shape(model_config)
  return VAE(encoder=encoder, decoder=decoder, head=head, prior=prior, latent_shape=shape,
             min_logstd=model_config.min_logstd, posterior_flow=_posterior_flow(model_config, shape))


def _posterior_flow(model_config, shape):
  """None (Gaussian q), a RealNVP (Xu et al. 2020, Eq. B.1) or an IAF (Kingma et al. 2016)."""
  posterior = model_config.posterior
  if posterior.name == "gaussian":
    return None
  if posterior.name == "realnvp":
    return _build("posterior", posterior, event_ndims=len(shape))
  if len(shape) != 1:
    raise ValueError("config.model.posterior 'iaf' (a MADE over a latent vector) needs a latent "
                     f"vector; the model has a latent tensor {shape}.")
  return _build("posterior", posterior)


def _hvae(model_config, image_shape, encoder, decoder, head, prior):
  """Two latents: the ResnetHVAE of Xu et al. (2020) B.13 (a 'conv' encoder) or the HVAE,
  ConvHVAE, PixelHVAE (L = 2) of Tomczak & Welling (2018), Eq. (10)-(15), Section 5.1 ('gated'
  or 'gated_conv' encoder). The encoder's kind chooses the networks that join x and z2."""
  if model_config.posterior.name != "gaussian":
    raise ValueError("The two-level VAEs have Gaussian posteriors: set "
                     "config.model.posterior.name='gaussian'.")
  latent = model_config.latent_dim
  kind = model_config.encoder.name
  if kind == "conv":
    # B.13: t(x) = h(x) -> Dense[150 -> 150], u(z2) = z2 -> Dense[150 -> 150],
    # g(x, z2) = Concat[t, u] -> Dense[300], and t_theta(z2) = z2 -> Dense[150 -> 150].
    return HierarchicalVAE(encoder=encoder, decoder=decoder, head=head, prior=prior,
                           t_x=MLP((150, 150)), u_z2=MLP((150, 150)), g=MLP((300,)),
                           t_z2=MLP((150, 150)), t_x_reads_features=True, latent_dim=latent,
                           min_logstd=model_config.min_logstd)
  width = gated.MLP_WIDTH
  if kind == "gated":
    # q(z1|x, z2)'s x and z2 branches and joint layer: gated layers of 300.
    t_x, u_z2 = gated.GatedMLP((width,), flatten_dims=3), gated.GatedMLP((width,))
  elif kind == "gated_conv":
    # The authors' convHVAE_2level: gated convolutions read x for q(z1|x, z2) too, whose z2
    # branch has as many units as the flattened x features.
    t_x = gated.GatedConvNet(gated.CONV_ENCODER_Z1)
    reduced = (-(-image_shape[0] // 4), -(-image_shape[1] // 4), gated.CONV_ENCODER_Z1[-1][0])
    u_z2 = gated.GatedMLP((reduced[0] * reduced[1] * reduced[2],))
  else:
    raise ValueError(f"config.model.encoder.name={kind!r}: the two-level VAEs read x with a "
                     "'conv' (Xu et al. B.13), 'gated' or 'gated_conv' encoder.")
  return HierarchicalVAE(encoder=encoder, decoder=decoder, head=head, prior=prior, t_x=t_x,
                         u_z2=u_z2, g=gated.GatedMLP((width,)), t_z2=gated.GatedMLP(),
                         latent_dim=latent, min_logstd=model_config.min_logstd)


def _resnet_vae(model_config, image_shape):
  """The ResNet VAE of IAF Appendix C: its own priors (top-down) and likelihood."""
  if (model_config.likelihood.name != "discretized_logistic"
      or model_config.prior.name != "standard"):
    raise ValueError("The resnet_vae model (IAF Appendix C) has its own hierarchical prior and a "
                     "discretized logistic likelihood: set config.model.prior.name='standard' "
                     "and config.model.likelihood.name='discretized_logistic'.")
  posterior = model_config.posterior
  if posterior.name == "realnvp" or posterior.get("activation", "elu") != "elu":
    raise ValueError("The resnet_vae posteriors are Gaussian or an IAF of ELU MADEs (C.1): set "
                     "config.model.posterior.name to 'gaussian' or 'iaf' (activation 'elu').")
  iaf = posterior.name == "iaf"
  if image_shape[0] % 2 or image_shape[1] % 2:
    raise ValueError(f"resnet_vae subsamples by 2 (C.4): image sides must be even, not "
                     f"{image_shape}.")
  options = model_config.resnet_vae
  return ResNetVAE(num_layers=options.layers, hidden=options.hidden,
                   latent_channels=model_config.latent_dim,
                   bidirectional=options.inference == "bidirectional",
                   iaf_steps=posterior.num_steps if iaf else 0,
                   iaf_hidden=tuple(posterior.hidden) if iaf else (),
                   location_only=iaf and posterior.location_only, image_shape=image_shape,
                   min_logstd=model_config.min_logstd)


def _sere_vae(model_config, image_shape):
  """The Self-Reflective VAE (Apostolopoulou et al.) or its baselines: config.model.sere."""
  sere = model_config.sere
  for key, valid in (("network", sere_vae.NETWORKS), ("partition", sere_vae.PARTITIONS),
                     ("bijector", sere_vae.BIJECTORS), ("posterior", sere_vae.POSTERIORS),
                     ("encoder", sere_vae.ENCODERS)):
    _choice(sere[key], valid, f"sere.{key}")
  if model_config.likelihood.name not in sere_vae.PIXEL_LIKELIHOODS:
    raise ValueError("The SeRe-VAE models pixels as Bernoulli or with a mixture of discretized "
                     "logistics: set config.model.likelihood to 'bernoulli' or "
                     "'discretized_logistic_mixture'.")
  if model_config.prior.name != "standard" or model_config.posterior.name != "gaussian":
    raise ValueError("The SeRe-VAE has its own hierarchical prior and posterior layers: set "
                     "config.model.prior.name='standard' and config.model.posterior.name="
                     "'gaussian'.")
  if sere.network in ("resnet", "mlp") and sere.partition != "raster":
    raise ValueError(f"config.model.sere.network={sere.network!r} generates raster blocks of "
                     "pixels (4.1); patches go with network='conv' (4.2.1).")
  if sere.network == "conv" and sere.partition != "patches":
    raise ValueError("config.model.sere.network='conv' generates each patch from a latent map "
                     "on the patch's grid (4.2.1): set config.model.sere.partition='patches'.")
  if sere.network == "resnet" and (image_shape[0] % 4 or image_shape[1] % 4):
    raise ValueError(f"The resnet SeRe-VAE encoder halves the image twice; {image_shape} does not "
                     "divide by 4.")
  sere_vae.block_partition(image_shape, sere.layers, sere.partition)  # checks the partition
  return sere_vae.SelfReflectiveVAE(
      image_shape=image_shape, num_layers=sere.layers, latent_dim=model_config.latent_dim,
      network=sere.network, partition=sere.partition, width=sere.width,
      encoder_width=sere.encoder_width, prior_feedback=sere.prior_feedback,
      bijector=sere.bijector, bijector_feedback=sere.bijector_feedback,
      data_coupling=sere.data_coupling, posterior=sere.posterior, encoder=sere.encoder,
      min_prior_scale=sere.min_prior_scale, likelihood=model_config.likelihood.name,
      num_mixtures=sere.num_mixtures, min_logstd=model_config.min_logstd)
