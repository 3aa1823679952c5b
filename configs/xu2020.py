"""Xu et al. (2020), every table cell: --config=configs/xu2020.py:<cell>.

For example `--config=configs/xu2020.py:resnet,rnvp_prior,K=20,static_mnist`. The cell grammar and
the paper settings each token brings are in vae_jax/xu2020.py; `python launch/xu2020.py list`
shows the cells of each table. Shorter runs keep the schedule's shape:
--config.train.num_epochs=50 scales warm-up and learning-rate boundaries with it.
"""
from vae_jax import xu2020


def get_config(cell: str):
  return xu2020.config_for_cell(cell)
