"""Builds a model from `config.model` and the data's image shape (Xu et al. 2020, B.2, B.5, B.13;
Kingma et al. 2016; Chen et al. 2017; Tomczak & Welling 2018, Section 5.1)."""
import dataclasses
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

ARCHITECTURES = ("dense", "conv", "resnet", "resnet_small", "pixel", "resnet_hvae", "resnet_cifar",
                 "iaf_resnet", "vlae", "resnet_vae", "gated_dense", "hvae", "conv_hvae",
                 "pixel_hvae", "sere")
# Architectures without convolutions.
DENSE_ARCHITECTURES = ("dense", "gated_dense", "hvae")
# The two-level models of Tomczak & Welling (2018): HVAE, ConvHVAE, PixelHVAE.
_VAMPPRIOR_HVAES = ("hvae", "conv_hvae", "pixel_hvae")
INFERENCE = ("bidirectional", "bottom_up")
# discretized_logistic_mixture: PixelCNN++'s mixture, for the SeRe-VAE's CIFAR-10 model (4.2.1).
LIKELIHOODS = ("bernoulli", "discretized_logistic", "discretized_logistic_mixture")
# B.5: the CIFAR-10 latent is an 8 x 8 x C tensor.
_CIFAR_LATENT_SIZE = 8

# Components chosen by a config sub-tree {name, **kwargs}: the module of each name, built as
# Module(**kwargs, **context) where the model supplies the context (shapes). A new prior is its
# module and one line here. "gaussian": the posterior without a flow.
PRIORS = {"standard": priors.StandardNormalPrior, "realnvp": priors.RealNVPPrior,
          "af": priors.AutoregressiveFlowPrior, "mog": priors.MixtureOfGaussiansPrior,
          "vampprior": priors.VampPrior}
POSTERIORS = {"gaussian": None, "realnvp": flows.RealNVP, "iaf": IAF}
COMPONENTS = {"prior": PRIORS, "posterior": POSTERIORS}
_CONTEXT = ("latent_shape", "latent_dim", "image_shape", "event_ndims", "parent", "name")


def _choice(value, valid, key):
  if value not in valid:
    raise ValueError(f"config.model.{key}={value!r}; valid values: {', '.join(valid)}.")


def component_options(kind: str, name: str) -> dict:
  """{keyword: default, or dataclasses.MISSING where the config must give it} of a component."""
  module = COMPONENTS[kind][name]
  return {} if module is None else {f.name: f.default for f in dataclasses.fields(module)
                                    if f.name not in _CONTEXT}


def check_component(kind: str, tree) -> None:
  """Raises ValueError unless `tree` names a registered `kind` with only its keywords."""
  name = tree.get("name")
  _choice(name, tuple(COMPONENTS[kind]), f"{kind}.name")
  options = component_options(kind, name)
  unknown = sorted(set(tree) - {"name"} - set(options))
  missing = sorted(k for k, v in options.items() if v is dataclasses.MISSING and k not in tree)
  if unknown or missing:
    raise ValueError(f"config.model.{kind} {name!r} takes {', '.join(options) or 'no options'}"
                     + (f"; not {', '.join(unknown)}" if unknown else "")
                     + (f"; it needs {', '.join(missing)}" if missing else "") + ".")
  for key, value in tree.items():
    if key.startswith("num_") and value < 1:
      raise ValueError(f"config.model.{kind}.{key}={value} must be >= 1.")


def check_choices(model_config) -> None:
  """The one place where the model's choices are checked (config validation and create_model)."""
  _choice(model_config.architecture, ARCHITECTURES, "architecture")
  _choice(model_config.likelihood, LIKELIHOODS, "likelihood")
  _choice(model_config.inference, INFERENCE, "inference")
  for kind in COMPONENTS:
    check_component(kind, model_config[kind])


def component(kind: str, name: str, **kwargs) -> ml_collections.ConfigDict:
  """The config sub-tree of a prior or posterior: its name and every keyword of its module, with
  the module's defaults where `kwargs` gives none; locked, so a misspelt key fails."""
  check_component(kind, {"name": name, **kwargs})
  options = {k: v for k, v in component_options(kind, name).items()
             if v is not dataclasses.MISSING}
  tree = ml_collections.ConfigDict({"name": name, **options, **kwargs})
  tree.lock()
  return tree


def _fields(kind: str, name: str) -> set:
  return {f.name for f in dataclasses.fields(COMPONENTS[kind][name])}


def _build(kind: str, tree, **context):
  """The component of `tree`, given the parts of `context` (shapes) that its module declares."""
  check_component(kind, tree)
  kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in tree.items() if k != "name"}
  fields = _fields(kind, tree["name"])
  return COMPONENTS[kind][tree["name"]](**kwargs,
                                        **{k: v for k, v in context.items() if k in fields})


def latent_shape(model_config) -> tuple:
  if model_config.architecture == "resnet_cifar":
    return (_CIFAR_LATENT_SIZE, _CIFAR_LATENT_SIZE, model_config.latent_dim)
  return (model_config.latent_dim,)


def create_prior(model_config, image_shape=None):
  """p(z) (p(z2) for the two-level models); `image_shape` sizes a VampPrior's pseudo-inputs."""
  prior = model_config.prior
  shape = latent_shape(model_config)
  if "latent_dim" in _fields("prior", prior.name) and len(shape) != 1:
    raise ValueError(f"config.model.prior {prior.name!r} is over a latent vector; "
                     f"{model_config.architecture} has a latent tensor {shape}.")
  return _build("prior", prior, latent_shape=shape, latent_dim=shape[-1], image_shape=image_shape)


def _networks(architecture: str, image_shape, width: float = 1.0):
  """(encoder, decoder) of B.2 / B.5 for a convolutional architecture; B.5's channel counts
  multiplied by `width`."""
  residual = architecture != "conv"
  if architecture == "resnet_cifar":  # full-rank resampling shortcuts: issue #17, ResidualBlock
    return (conv.ConvEncoder(conv.scale_channels(conv.CIFAR_ENCODER_SHAPES, width), residual,
                             flatten=False, full_rank_shortcuts=True),
            conv.ConvDecoder(conv.scale_channels(conv.CIFAR_DECODER_SHAPES, width), residual,
                             unflatten_shape=None, full_rank_shortcuts=True))
  if tuple(image_shape[:2]) != (28, 28):
    raise ValueError(f"The {architecture} architecture of B.2 is for 28x28 images; the data are "
                     f"{tuple(image_shape)}. Use architecture 'dense' for other sizes.")
  if architecture == "resnet_small":
    return (conv.ConvEncoder(conv.SMALL_ENCODER_SHAPES, residual),
            conv.ConvDecoder(conv.SMALL_DECODER_SHAPES, residual, conv.MNIST_DECODER_UNFLATTEN))
  return (conv.ConvEncoder(conv.MNIST_ENCODER_SHAPES, residual),
          conv.ConvDecoder(conv.MNIST_DECODER_SHAPES, residual, conv.MNIST_DECODER_UNFLATTEN))


def _head(model_config, image_shape):
  channels = image_shape[-1]
  logistic = model_config.likelihood == "discretized_logistic"
  if model_config.architecture == "pixel_hvae":
    if channels != 1:
      raise ValueError(f"pixel_hvae's PixelCNN is for one-channel images; the data have {channels}.")
    return heads.MaskedPixelCNNHead(vampprior=True, discretized_logistic=logistic)
  if logistic:
    return heads.DiscretizedLogisticHead(channels)
  if model_config.architecture == "pixel":
    return heads.PixelCNNHead()
  if model_config.architecture == "vlae":
    return heads.MaskedPixelCNNHead()
  return heads.BernoulliHead(channels,
                             project=model_config.architecture not in DENSE_ARCHITECTURES,
                             weight_norm=model_config.architecture == "iaf_resnet")


def create_model(model_config, image_shape: Sequence[int]):
  check_choices(model_config)
  architecture = model_config.architecture
  image_shape = tuple(image_shape)
  if architecture == "resnet_vae":
    return _resnet_vae(model_config, image_shape)
  if architecture == "sere":
    return _sere_vae(model_config, image_shape)
  if model_config.likelihood == "discretized_logistic_mixture":
    raise ValueError("config.model.likelihood='discretized_logistic_mixture' is the SeRe-VAE's "
                     "(architecture 'sere'); use 'discretized_logistic' here.")
  if model_config.prior.name == "vampprior" and model_config.posterior.name != "gaussian":
    raise ValueError("The VampPrior's components are the Gaussian posteriors q(z|u_k): set "
                     "config.model.posterior.name='gaussian'.")
  if architecture in _VAMPPRIOR_HVAES:
    return _vampprior_hvae(model_config, image_shape)
  head, prior = _head(model_config, image_shape), create_prior(model_config, image_shape)
  if architecture == "gated_dense":
    # Section 5.1: q and p of the VAE (L = 1) are MLPs of two gated layers of 300 units.
    encoder = gated.GatedMLP(flatten_dims=3)
    decoder = gated.GatedDecoder(image_shape, _decoder_channels(model_config, image_shape))
  elif architecture == "dense":
    hidden = tuple(model_config.hidden_units)
    encoder = nets.DenseEncoder(hidden)
    decoder = nets.DenseDecoder(image_shape, hidden)
  elif architecture in ("iaf_resnet", "vlae"):
    if tuple(image_shape[:2]) != (28, 28):
      raise ValueError(f"The {architecture} networks (IAF Appendix B) are for 28x28 images; the "
                       f"data are {image_shape}.")
    encoder, decoder = iaf_resnet.IAFResnetEncoder(), iaf_resnet.IAFResnetDecoder()
  else:
    # PixelVAE and ResnetHVAE use the ResnetVAE networks (B.2, B.13).
    encoder, decoder = _networks(
        "resnet" if architecture in ("pixel", "resnet_hvae") else architecture, image_shape,
        model_config.width)
  if architecture == "resnet_hvae":
    if model_config.posterior.name != "gaussian":
      raise ValueError("The ResnetHVAE of B.13 has Gaussian posteriors: set "
                       "config.model.posterior.name='gaussian'.")
    # B.13: t(x) = h(x) -> Dense[150 -> 150], u(z2) = z2 -> Dense[150 -> 150],
    # g(x, z2) = Concat[t, u] -> Dense[300], and t_theta(z2) = z2 -> Dense[150 -> 150].
    return HierarchicalVAE(encoder=encoder, decoder=decoder, head=head, prior=prior,
                           t_x=MLP((150, 150)), u_z2=MLP((150, 150)), g=MLP((300,)),
                           t_z2=MLP((150, 150)), t_x_reads_features=True,
                           latent_dim=model_config.latent_dim, min_logstd=model_config.min_logstd)
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
                     f"vector; {model_config.architecture} has a latent tensor {shape}.")
  return _build("posterior", posterior)


def _resnet_vae(model_config, image_shape):
  """The ResNet VAE of IAF Appendix C: its own priors (top-down) and likelihood."""
  if model_config.likelihood != "discretized_logistic" or model_config.prior.name != "standard":
    raise ValueError("The resnet_vae architecture (IAF Appendix C) has its own hierarchical "
                     "prior and a discretized logistic likelihood: set config.model.prior.name="
                     "'standard' and config.model.likelihood='discretized_logistic'.")
  posterior = model_config.posterior
  if posterior.name == "realnvp" or posterior.get("activation", "elu") != "elu":
    raise ValueError("The resnet_vae posteriors are Gaussian or an IAF of ELU MADEs (C.1): set "
                     "config.model.posterior.name to 'gaussian' or 'iaf' (activation 'elu').")
  iaf = posterior.name == "iaf"
  if image_shape[0] % 2 or image_shape[1] % 2:
    raise ValueError(f"resnet_vae subsamples by 2 (C.4): image sides must be even, not "
                     f"{image_shape}.")
  return ResNetVAE(num_layers=model_config.resnet_vae_layers,
                   hidden=model_config.resnet_vae_hidden,
                   latent_channels=model_config.latent_dim,
                   bidirectional=model_config.inference == "bidirectional",
                   iaf_steps=posterior.num_steps if iaf else 0,
                   iaf_hidden=tuple(posterior.hidden) if iaf else (),
                   location_only=iaf and posterior.location_only, image_shape=image_shape,
                   min_logstd=model_config.min_logstd)


def _decoder_channels(model_config, image_shape) -> int:
  """Per-pixel outputs of a dense decoder: the Bernoulli logits, or the 2 maps per channel that
  the discretized logistic head mixes into its location and log-scale."""
  channels = image_shape[-1]
  return channels if model_config.likelihood == "bernoulli" else 2 * channels


def _vampprior_hvae(model_config, image_shape):
  """HVAE, ConvHVAE or PixelHVAE (L = 2) of Tomczak & Welling (2018), Eq. (10)-(15), Section 5.1."""
  architecture = model_config.architecture
  if model_config.posterior.name != "gaussian":
    raise ValueError(f"The {architecture} of Tomczak & Welling (2018) has Gaussian posteriors: set "
                     "config.model.posterior.name='gaussian'.")
  latent = model_config.latent_dim
  width = gated.MLP_WIDTH
  if architecture == "hvae":
    # q(z2|x), and q(z1|x, z2)'s x and z2 branches and joint layer: gated layers of 300.
    encoder, t_x = gated.GatedMLP(flatten_dims=3), gated.GatedMLP((width,), flatten_dims=3)
    u_z2, g = gated.GatedMLP((width,)), gated.GatedMLP((width,))
    decoder = gated.TwoLatentDecoder(latent, image_shape,
                                     _decoder_channels(model_config, image_shape))
  else:
    # The authors' convHVAE_2level: gated convolutions read x for q(z2|x) and for q(z1|x, z2),
    # whose z2 branch has as many units as the flattened x features.
    encoder = gated.GatedConvNet(gated.CONV_ENCODER_Z2)
    t_x = gated.GatedConvNet(gated.CONV_ENCODER_Z1)
    reduced = (-(-image_shape[0] // 4), -(-image_shape[1] // 4), gated.CONV_ENCODER_Z1[-1][0])
    u_z2, g = gated.GatedMLP((reduced[0] * reduced[1] * reduced[2],)), gated.GatedMLP((width,))
    decoder = gated.TwoLatentDecoder(latent, image_shape, conv=True,
                                     conv_layers=() if architecture == "pixel_hvae"
                                     else gated.CONV_DECODER)
  return HierarchicalVAE(encoder=encoder, decoder=decoder, head=_head(model_config, image_shape),
                         prior=create_prior(model_config, image_shape), t_x=t_x, u_z2=u_z2, g=g,
                         t_z2=gated.GatedMLP(), latent_dim=latent,
                         min_logstd=model_config.min_logstd)


def _sere_vae(model_config, image_shape):
  """The Self-Reflective VAE (Apostolopoulou et al.) or its baselines: config.model.sere."""
  sere = model_config.sere
  for key, valid in (("network", sere_vae.NETWORKS), ("partition", sere_vae.PARTITIONS),
                     ("bijector", sere_vae.BIJECTORS), ("posterior", sere_vae.POSTERIORS),
                     ("encoder", sere_vae.ENCODERS)):
    _choice(sere[key], valid, f"sere.{key}")
  if model_config.likelihood not in sere_vae.PIXEL_LIKELIHOODS:
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
      min_prior_scale=sere.min_prior_scale, likelihood=model_config.likelihood,
      num_mixtures=sere.num_mixtures, min_logstd=model_config.min_logstd)
