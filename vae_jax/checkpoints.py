"""Orbax checkpoints of the whole training state, for exact resume."""
import os

import orbax.checkpoint as ocp


def manager(workdir: str, keep: int) -> ocp.CheckpointManager:
  return ocp.CheckpointManager(os.path.abspath(os.path.join(workdir, "checkpoints")),
                               options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True))


def save(checkpoint_manager: ocp.CheckpointManager, step: int, state) -> None:
  checkpoint_manager.save(step, args=ocp.args.StandardSave(state), force=True)


def restore_latest(checkpoint_manager: ocp.CheckpointManager, like):
  """The latest saved state, laid out like `like` (arrays or jax.ShapeDtypeStruct), or None."""
  step = checkpoint_manager.latest_step()
  if step is None:
    return None
  return checkpoint_manager.restore(step, args=ocp.args.StandardRestore(like))
