"""Builds a model from `config.model` and the data's image shape."""
from typing import Sequence

from vae_jax import nets, priors
from vae_jax.models.vae import VAE

ARCHITECTURES = ("dense",)
PRIORS = ("standard", "realnvp")


def _choice(value, valid, key):
  if value not in valid:
    raise ValueError(f"config.model.{key}={value!r} is not one of {', '.join(valid)}.")


def create_prior(model_config):
  _choice(model_config.prior, PRIORS, "prior")
  latent_shape = (model_config.latent_dim,)
  if model_config.prior == "standard":
    return priors.StandardNormalPrior(latent_shape)
  return priors.RealNVPPrior(latent_shape, model_config.flow_depth, model_config.coupling_hidden)


def create_model(model_config, image_shape: Sequence[int]) -> VAE:
  _choice(model_config.architecture, ARCHITECTURES, "architecture")
  hidden = tuple(model_config.hidden_units)
  return VAE(encoder=nets.DenseEncoder(hidden),
             decoder=nets.DenseDecoder(tuple(image_shape), hidden),
             prior=create_prior(model_config),
             latent_dim=model_config.latent_dim,
             min_logstd=model_config.min_logstd)
