"""Apostolopoulou et al., the Self-Reflective VAE: --config=configs/serevae.py:<cell>.

For example `--config=configs/serevae.py:mnist-mlp-sere` (Section 4.1.1) or
`configs/serevae.py:cifar10-case3` (Section 4.2.1). The settings, with the paper's sections and
our choices where its supplement is missing, are in vae_jax/serevae.py; `python launch/serevae.py
list` shows every cell.
"""
from vae_jax import serevae


def get_config(cell: str):
  return serevae.config_for_cell(cell)
