"""VAE models assembled from a config."""
from vae_jax.models.hvae import HierarchicalVAE
from vae_jax.models.vae import VAE, LogWeights
from vae_jax.models.factory import create_model

__all__ = ["HierarchicalVAE", "VAE", "LogWeights", "create_model"]
