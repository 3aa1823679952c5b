"""The device mesh and shardings: batches split over 'data', parameters replicated.

The same code runs on one CPU, several GPUs or a TPU slice; XLA inserts the gradient all-reduce.
"""
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec


def data_mesh(devices=None) -> Mesh:
  """A 1-D mesh over `devices` (default: all devices of all processes)."""
  return Mesh(np.array(jax.devices() if devices is None else devices), ("data",))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec())


def batch_sharded(mesh: Mesh) -> NamedSharding:
  """Leading (example) axis split over the devices."""
  return NamedSharding(mesh, PartitionSpec("data"))


def replicate(tree, mesh: Mesh):
  return jax.device_put(tree, replicated(mesh))
