"""Builds a model from `config.model` and the data's image shape (Xu et al. 2020, B.2, B.5, B.13;
Kingma et al. 2016; Chen et al. 2017; Tomczak & Welling 2018, Section 5.1)."""
from typing import Sequence

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
PRIORS = ("standard", "realnvp", "af", "mog", "vampprior", "vampprior_data")
# Priors whose components are the model's posteriors of pseudo-inputs (Tomczak & Welling 2018).
PSEUDO_INPUT_PRIORS = ("vampprior", "vampprior_data")
# discretized_logistic_mixture: PixelCNN++'s mixture, for the SeRe-VAE's CIFAR-10 model (4.2.1).
LIKELIHOODS = ("bernoulli", "discretized_logistic", "discretized_logistic_mixture")
FLOW_TYPES = ("full", "pure")
POSTERIOR_FLOWS = ("realnvp", "iaf")
# B.5: the CIFAR-10 latent is an 8 x 8 x C tensor.
_CIFAR_LATENT_SIZE = 8


def _choice(value, valid, key):
  if value not in valid:
    raise ValueError(f"config.model.{key}={value!r} is not one of {', '.join(valid)}.")


def latent_shape(model_config) -> tuple:
  if model_config.architecture == "resnet_cifar":
    return (_CIFAR_LATENT_SIZE, _CIFAR_LATENT_SIZE, model_config.latent_dim)
  return (model_config.latent_dim,)


def create_prior(model_config, image_shape=None):
  """p(z) (p(z2) for the two-level models); `image_shape` sizes a VampPrior's pseudo-inputs."""
  _choice(model_config.prior, PRIORS, "prior")
  _choice(model_config.flow_type, FLOW_TYPES, "flow_type")
  shape = latent_shape(model_config)
  if model_config.prior == "standard":
    return priors.StandardNormalPrior(shape)
  if model_config.prior in ("mog",) + PSEUDO_INPUT_PRIORS:
    if len(shape) != 1:
      raise ValueError(f"config.model.prior={model_config.prior!r} is a mixture over a latent "
                       f"vector; {model_config.architecture} has a latent tensor {shape}.")
    if model_config.prior == "mog":
      return priors.MixtureOfGaussiansPrior(shape[0], model_config.num_components,
                                            model_config.learn_prior_weights)
    return priors.VampPrior(image_shape, model_config.num_components,
                            model_config.learn_prior_weights,
                            from_data=model_config.prior == "vampprior_data",
                            init_mean=model_config.pseudo_input_mean,
                            init_std=model_config.pseudo_input_std)
  if model_config.prior == "af":
    if len(shape) != 1:
      raise ValueError("config.model.prior='af' (a MADE autoregressive flow) needs a latent vector; "
                       f"{model_config.architecture} has a latent tensor {shape}.")
    return priors.AutoregressiveFlowPrior(shape[0], model_config.flow_depth,
                                          tuple(model_config.af_hidden),
                                          model_config.af_mean_only)
  return priors.RealNVPPrior(shape, model_config.flow_depth, model_config.coupling_hidden,
                             pure=model_config.flow_type == "pure")


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
  _choice(model_config.likelihood, LIKELIHOODS, "likelihood")
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
  architecture = model_config.architecture
  _choice(architecture, ARCHITECTURES, "architecture")
  image_shape = tuple(image_shape)
  if architecture == "resnet_vae":
    return _resnet_vae(model_config, image_shape)
  if architecture == "sere":
    return _sere_vae(model_config, image_shape)
  if model_config.likelihood == "discretized_logistic_mixture":
    raise ValueError("config.model.likelihood='discretized_logistic_mixture' is the SeRe-VAE's "
                     "(architecture 'sere'); use 'discretized_logistic' here.")
  if model_config.prior in PSEUDO_INPUT_PRIORS and model_config.posterior_flow_depth:
    raise ValueError("The VampPrior's components are the Gaussian posteriors q(z|u_k): set "
                     "config.model.posterior_flow_depth=0.")
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
    if model_config.posterior_flow_depth:
      raise ValueError("The ResnetHVAE of B.13 has Gaussian posteriors: set "
                       "config.model.posterior_flow_depth=0.")
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
  _choice(model_config.posterior_flow, POSTERIOR_FLOWS, "posterior_flow")
  depth = model_config.posterior_flow_depth
  if not depth:
    return None
  if model_config.posterior_flow == "realnvp":
    return flows.RealNVP(depth, model_config.coupling_hidden, len(shape),
                         pure=model_config.flow_type == "pure")
  if len(shape) != 1:
    raise ValueError("config.model.posterior_flow='iaf' (a MADE over a latent vector) needs a "
                     f"latent vector; {model_config.architecture} has a latent tensor {shape}.")
  return IAF(depth, tuple(model_config.iaf_hidden), model_config.iaf_location_only)


def _resnet_vae(model_config, image_shape):
  """The ResNet VAE of IAF Appendix C: its own priors (top-down) and likelihood."""
  _choice(model_config.inference, INFERENCE, "inference")
  if model_config.likelihood != "discretized_logistic" or model_config.prior != "standard":
    raise ValueError("The resnet_vae architecture (IAF Appendix C) has its own hierarchical "
                     "prior and a discretized logistic likelihood: set config.model.prior="
                     "'standard' and config.model.likelihood='discretized_logistic'.")
  if model_config.posterior_flow_depth and model_config.posterior_flow != "iaf":
    raise ValueError("The resnet_vae posteriors are Gaussian or IAF: set "
                     "config.model.posterior_flow='iaf' or posterior_flow_depth=0.")
  if image_shape[0] % 2 or image_shape[1] % 2:
    raise ValueError(f"resnet_vae subsamples by 2 (C.4): image sides must be even, not "
                     f"{image_shape}.")
  return ResNetVAE(num_layers=model_config.resnet_vae_layers,
                   hidden=model_config.resnet_vae_hidden,
                   latent_channels=model_config.latent_dim,
                   bidirectional=model_config.inference == "bidirectional",
                   iaf_steps=model_config.posterior_flow_depth,
                   iaf_hidden=tuple(model_config.iaf_hidden),
                   location_only=model_config.iaf_location_only, image_shape=image_shape,
                   min_logstd=model_config.min_logstd)


def _decoder_channels(model_config, image_shape) -> int:
  """Per-pixel outputs of a dense decoder: the Bernoulli logits, or the 2 maps per channel that
  the discretized logistic head mixes into its location and log-scale."""
  channels = image_shape[-1]
  return channels if model_config.likelihood == "bernoulli" else 2 * channels


def _vampprior_hvae(model_config, image_shape):
  """HVAE, ConvHVAE or PixelHVAE (L = 2) of Tomczak & Welling (2018), Eq. (10)-(15), Section 5.1."""
  architecture = model_config.architecture
  if model_config.posterior_flow_depth:
    raise ValueError(f"The {architecture} of Tomczak & Welling (2018) has Gaussian posteriors: set "
                     "config.model.posterior_flow_depth=0.")
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
  if model_config.prior != "standard" or model_config.posterior_flow_depth:
    raise ValueError("The SeRe-VAE has its own hierarchical prior and posterior layers: set "
                     "config.model.prior='standard' and config.model.posterior_flow_depth=0.")
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
