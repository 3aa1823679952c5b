"""Invertible layers as distrax bijectors, with the Flax modules that own their parameters."""
from vae_jax.flows.bijectors import InvertibleDense, actnorm, sigmoid_affine_coupling
from vae_jax.flows.realnvp import RealNVP

__all__ = ["InvertibleDense", "RealNVP", "actnorm", "sigmoid_affine_coupling"]
