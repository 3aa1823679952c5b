"""Flax networks: encoders, decoders and the small MLPs inside flows."""
from vae_jax.nets.dense import DenseDecoder, DenseEncoder, MLP, leaky_relu

__all__ = ["DenseDecoder", "DenseEncoder", "MLP", "leaky_relu"]
