"""Kingma et al. (2016), IAF: every table cell, --config=configs/iaf.py:<cell>.

For example `--config=configs/iaf.py:mnist-iaf-d2-w320` (Table 1) or
`--config=configs/iaf.py:cifar10-bidirectional-iaf-h1-depth8` (Table 4). The settings, with the
paper's sections and our choices where it is silent, are in vae_jax/iaf_vlae.py;
`python launch/iaf_vlae.py list iaf` shows every cell.
"""
from vae_jax import iaf_vlae


def get_config(cell: str):
  return iaf_vlae.config_for_cell(cell, iaf_vlae.iaf_cells())
