"""Tomczak & Welling (2018), VampPrior: every model of Tables 1-5 and Figures 2-3,
--config=configs/vampprior.py:<cell>.

For example `--config=configs/vampprior.py:static_mnist-vae-vampprior` (Table 1, VAE L=1 with
the VampPrior, K = 500). The settings, with the paper's sections and our choices where it is
silent, are in vae_jax/vampprior.py; `python launch/vampprior.py list` shows every cell.
"""
from vae_jax import vampprior


def get_config(cell: str):
  return vampprior.config_for_cell(cell)
