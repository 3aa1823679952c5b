"""Orbax checkpoints of the whole training state, for exact resume."""
import dataclasses
import logging
import os

from absl import logging as absl_logging
import jax
from jax.sharding import SingleDeviceSharding
import orbax.checkpoint as ocp


class _DropOrbaxInfo(logging.Filter):

  def filter(self, record):
    return record.levelno >= logging.WARNING or "/orbax/" not in record.pathname


def quiet_orbax_logging() -> None:
  """Drops orbax's INFO lines (several per save), which would bury the progress lines."""
  absl_logging.get_absl_handler().addFilter(_DropOrbaxInfo())


def manager(workdir: str, keep: int) -> ocp.CheckpointManager:
  """Every process saves its devices' shards; orbax coordinates the hosts and process 0 commits."""
  return ocp.CheckpointManager(os.path.abspath(os.path.join(workdir, "checkpoints")),
                               item_handlers=ocp.StandardCheckpointHandler(),
                               options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True))


def _saved_tree(checkpoint_manager: ocp.CheckpointManager, step: int, sharding):
  """The saved tree as jax.ShapeDtypeStructs placed by `sharding`: a restore target for this
  process's devices, whatever number of devices and hosts wrote the checkpoint."""
  metadata = checkpoint_manager.item_metadata(step)
  return jax.tree_util.tree_map(
      lambda leaf: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=sharding),
      dict(metadata))


def save(checkpoint_manager: ocp.CheckpointManager, step: int, state) -> None:
  checkpoint_manager.save(step, args=ocp.args.StandardSave(state), force=True)


def restore_latest(checkpoint_manager: ocp.CheckpointManager, like):
  """The latest saved state, laid out like `like` (arrays or jax.ShapeDtypeStruct), or None."""
  step = checkpoint_manager.latest_step()
  if step is None:
    return None
  try:
    return checkpoint_manager.restore(step, args=ocp.args.StandardRestore(like))
  except ValueError:
    # A checkpoint from before a state field existed (one that is None in `like`, such as
    # averaged_params without Polyak averaging): restore what was saved, placed like `like`.
    saved = dict(checkpoint_manager.item_metadata(step)).keys()
    fields = {f.name: getattr(like, f.name) for f in dataclasses.fields(like)}
    if any(value is not None for name, value in fields.items() if name not in saved):
      raise
    present = {name: value for name, value in fields.items() if name in saved}
    return like.replace(**checkpoint_manager.restore(step, args=ocp.args.StandardRestore(present)))


def restore_params(workdir: str):
  """The parameters to evaluate from a training workdir's latest checkpoint: the best validated
  ones when the run validated, else the Polyak average when kept, else the latest. Restored as
  saved (nested dicts of arrays) onto this process's first device, from a checkpoint written by
  any number of devices and hosts."""
  checkpoint_manager = (manager(workdir, keep=None)
                        if os.path.isdir(os.path.join(workdir, "checkpoints")) else None)
  if checkpoint_manager is None or checkpoint_manager.latest_step() is None:
    raise FileNotFoundError(f"No checkpoint in {workdir}/checkpoints: train that run first.")
  step = checkpoint_manager.latest_step()
  saved = _saved_tree(checkpoint_manager, step, SingleDeviceSharding(jax.local_devices()[0]))
  state = checkpoint_manager.restore(step, args=ocp.args.StandardRestore(saved))
  return state.get("best_params") or state.get("averaged_params") or state["params"]
