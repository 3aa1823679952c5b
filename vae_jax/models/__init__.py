"""VAE models assembled from a config."""
from vae_jax.models.base import LatentVariableModel, LogWeights
from vae_jax.models.hvae import HierarchicalVAE
from vae_jax.models.vae import VAE
from vae_jax.models.factory import create_model

__all__ = ["HierarchicalVAE", "LatentVariableModel", "LogWeights", "VAE", "create_model"]
