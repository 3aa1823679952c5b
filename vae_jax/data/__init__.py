"""Datasets: loading from local files, TFDS or the embedded digits (see sources.py)."""
from vae_jax.data.sources import Dataset
from vae_jax.data.sources import load
