"""The benchmark's kernel count of an executable, and the cells it measures."""
import jax
import jax.numpy as jnp

from vae_jax import benchmark, config_files

xu2020 = config_files.module("configs/xu2020.py")


def test_kernels_are_the_entry_computations_data_moving_instructions():
  a = jnp.ones((64, 64))
  chain = lambda a: jnp.tanh(jnp.tanh(a @ a) @ a) @ a  # 3 matmuls, 2 tanh between them
  assert benchmark.entry_instructions(jax.jit(chain).lower(a).compile()) == 5
  assert benchmark.entry_instructions(jax.jit(lambda a: a @ a).lower(a).compile()) == 1



def test_every_family_with_each_prior_is_a_paper_cell():
  for family in benchmark.FAMILIES:
    for prior in benchmark.PRIORS:
      xu2020.get_config(benchmark.family_cell(family, prior))
  # B.5: the CIFAR-10 ResnetVAE's RealNVP prior has 50 blocks; the MNIST families' have 20.
  assert benchmark.family_cell("CifarResnetVAE", "realnvp") == "resnet,rnvp_prior,K=50,cifar10"
  assert benchmark.family_cell("ConvVAE", "realnvp") == "conv,rnvp_prior,K=20,mnist"
