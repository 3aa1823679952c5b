"""Processes, the device mesh and shardings: batches split over 'data', parameters replicated.

The same code runs on one CPU, several GPUs, a GPU cluster or a TPU pod; XLA inserts the gradient
all-reduce. With several processes (hosts), every process runs the same program on the global
mesh (`jax.distributed`); each computes only its devices' rows of every batch, and only process 0
writes files other than checkpoints (which orbax writes from all of them).
"""
import os

from absl import flags, logging
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

# Explicit settings for jax.distributed.initialize, as flags (main.py) or environment variables.
COORDINATOR_ENV = "VAE_JAX_COORDINATOR_ADDRESS"  # host:port of process 0
NUM_PROCESSES_ENV = "VAE_JAX_NUM_PROCESSES"
PROCESS_ID_ENV = "VAE_JAX_PROCESS_ID"
# VAE_JAX_DISTRIBUTED=1: let JAX detect the cluster (Cloud TPU VM pods, SLURM, Open MPI, k8s).
DETECT_ENV = "VAE_JAX_DISTRIBUTED"


def distributed_settings(coordinator_address=None, num_processes=None, process_id=None,
                         environ=None):
  """The keyword arguments for jax.distributed.initialize, or None for a single process.

  Explicit values (flags) win over VAE_JAX_* variables. Without either, a SLURM step of several
  tasks (`srun`) or VAE_JAX_DISTRIBUTED=1 (TPU pods: see launch/tpu_pod.sh) gives {}: JAX's own
  cluster detection fills in the coordinator, the process count and this process's id.
  """
  environ = os.environ if environ is None else environ
  explicit = {
      "coordinator_address": coordinator_address or environ.get(COORDINATOR_ENV) or None,
      "num_processes": num_processes if num_processes is not None else environ.get(
          NUM_PROCESSES_ENV),
      "process_id": process_id if process_id is not None else environ.get(PROCESS_ID_ENV)}
  given = {k: v for k, v in explicit.items() if v is not None}
  if given:
    missing = sorted(set(explicit) - set(given))
    if missing:
      raise ValueError(f"Multi-process runs need --coordinator_address, --num_processes and "
                       f"--process_id together (or {COORDINATOR_ENV}, {NUM_PROCESSES_ENV} and "
                       f"{PROCESS_ID_ENV}); missing: {', '.join(missing)}.")
    settings = {"coordinator_address": given["coordinator_address"],
                "num_processes": int(given["num_processes"]),
                "process_id": int(given["process_id"])}
    if not 0 <= settings["process_id"] < settings["num_processes"]:
      raise ValueError(f"process_id={settings['process_id']} must be in "
                       f"[0, num_processes={settings['num_processes']}).")
    return settings if settings["num_processes"] > 1 else None
  if environ.get(DETECT_ENV, "0") not in ("", "0"):
    return {}
  if int(environ.get("SLURM_NTASKS", "1")) > 1 and "SLURM_STEP_NODELIST" in environ:
    return {}
  return None


def initialize(coordinator_address=None, num_processes=None, process_id=None) -> None:
  """Joins this process to a multi-process run when one is configured (distributed_settings);
  a no-op for a single process. Call before anything touches a device."""
  settings = distributed_settings(coordinator_address, num_processes, process_id)
  if settings is None:
    return
  # CPU processes exchange gradients through gloo; GPU and TPU backends ignore this setting.
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(**settings)
  if jax.process_index():  # one progress log for the run: process 0's
    logging.set_verbosity(logging.WARNING)
  logging.info("Process %d of %d; %d local and %d global devices.", jax.process_index(),
               jax.process_count(), jax.local_device_count(), jax.device_count())


def define_flags() -> None:
  """--coordinator_address, --num_processes, --process_id for the command-line tools."""
  flags.DEFINE_string("coordinator_address", None,
                      f"host:port of process 0 for a multi-process run (or ${COORDINATOR_ENV}).")
  flags.DEFINE_integer("num_processes", None, f"Processes in the run (or ${NUM_PROCESSES_ENV}).")
  flags.DEFINE_integer("process_id", None, f"This process's id, 0..num_processes-1 (or "
                       f"${PROCESS_ID_ENV}).")


def initialize_from_flags() -> None:
  initialize(flags.FLAGS.coordinator_address, flags.FLAGS.num_processes, flags.FLAGS.process_id)


def data_mesh(devices=None) -> Mesh:
  """A 1-D mesh over `devices` (default: all devices of all processes)."""
  return Mesh(np.array(jax.devices() if devices is None else devices), ("data",))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec())


def batch_sharded(mesh: Mesh) -> NamedSharding:
  """Leading (example) axis split over the devices."""
  return NamedSharding(mesh, PartitionSpec("data"))


def replicate(tree, mesh: Mesh):
  """A copy of `tree` on every device of `mesh`. Leaves held by this process (numpy or local
  arrays) must be the same in every process: each places its copy on its own devices. Global
  arrays (spanning processes) are resharded on the devices."""
  sharding = replicated(mesh)

  def place(leaf):
    if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
      return jax.jit(lambda a: a, out_shardings=sharding)(leaf)
    leaf = np.asarray(leaf)
    return jax.make_array_from_callback(leaf.shape, sharding, lambda index: leaf[index])
  return jax.tree_util.tree_map(place, tree)
