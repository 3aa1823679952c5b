"""The benchmark's kernel count of an executable."""
import jax
import jax.numpy as jnp

from vae_jax import benchmark


def test_kernels_are_the_entry_computations_data_moving_instructions():
  a = jnp.ones((64, 64))
  chain = lambda a: jnp.tanh(jnp.tanh(a @ a) @ a) @ a  # 3 matmuls, 2 tanh between them
  assert benchmark.entry_instructions(jax.jit(chain).lower(a).compile()) == 5
  assert benchmark.entry_instructions(jax.jit(lambda a: a @ a).lower(a).compile()) == 1

