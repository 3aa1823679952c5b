"""Training end to end on the embedded digits: loss goes down, exact resume, errors, sharding."""
import dataclasses
import json
import os
import re
import subprocess
import sys

import jax
import numpy as np
import pytest
from PIL import Image

from vae_jax import checkpoints, config_files, configuration, evaluate, runs, train
from vae_jax.models.factory import component
from vae_jax.data import batching

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _records(workdir, split):
  with open(os.path.join(workdir, "metrics.jsonl"), encoding="utf-8") as f:
    return [r for r in map(json.loads, f) if r["split"] == split]


def test_short_run_lowers_the_loss_and_writes_its_outputs(tmp_path, config):
  config.train.num_epochs = 8
  workdir = str(tmp_path)
  results = train.train_and_evaluate(config, workdir)
  losses = [r["loss"] for r in _records(workdir, "train")]
  assert losses[-1] < losses[0] - 5.0
  for name in ("config.json", "eval_test.json", "train_summary.json", "samples.png",
               "reconstructions.png", "tensorboard"):
    assert os.path.exists(os.path.join(workdir, name)), name
  assert results["nll"] <= -results["elbo"] + 1e-3  # IS log-likelihood >= ELBO
  # The standalone evaluation of the saved checkpoint reproduces the numbers exactly.
  again = evaluate.evaluate_workdir(workdir, output="eval_again.json")
  assert again["nll"] == results["nll"] and again["active_units"] == results["active_units"]
  twice = evaluate.evaluate_workdir(workdir, num_samples=10, test_binarizations=2,
                                 output="eval_twice.json")
  assert (twice["num_points"], twice["num_samples"]) == (2 * results["num_points"], 10)
  assert json.loads((tmp_path / "eval_test.json").read_text())["nll"] == results["nll"]
  steps = 8 * train.setup_run(config).steps_per_epoch
  assert (results["step"], results["epochs"], results["finished"], results["parameters"]) == (
      steps, 8.0, True, "latest")
  # The same checkpoint as part of a 16-epoch run: an evaluation of an unfinished run says so.
  saved = json.loads((tmp_path / "config.json").read_text())
  saved["train"]["num_epochs"] = 16.0
  (tmp_path / "config.json").write_text(json.dumps(saved))
  halfway = evaluate.evaluate_workdir(workdir, output="eval_halfway.json")
  assert (halfway["step"], halfway["finished"], halfway["nll"]) == (steps, False, results["nll"])


class _Killed(Exception):
  pass


def test_killed_and_resumed_run_ends_with_identical_state(tmp_path, monkeypatch, config):
  run = train.setup_run(config)
  uninterrupted = train.train(run, str(tmp_path / "uninterrupted"))

  save = checkpoints.save
  def save_then_die(manager, step, state):
    save(manager, step, state)
    if step == 20:  # mid-epoch: 23 steps per epoch
      manager.wait_until_finished()
      raise _Killed()
  monkeypatch.setattr(checkpoints, "save", save_then_die)
  with pytest.raises(_Killed):
    train.train(run, str(tmp_path / "resumed"))
  monkeypatch.undo()
  resumed = train.train(run, str(tmp_path / "resumed"))

  assert int(resumed.step) == int(uninterrupted.step) == run.total_steps
  for a, b in zip(jax.tree_util.tree_leaves(uninterrupted), jax.tree_util.tree_leaves(resumed)):
    np.testing.assert_array_equal(a, b)
  # The metrics file holds each log step once, as the uninterrupted run's does.
  steps = lambda name: [r["step"] for r in _records(str(tmp_path / name), "train")]
  assert steps("resumed") == steps("uninterrupted")


def test_calls_stop_at_logs_epoch_ends_checkpoints_and_the_last_step(config):
  config.train.steps_per_call, config.train.num_epochs = 7, 2  # 23 steps per epoch, 46 in all
  run = train.setup_run(config)
  stops, step = [], 0
  while step < run.total_steps:
    step += train.steps_to_next_stop(step, run)
    stops.append(step)
  assert stops == [7, 10, 17, 20, 23, 30, 37, 40, 46]  # log every 10, checkpoint every 20


def test_several_steps_per_call_give_the_steps_of_one_per_call(config):
  """One call of 5 steps (a device-side loop) = 5 calls of 1: same state, summed metrics."""
  config.train.steps_per_call = 5
  run = train.setup_run(config)
  optimizer = train.make_optimizer(config.train, run.total_steps)
  train_steps = train.make_train_steps(run, optimizer)
  order = batching.epoch_order(jax.random.PRNGKey(0), 0, run.train_images.shape[0])
  state = train.create_train_state(run, optimizer)
  losses = []
  for _ in range(5):
    state, metrics = train_steps(state, run.train_images, order, 1)
    losses.append(float(metrics["loss"]))
  looped, sums = train_steps(train.create_train_state(run, optimizer), run.train_images, order, 5)
  assert int(looped.step) == int(state.step) == 5
  for a, b in zip(jax.tree_util.tree_leaves(looped), jax.tree_util.tree_leaves(state)):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(float(sums["loss"]), sum(losses), rtol=1e-6)
  assert len(set(losses)) == 5  # five different batches and parameters


def test_validation_keeps_the_best_parameters(tmp_path, config):
  config.data.validation = True
  config.train.validate_every_epochs = 1
  state = train.train(train.setup_run(config), str(tmp_path))
  nlls = [r["nll"] for r in _records(str(tmp_path), "validation")]
  assert len(nlls) == config.train.num_epochs
  np.testing.assert_allclose(float(state.best_validation_nll), min(nlls), rtol=1e-6)
  best_epoch = int(np.argmin(nlls)) + 1
  assert int(state.best_step) == best_epoch * (1197 // config.train.batch_size)
  # The best-so-far scalars are placed and typed like the rest of the state, so that the train
  # step does not compile again after a validation (it compiled 3 times: a weakly typed inf at
  # initialisation, then scalars placed on the host's default device).
  for leaf in (state.best_step, state.best_validation_nll):
    assert leaf.sharding == state.step.sharding and not leaf.weak_type


def test_early_stopping_stops_after_patience_epochs_without_improvement(tmp_path, config):
  config.data.validation = True
  config.train.validate_every_epochs = 1
  config.train.early_stopping_patience_epochs = 2
  config.train.num_epochs = 12
  config.train.learning_rates = (0.0, 0.0, 0.0)  # fixed parameters: only noise moves the NLL
  run = train.setup_run(config)
  state = train.train(run, str(tmp_path))
  stopped_at = int(state.step)
  assert stopped_at < run.total_steps
  assert stopped_at - int(state.best_step) == 2 * run.steps_per_epoch
  # Resuming a stopped run does not train further.
  assert int(train.train(run, str(tmp_path)).step) == stopped_at


def test_nonfinite_loss_stops_the_run_naming_the_step_and_saves_no_nonfinite_state(tmp_path,
                                                                                   config):
  config.train.learning_rates = (1e30, 1e30, 1e30)
  config.train.checkpoint_every_steps = 1  # a save is due right after the bad step
  run = train.setup_run(config)
  with pytest.raises(FloatingPointError,
                     match=r"Non-finite loss or gradient at step (\d+).*last good checkpoint"
                           r" is step \1 ") as raised:
    train.train(run, str(tmp_path))
  bad_step = int(re.search(r"at step (\d+)", str(raised.value)).group(1))
  optimizer = train.make_optimizer(config.train, run.total_steps)
  with checkpoints.manager(str(tmp_path), 2) as manager:
    saved = train.restore_train_state(run, optimizer, manager)
  assert int(saved.step) == bad_step  # the state before the bad step's update
  assert all(np.isfinite(leaf).all() for leaf in jax.tree_util.tree_leaves(saved.params))


def test_resuming_with_another_config_is_refused_and_changes_nothing(tmp_path, config):
  config.train.num_epochs = 1
  train.train_and_evaluate(config, str(tmp_path))
  saved = (tmp_path / "config.json").read_text()
  results = (tmp_path / "eval_test.json").read_text()
  config.model.latent_dim = 5
  with pytest.raises(ValueError, match=r"model.latent_dim: 4 -> 5"):
    train.train_and_evaluate(config, str(tmp_path))
  assert (tmp_path / "config.json").read_text() == saved
  assert (tmp_path / "eval_test.json").read_text() == results


def test_steps_per_call_default_is_chosen_per_model_and_resume_accepts_another(tmp_path, config):
  assert config.train.steps_per_call == 0 and config.model.encoder.name == "dense"
  run = train.setup_run(config)
  assert run.steps_per_call == runs.AUTO_STEPS_PER_CALL
  conv = config.copy_and_resolve_references()
  conv.model.encoder = component("encoder", "conv")  # gradient convolutions in a device loop
  # are slow on a CPU
  assert dataclasses.replace(run, config=conv).steps_per_call == (
      1 if jax.devices()[0].platform == "cpu" else runs.AUTO_STEPS_PER_CALL)
  config.train.steps_per_call = 3
  assert train.setup_run(config).steps_per_call == 3
  config.train.num_epochs = 1
  train.train(train.setup_run(config), str(tmp_path))
  config.train.steps_per_call, config.train.num_epochs = 0, 2  # how, not what: accepted
  assert int(train.train(train.setup_run(config), str(tmp_path)).step) == 2 * (
      train.setup_run(config).steps_per_epoch)


def test_missing_data_file_names_the_path(tmp_path, config):
  config.data.name, config.data.source, config.data.data_dir = "mnist", "local", str(tmp_path)
  with pytest.raises(FileNotFoundError, match=str(tmp_path / "mnist")):
    train.train_and_evaluate(config, str(tmp_path / "run"))


def _cifar10_config(config):
  shared = os.path.join(os.path.dirname(REPO), "shared", "data")
  if not os.path.exists(os.path.join(shared, "cifar10")):
    pytest.skip(f"no CIFAR-10 copy in {shared}")
  config.data.name, config.data.data_dir = "cifar10", shared
  return config


def test_eight_bit_data_needs_the_discretized_logistic_likelihood(config):
  config = _cifar10_config(config)
  with pytest.raises(ValueError, match="8-bit pixels.*set it to 'discretized_logistic'"):
    train.setup_run(config)


def test_eight_bit_training_reports_bits_per_dim(tmp_path, config):
  """CIFAR-10 through the discretized logistic (B.5): 20 steps of a small dense model lower the
  loss, bits/dim is the NLL over 32 x 32 x 3 values in bits, and the grids are colour images."""
  config = _cifar10_config(config)
  config.model.likelihood = component("likelihood", "discretized_logistic")
  config.train.num_epochs, config.train.batch_size = 0.04, 100
  config.eval.batch_size, config.eval.active_unit_images = 500, 1000
  config.eval.num_samples = 5
  results = train.train_and_evaluate(config, str(tmp_path))
  losses = [r["loss"] for r in _records(str(tmp_path), "train")]
  assert losses[-1] < losses[0] - 500.0
  assert results["num_points"] == 1000
  np.testing.assert_allclose(results["bits_per_dim"], results["nll"] / (3072 * np.log(2)))
  assert np.asarray(Image.open(tmp_path / "samples.png")).shape[-1] == 3


def test_bad_config_values_and_keys_give_clear_errors(config):
  config.model.prior.name = "realnpv"
  with pytest.raises(ValueError, match="valid values: standard, realnvp"):
    configuration.validate(config, num_devices=1)
  with pytest.raises(AttributeError, match="flow_depht"):
    config.model.flow_depht = 3  # locked: a typo cannot add a key


def test_cli_rejects_an_unknown_config_key(tmp_path):
  completed = subprocess.run(
      [sys.executable, "-m", "vae_jax.main", "--config=configs/quickstart.py",
       f"--workdir={tmp_path}", "--config.model.flow_depht=3"],
      cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
  assert completed.returncode != 0
  assert "flow_depht" in completed.stderr
  assert not os.path.exists(tmp_path / "config.json")


SHARDING_SCRIPT = """
import os, sys
os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
import jax, numpy as np
sys.path.insert(0, "tests")
from conftest import tiny_config
from vae_jax import evaluate, train
from vae_jax.data import batching
assert jax.device_count() == 8
results = {}
for n in (1, 8):
  config = tiny_config()
  run = train.setup_run(config, devices=jax.devices()[:n])
  optimizer = train.make_optimizer(config.train, run.total_steps)
  state = train.create_train_state(run, optimizer)
  step = train.make_train_steps(run, optimizer)
  order = batching.epoch_order(jax.random.PRNGKey(0), 0, run.train_images.shape[0])
  for _ in range(3):
    state, metrics = step(state, run.train_images, order, 1)
  assert len(state.params["posterior_loc"]["kernel"].sharding.device_set) == n
  evaluator = evaluate.DatasetEvaluator(run.model, run.mesh, 20, 10, 96)
  nll = evaluator(state.params, run.test_images, False, jax.random.PRNGKey(1))["nll"]
  results[n] = (jax.device_get(state.params), float(metrics["loss"]), nll)
for a, b in zip(jax.tree_util.tree_leaves(results[1]), jax.tree_util.tree_leaves(results[8])):
  np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)
print("SAME")
"""


def test_eight_host_devices_give_the_same_steps_and_evaluation_as_one():
  completed = subprocess.run([sys.executable, "-c", SHARDING_SCRIPT], cwd=REPO,
                             capture_output=True, text=True, timeout=600, check=False)
  assert completed.returncode == 0, completed.stderr[-3000:]
  assert "SAME" in completed.stdout


def test_schedules_follow_the_paper_scaled_to_the_run(config):
  """B.3: lr 1e-3/1e-4/1e-5 in thirds, beta 0.01 -> 1 over the first 1/24 of training."""
  paper = config_files.module("configs/xu2020.py").paper_defaults().train
  lr = train.learning_rate_schedule(paper, total_steps=2400)
  np.testing.assert_allclose([lr(0), lr(799), lr(800), lr(1599), lr(1600), lr(2399)],
                             [1e-3, 1e-3, 1e-4, 1e-4, 1e-5, 1e-5], rtol=1e-6)
  beta = lambda step: float(train.kl_weight(paper, step, total_steps=2400))
  np.testing.assert_allclose([beta(0), beta(50), beta(100), beta(2000)],
                             [0.01, 0.505, 1.0, 1.0], rtol=1e-6)


def test_l2_penalty_covers_exactly_the_nonlinear_kernels(config):
  run = train.setup_run(config)
  params = train.create_train_state(run, train.make_optimizer(config.train, 1)).params
  expected = 0.0
  for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
    names = [p.key for p in path]
    if names[-1] == "kernel" and any(n.startswith("hidden_") for n in names):
      expected += float(np.sum(np.square(leaf)))
  # encoder + decoder hidden layers and one per coupling (the prior's blocks stacked in one
  # [K, ...] kernel); the output layers are linear.
  assert expected > 0
  np.testing.assert_allclose(float(train.l2_penalty(params)), expected, rtol=1e-5)
  hidden = {jax.tree_util.keystr(p): leaf for p, leaf in
            jax.tree_util.tree_flatten_with_path(params)[0]
            if p[-1].key == "kernel" and any(k.key.startswith("hidden_") for k in p)}
  assert len(hidden) == 3
  coupling = hidden["['prior']['flow']['blocks']['coupling']['mlp']['hidden_0']['kernel']"]
  assert coupling.shape[0] == config.model.prior.num_blocks


def test_the_best_validated_parameters_come_from_after_the_kl_warm_up(tmp_path, config,
                                                                     monkeypatch):
  config.data.validation = True
  config.train.validate_every_epochs = 1
  config.train.num_epochs, config.train.kl_warmup_fraction = 4, 0.5  # warm-up: epochs 1-2
  config.train.early_stopping_patience_epochs = 1
  # Scripted validation NLLs: the lowest inside the warm-up (epoch 1), then worse, best at 3.
  scripted = iter([10.0, 20.0, 15.0, 16.0])

  class ScriptedValidator:
    def __init__(self, *args):
      del args

    def __call__(self, *args):
      nll = next(scripted)
      return {"nll": nll, "elbo": -nll, "reconstruction": -nll, "kl": 0.0, "num_samples": 1}
  monkeypatch.setattr(train.evaluate, "DatasetEvaluator", ScriptedValidator)
  run = train.setup_run(config)
  state = train.train(run, str(tmp_path))
  # Epoch 1's 10.0 is inside the warm-up; patience runs from the warm-up's end (epoch 2), so the
  # run reaches epoch 3's 15.0, and stops at epoch 4 without improvement.
  assert float(state.best_validation_nll) == 15.0
  assert int(state.best_step) == 3 * run.steps_per_epoch
  assert int(state.step) == run.total_steps
