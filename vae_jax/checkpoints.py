"""Orbax checkpoints of the whole training state, for exact resume."""
import dataclasses
import logging
import os

from absl import logging as absl_logging
import jax
from jax.sharding import SingleDeviceSharding
import orbax.checkpoint as ocp

from vae_jax.flows import realnvp


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


class UnreadableCheckpointError(RuntimeError):
  """No checkpoint of a run could be read."""


def _newest_readable(checkpoint_manager: ocp.CheckpointManager, restore_step):
  """(step, restore_step(step), [(unreadable newer step, reason)]) for the newest checkpoint that
  reads. A torn or partly deleted checkpoint raises anything from orbax or TensorStore, so every
  error counts; if none reads (a torn file in each, or a state that no longer matches the code),
  UnreadableCheckpointError lists each step's reason and nothing is changed."""
  unreadable = []
  for step in sorted(checkpoint_manager.all_steps(), reverse=True):
    try:
      return step, restore_step(step), unreadable
    except Exception as error:  # pylint: disable=broad-exception-caught
      first_line = (str(error).strip().splitlines() or [""])[0][:300]
      unreadable.append((step, f"{type(error).__name__}: {first_line}"))
  reasons = "; ".join(f"step {step}: {reason}" for step, reason in unreadable)
  raise UnreadableCheckpointError(
      f"No checkpoint in {checkpoint_manager.directory} could be read ({reasons}). Move that "
      "directory aside to start the run anew, or restore it from a copy.")


def _set_aside(checkpoint_manager: ocp.CheckpointManager, unreadable) -> None:
  """Renames unreadable checkpoints newer than the one restored to <step>.unreadable (kept for
  inspection, never deleted), so that the resumed run can save those steps again."""
  if not unreadable:
    return
  for step, reason in unreadable:
    path = os.path.join(str(checkpoint_manager.directory), str(step))
    absl_logging.warning("The checkpoint at step %d could not be read (%s); it is kept as %s and "
                         "the run resumes from an earlier one.", step, reason, path + ".unreadable")
    if jax.process_index() == 0:
      os.replace(path, path + ".unreadable")
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel
    multihost_utils.sync_global_devices("vae_jax checkpoints set aside")
  checkpoint_manager.reload()


def restore_latest(checkpoint_manager: ocp.CheckpointManager, like):
  """The newest readable saved state, laid out like `like` (arrays or jax.ShapeDtypeStruct), or
  None when there is no checkpoint. Newer unreadable checkpoints are reported and set aside."""
  if checkpoint_manager.latest_step() is None:
    return None
  _, state, unreadable = _newest_readable(
      checkpoint_manager, lambda step: _restore_state(checkpoint_manager, step, like))
  _set_aside(checkpoint_manager, unreadable)
  return state


def _restore_state(checkpoint_manager: ocp.CheckpointManager, step: int, like):
  try:
    return checkpoint_manager.restore(step, args=ocp.args.StandardRestore(like))
  except ValueError:
    # A checkpoint of an older layout: from before a state field existed (one that is None in
    # `like`, such as averaged_params without Polyak averaging), or with RealNVP blocks saved
    # one subtree each (before issue #18 stacked them). Restore what was saved, placed like `like`.
    saved = dict(checkpoint_manager.item_metadata(step)).keys()
    fields = {f.name: getattr(like, f.name) for f in dataclasses.fields(like)}
    if any(value is not None for name, value in fields.items() if name not in saved):
      raise
    present = {name: value for name, value in fields.items() if name in saved}
    try:
      restored = checkpoint_manager.restore(step, args=ocp.args.StandardRestore(present))
    except ValueError as error:
      per_block_like = realnvp.unstack_blocks(present)
      if jax.tree_util.tree_structure(per_block_like) == jax.tree_util.tree_structure(present):
        raise  # no RealNVP blocks to lay out otherwise: the mismatch is real
      try:
        per_block = checkpoint_manager.restore(step,
                                               args=ocp.args.StandardRestore(per_block_like))
      except ValueError:
        raise error from None  # the stacked layout's mismatch says what is wrong
      restored = jax.tree_util.tree_map(lambda value, target: jax.device_put(value, target.sharding),
                                        realnvp.stack_blocks(per_block), present)
    return like.replace(**restored)


def restore_params(workdir: str, total_steps: int | None = None):
  """The parameters to evaluate from a training workdir's latest checkpoint: the best validated
  ones when the run validated, else the Polyak average when kept, else the latest. Restored as
  saved (nested dicts of arrays) onto this process's first device, from a checkpoint written by
  any number of devices and hosts. Logs which ones; with the run's `total_steps`, warns when the
  run had not finished."""
  checkpoint_manager = (manager(workdir, keep=None)
                        if os.path.isdir(os.path.join(workdir, "checkpoints")) else None)
  if checkpoint_manager is None or checkpoint_manager.latest_step() is None:
    raise FileNotFoundError(f"No checkpoint in {workdir}/checkpoints: train that run first.")
  device = SingleDeviceSharding(jax.local_devices()[0])
  restore = lambda step: checkpoint_manager.restore(
      step, args=ocp.args.StandardRestore(_saved_tree(checkpoint_manager, step, device)))
  with checkpoint_manager:
    step, state, unreadable = _newest_readable(checkpoint_manager, restore)
  state = realnvp.stack_blocks(state)  # checkpoints from before the RealNVP blocks were stacked
  for bad_step, reason in unreadable:  # reported, left in place: evaluation changes no run
    absl_logging.warning("The checkpoint at step %d could not be read (%s); using step %d.",
                         bad_step, reason, step)
  kind, name = next((kind, name) for kind, name in (("best validated", "best_params"),
                                                     ("Polyak-averaged", "averaged_params"),
                                                     ("latest", "params")) if state.get(name))
  absl_logging.info("%s: the %s parameters of the checkpoint at step %d.", workdir, kind, step)
  if total_steps is not None and step < total_steps:
    absl_logging.warning("%s: the run stopped at step %d of %d; these are the parameters of an "
                         "unfinished run.", workdir, step, total_steps)
  return state[name]
