"""vae_jax: VAEs with learned priors and flow posteriors in JAX/Flax."""
