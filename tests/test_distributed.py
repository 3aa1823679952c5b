"""Multi-process runs on one machine: 2 JAX processes on 127.0.0.1 (gloo CPU collectives) train,
evaluate and checkpoint exactly like 1 process, and their checkpoint restores in 1 process."""
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from vae_jax import checkpoints, evaluate, parallel, train
from conftest import tiny_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "launch"))
import local  # pylint: disable=wrong-import-position  (launch/local.py)


def _train_records(workdir):
  with open(os.path.join(workdir, "metrics.jsonl"), encoding="utf-8") as f:
    return [r for r in map(json.loads, f) if r["split"] == "train"]


def _eval(workdir, name="eval_test.json"):
  with open(os.path.join(workdir, name), encoding="utf-8") as f:
    return json.load(f)


def _assert_trees_close(a, b, **tolerance):
  assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
  for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), **tolerance)


def test_two_processes_match_one_and_their_checkpoint_restores_in_one(tmp_path):
  """2 processes x 2 host devices (a 4-device mesh across processes) against 1 process on 1
  device: the same per-step losses, parameters and IS-NLL, files written once."""
  overrides = ["--config.train.num_epochs=1", "--config.train.log_every_steps=5",
               "--config.train.steps_per_call=3", "--config.eval.batch_size=96"]
  one, two = str(tmp_path / "one"), str(tmp_path / "two")
  config = tiny_config()
  config.train.num_epochs, config.train.log_every_steps = 1, 5
  config.train.steps_per_call, config.eval.batch_size = 3, 96
  train.train_and_evaluate(config, one)
  command = [sys.executable, "-m", "vae_jax.main", "--config=tests/conftest.py",
             f"--workdir={two}"] + overrides
  completed = subprocess.run(
      [sys.executable, "launch/local.py", "--num_processes=2", "--devices_per_process=2", "--"]
      + command, cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
  assert completed.returncode == 0, completed.stdout[-4000:]
  assert "[1] test NLL" not in completed.stdout  # only process 0 reports
  assert "[0] test NLL" in completed.stdout

  # Process 0 alone wrote the metrics: one record per logged step, as in the 1-process run.
  records_one, records_two = _train_records(one), _train_records(two)
  assert [r["step"] for r in records_two] == [r["step"] for r in records_one] == [5, 10, 15, 20, 23]
  for a, b in zip(records_one, records_two):
    for key in ("loss", "elbo", "kl", "grad_norm"):
      np.testing.assert_allclose(b[key], a[key], rtol=1e-5)
  eval_one, eval_two = _eval(one), _eval(two)
  assert eval_two["devices"].startswith("4x")
  for key in ("nll", "elbo", "kl"):
    np.testing.assert_allclose(eval_two[key], eval_one[key], rtol=1e-5)
  assert os.path.exists(os.path.join(two, "samples.png"))

  # The 2-process checkpoint restores in this 1-process, 1-device run: parameters and state.
  _assert_trees_close(checkpoints.restore_params(two), checkpoints.restore_params(one),
                      rtol=1e-5, atol=1e-6)
  restored = evaluate.evaluate_workdir(two, output="eval_restored.json")
  np.testing.assert_allclose(restored["nll"], eval_two["nll"], rtol=1e-5)


def test_a_failing_process_stops_the_others_and_sets_the_status(tmp_path):
  script = ("import os, sys, time\n"
            "if os.environ['VAE_JAX_PROCESS_ID'] == '1': sys.exit(3)\n"
            "time.sleep(60)\n")
  path = tmp_path / "fail.py"
  path.write_text(script)
  assert local.run([sys.executable, str(path)], num_processes=2) == 3


def test_local_launcher_gives_each_process_its_id_and_host_devices():
  env = local.process_environment(1, 4, 1234, devices_per_process=2,
                                  base={"XLA_FLAGS": "--xla_force_host_platform_device_count=8 --x"})
  assert (env["VAE_JAX_COORDINATOR_ADDRESS"], env["VAE_JAX_NUM_PROCESSES"],
          env["VAE_JAX_PROCESS_ID"]) == ("127.0.0.1:1234", "4", "1")
  assert env["XLA_FLAGS"] == "--x --xla_force_host_platform_device_count=2"


def test_distributed_settings_from_flags_environment_and_clusters():
  settings = parallel.distributed_settings
  assert settings(environ={}) is None  # a single process: nothing to initialise
  explicit = {"coordinator_address": "10.0.0.1:1234", "num_processes": 2, "process_id": 1}
  assert settings(**explicit, environ={}) == explicit
  environment = {parallel.COORDINATOR_ENV: "10.0.0.1:1234", parallel.NUM_PROCESSES_ENV: "2",
                 parallel.PROCESS_ID_ENV: "1"}
  assert settings(environ=environment) == explicit
  assert settings(process_id=0, environ=environment)["process_id"] == 0  # flags win
  assert settings("h:1", 1, 0, environ={}) is None  # one process is a single process
  with pytest.raises(ValueError, match="missing: num_processes, process_id"):
    settings(coordinator_address="h:1", environ={})
  with pytest.raises(ValueError, match=r"process_id=2 must be in \[0, num_processes=2\)"):
    settings("h:1", 2, 2, environ={})
  # Clusters JAX detects by itself: {} lets jax.distributed.initialize fill everything in.
  slurm = {"SLURM_JOB_ID": "7", "SLURM_STEP_NODELIST": "node[1-2]", "SLURM_NTASKS": "8",
           "SLURM_PROCID": "3", "SLURM_LOCALID": "1"}
  assert settings(environ=slurm) == {}
  assert settings(environ=dict(slurm, SLURM_NTASKS="1")) is None  # a one-task job
  assert settings(environ={parallel.DETECT_ENV: "1"}) == {}  # TPU pods (launch/tpu_pod.sh)
  assert settings(environ={parallel.DETECT_ENV: "0"}) is None
