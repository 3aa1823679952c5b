"""Probability distributions used as posteriors, priors and likelihoods."""
from vae_jax.distributions.gaussian import DiagonalGaussian, standard_normal
from vae_jax.distributions.likelihoods import bernoulli_image, bernoulli_pixels

__all__ = ["DiagonalGaussian", "bernoulli_image", "bernoulli_pixels", "standard_normal"]
