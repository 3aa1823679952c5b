"""Faults a run must survive (issue #19): files torn by a kill, unreadable checkpoints, two runs
in one workdir."""
import functools
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from vae_jax import checkpoints, runs, train
from vae_jax.flows import realnvp
from vae_jax.metric_writer import MetricWriter


def _write_records(workdir, steps):
  with MetricWriter(str(workdir)) as writer:
    for step in steps:
      writer.write(step, "train", {"loss": float(step)})


def _steps(workdir):
  with open(workdir / "metrics.jsonl", encoding="utf-8") as f:
    return [json.loads(line)["step"] for line in f]


def test_a_torn_last_metrics_line_is_dropped_on_resume(tmp_path):
  _write_records(tmp_path, [10, 20, 30])
  with open(tmp_path / "metrics.jsonl", "a", encoding="utf-8") as f:
    f.write('{"step": 40, "split": "tr')  # killed mid-write
  with MetricWriter(str(tmp_path), resume_step=30) as writer:
    writer.write(40, "train", {"loss": 40.0})
  assert _steps(tmp_path) == [10, 20, 30, 40]


def test_a_bad_metrics_line_before_the_last_is_an_error_naming_file_and_line(tmp_path):
  _write_records(tmp_path, [10, 20])
  path = tmp_path / "metrics.jsonl"
  lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
  path.write_text("".join([lines[0], "garbage\n", lines[1]]), encoding="utf-8")
  with pytest.raises(ValueError, match=r"metrics.jsonl, line 2, is not a JSON record"):
    MetricWriter(str(tmp_path), resume_step=20)
  assert path.read_text(encoding="utf-8").count("\n") == 3  # nothing rewritten


def _train(config, workdir):
  return train.train(train.setup_run(config), str(workdir))


def _tear_arrays(step_dir):
  """Truncates every array data file of a checkpoint to half its length."""
  for path in (step_dir / "default" / "d").iterdir():
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


@pytest.mark.parametrize("fault", ["torn arrays", "deleted _METADATA"])
def test_an_unreadable_latest_checkpoint_falls_back_to_the_one_before(tmp_path, config, fault):
  config.train.num_epochs, config.train.checkpoint_every_steps = 2, 10  # saves 40 and 46 kept
  # The first run is uninterrupted: its final state is the one the resumed run must reach.
  uninterrupted = _train(config, tmp_path / "faulty")
  latest = tmp_path / "faulty" / "checkpoints" / "46"
  if fault == "torn arrays":
    _tear_arrays(latest)
  else:
    (latest / "default" / "_METADATA").unlink()
  resumed = _train(config, tmp_path / "faulty")  # from step 40, saving step 46 anew
  for a, b in zip(jax.tree_util.tree_leaves(uninterrupted), jax.tree_util.tree_leaves(resumed)):
    np.testing.assert_array_equal(a, b)
  assert (tmp_path / "faulty" / "checkpoints" / "46.unreadable").is_dir()  # kept, not deleted


def test_a_checkpoint_with_per_block_realnvp_parameters_resumes_exactly(tmp_path, config):
  """Checkpoints from before the RealNVP blocks were stacked ({block_<k>: ...} subtrees in the
  parameters and Adam's moments) resume into the stacked layout, reaching exactly the
  uninterrupted state; restore_params reads them too."""
  config.train.num_epochs, config.train.checkpoint_every_steps = 2, 10  # saves 40 and 46 kept
  # The first run is uninterrupted: its final state is the one the resumed run must reach.
  uninterrupted = _train(config, tmp_path / "old")
  run = train.setup_run(config)
  optimizer = train.make_optimizer(config.train, run.total_steps)
  with checkpoints.manager(str(tmp_path / "old"), keep=None) as manager:
    manager.delete(46)
    state = train.restore_train_state(run, optimizer, manager)  # step 40, stacked
    old_layout = realnvp.unstack_blocks(state)
    assert "block_1" in old_layout.params["prior"]["flow"]
    manager.delete(40)
    checkpoints.save(manager, 40, old_layout)
  np.testing.assert_array_equal(
      checkpoints.restore_params(str(tmp_path / "old"))["prior"]["flow"]["blocks"]["actnorm"]["bias"],
      state.params["prior"]["flow"]["blocks"]["actnorm"]["bias"])
  resumed = _train(config, tmp_path / "old")
  for a, b in zip(jax.tree_util.tree_leaves(uninterrupted), jax.tree_util.tree_leaves(resumed)):
    np.testing.assert_array_equal(a, b)


def test_no_readable_checkpoint_is_one_clear_error_and_changes_nothing(tmp_path, config):
  config.train.num_epochs, config.train.checkpoint_every_steps = 2, 10
  _train(config, tmp_path)
  for step in ("40", "46"):
    _tear_arrays(tmp_path / "checkpoints" / step)
  with pytest.raises(checkpoints.UnreadableCheckpointError,
                     match=r"No checkpoint in .*checkpoints could be read \(step 46: .*; step 40:"):
    _train(config, tmp_path)
  assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["40", "46"]


def test_a_second_run_in_a_busy_workdir_stops_at_once_naming_the_holder(tmp_path, config):
  with runs.workdir_lock(str(tmp_path)):
    with pytest.raises(runs.WorkdirBusyError,
                       match=rf"in use by another run \(pid {os.getpid()} on "):
      train.train_and_evaluate(config, str(tmp_path))
  assert not (tmp_path / "config.json").exists()  # the second run wrote nothing
  # A lock file left behind by a run that died locks nothing: the OS released its lock.
  (tmp_path / "lock").write_text("pid 1 on a-dead-host\n", encoding="utf-8")
  with runs.workdir_lock(str(tmp_path)):
    assert (tmp_path / "lock").read_text(encoding="utf-8").startswith(f"pid {os.getpid()} ")


def test_the_workdir_lock_is_released_when_its_process_is_killed(tmp_path):
  holder = subprocess.Popen([sys.executable, "-c", (
      "import sys, time; from vae_jax import runs\n"
      "with runs.workdir_lock(sys.argv[1]):\n  print('locked', flush=True); time.sleep(60)"),
      str(tmp_path)], stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(runs.WorkdirBusyError, match=rf"pid {holder.pid} "):
      with runs.workdir_lock(str(tmp_path)):
        pass
  finally:
    holder.kill()
    holder.wait()
    holder.stdout.close()
  with runs.workdir_lock(str(tmp_path)):  # kill -9 left the file, not the lock
    pass


@pytest.mark.parametrize("key, value", [("train.batch_size", 0), ("train.batch_size", -5),
                                        ("model.latent_dim", 0), ("train.num_epochs", 0),
                                        ("eval.num_samples", -1),
                                        ("model.prior.num_blocks", -1)])
def test_a_bad_number_is_one_error_naming_the_key_before_anything_is_written(tmp_path, config,
                                                                           key, value):
  *path, name = key.split(".")
  functools.reduce(lambda tree, k: tree[k], path, config)[name] = value
  with pytest.raises(ValueError, match=rf"config\.{key}={value}(\.0)? must be"):
    train.train_and_evaluate(config, str(tmp_path / "run"))
  assert not (tmp_path / "run").exists()
