"""Priors p(z): each has `log_prob(z)` and `sample(key, n)`; the VampPrior's also take the model's
encoder (use `log_prob(prior, z, encode)` and `sample(prior, key, n, encode)` for any prior)."""
from vae_jax.priors.priors import (AutoregressiveFlowPrior, MixtureOfGaussiansPrior, RealNVPPrior,
                                   StandardNormalPrior, VampPrior, log_prob, sample)

__all__ = ["AutoregressiveFlowPrior", "MixtureOfGaussiansPrior", "RealNVPPrior",
           "StandardNormalPrior", "VampPrior", "log_prob", "sample"]
