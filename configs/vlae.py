"""Chen et al. (2017), VLAE: every table cell, --config=configs/vlae.py:<cell>.

For example `--config=configs/vlae.py:static_mnist-vlae` (Table 1). The settings, with the
paper's sections and our choices where it is silent, are in vae_jax/iaf_vlae.py;
`python launch/iaf_vlae.py list vlae` shows every cell.
"""
from vae_jax import iaf_vlae


def get_config(cell: str):
  return iaf_vlae.config_for_cell(cell, iaf_vlae.vlae_cells())
