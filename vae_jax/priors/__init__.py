"""Priors p(z): each has `log_prob(z)` and `sample(key, n)`."""
from vae_jax.priors.priors import AutoregressiveFlowPrior, RealNVPPrior, StandardNormalPrior

__all__ = ["AutoregressiveFlowPrior", "RealNVPPrior", "StandardNormalPrior"]
