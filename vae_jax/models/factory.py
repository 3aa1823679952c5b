"""Builds a model from `config.model` and the data's image shape (Xu et al. 2020, B.2, B.5, B.13)."""
from typing import Sequence

from vae_jax import flows, nets, priors
from vae_jax.models import heads
from vae_jax.models.hvae import HierarchicalVAE
from vae_jax.models.resnet_vae import ResNetVAE
from vae_jax.flows.autoregressive import IAF
from vae_jax.models.vae import VAE
from vae_jax.nets import conv, iaf_resnet

ARCHITECTURES = ("dense", "conv", "resnet", "resnet_small", "pixel", "resnet_hvae", "resnet_cifar",
                 "iaf_resnet", "vlae", "resnet_vae")
INFERENCE = ("bidirectional", "bottom_up")
PRIORS = ("standard", "realnvp", "af")
LIKELIHOODS = ("bernoulli", "discretized_logistic")
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


def create_prior(model_config):
  _choice(model_config.prior, PRIORS, "prior")
  _choice(model_config.flow_type, FLOW_TYPES, "flow_type")
  shape = latent_shape(model_config)
  if model_config.prior == "standard":
    return priors.StandardNormalPrior(shape)
  if model_config.prior == "af":
    if len(shape) != 1:
      raise ValueError("config.model.prior='af' (a MADE autoregressive flow) needs a latent vector; "
                       f"{model_config.architecture} has a latent tensor {shape}.")
    return priors.AutoregressiveFlowPrior(shape[0], model_config.flow_depth,
                                          tuple(model_config.af_hidden),
                                          model_config.af_mean_only)
  return priors.RealNVPPrior(shape, model_config.flow_depth, model_config.coupling_hidden,
                             pure=model_config.flow_type == "pure")


def _networks(architecture: str, image_shape):
  """(encoder, decoder) of B.2 / B.5 for a convolutional architecture."""
  residual = architecture != "conv"
  if architecture == "resnet_cifar":
    return (conv.ConvEncoder(conv.CIFAR_ENCODER_SHAPES, residual, flatten=False),
            conv.ConvDecoder(conv.CIFAR_DECODER_SHAPES, residual, unflatten_shape=None))
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
  if model_config.likelihood == "discretized_logistic":
    return heads.DiscretizedLogisticHead(channels)
  if model_config.architecture == "pixel":
    return heads.PixelCNNHead()
  if model_config.architecture == "vlae":
    return heads.MaskedPixelCNNHead()
  return heads.BernoulliHead(channels, project=model_config.architecture != "dense",
                             weight_norm=model_config.architecture == "iaf_resnet")


def create_model(model_config, image_shape: Sequence[int]):
  architecture = model_config.architecture
  _choice(architecture, ARCHITECTURES, "architecture")
  image_shape = tuple(image_shape)
  if architecture == "resnet_vae":
    return _resnet_vae(model_config, image_shape)
  if architecture == "dense":
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
        "resnet" if architecture in ("pixel", "resnet_hvae") else architecture, image_shape)
  head, prior = _head(model_config, image_shape), create_prior(model_config)
  if architecture == "resnet_hvae":
    if model_config.posterior_flow_depth:
      raise ValueError("The ResnetHVAE of B.13 has Gaussian posteriors: set "
                       "config.model.posterior_flow_depth=0.")
    return HierarchicalVAE(encoder=encoder, decoder=decoder, head=head, prior=prior,
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
