"""One model trained and evaluated on 1 device, 8 host devices and 2 processes: same numbers?

  python launch/scaling.py --runs_dir=/tmp/scaling --output=results/scaling.md

Runs `python -m vae_jax.main` with the same config (default: DenseVAE, RealNVP prior K=20,
batch 128, dynamically binarized MNIST; a short budget) three ways on this machine:
  1 process on 1 device; 1 process on 8 host devices (XLA_FLAGS); 2 processes on 127.0.0.1
  (launch/local.py, gloo collectives), 1 device each.
It compares every logged training loss, the test IS-NLL/ELBO and the final parameters with the
1-device run, restores the 2-process checkpoint in this (1-process) launcher, and writes the
step times. On one machine the host devices and processes share the same cores, so the step
times measure overhead, not speed-up.
"""
import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)

import numpy as np  # pylint: disable=wrong-import-position

from launch.runs import display  # pylint: disable=wrong-import-position

SETUPS = {  # name -> (launcher prefix, environment)
    "1 process, 1 device": ([], {}),
    "1 process, 8 host devices": ([], {"XLA_FLAGS": "--xla_force_host_platform_device_count=8"}),
    "2 processes, 1 device each": (["launch/local.py", "--num_processes=2", "--"], {}),
}


def _load(workdir, name):
  with open(os.path.join(workdir, name), encoding="utf-8") as f:
    return [json.loads(line) for line in f] if name.endswith(".jsonl") else json.load(f)


def run_setup(name, workdir, config, overrides):
  prefix, env = SETUPS[name]
  command = [sys.executable, "-m", "vae_jax.main", f"--config={config}",
             f"--workdir={workdir}"] + overrides
  full = ([sys.executable] + prefix + command) if prefix else command
  environment = dict(os.environ, **env)
  shown = " ".join(f"{k}={v}" for k, v in env.items())
  shown = (shown + " " if shown else "") + display(full)
  print(f"== {name}: {shown}", flush=True)
  if not os.path.exists(os.path.join(workdir, "eval_test.json")):
    subprocess.run(full, cwd=ROOT, env=environment, check=True)
  return shown


def compare(runs_dir, names):
  from vae_jax import checkpoints  # pylint: disable=import-outside-toplevel
  import jax  # pylint: disable=import-outside-toplevel
  reference = None
  rows = []
  for name in names:
    workdir = os.path.join(runs_dir, name.replace(" ", "_").replace(",", ""))
    train_records = [r for r in _load(workdir, "metrics.jsonl") if r["split"] == "train"]
    evaluation = _load(workdir, "eval_test.json")
    summary = _load(workdir, "train_summary.json")
    params = jax.tree_util.tree_leaves(checkpoints.restore_params(workdir))
    row = {"setup": name, "devices": evaluation["devices"],
           "ms_per_step": 1000 * 128 / summary["train_images_per_second"],
           "images_per_second": summary["train_images_per_second"],
           "nll": evaluation["nll"], "elbo": evaluation["elbo"],
           "num_samples": evaluation["num_samples"], "num_points": evaluation["num_points"],
           "epochs": summary["epochs"],
           "is_seconds": evaluation["seconds"],
           "losses": [r["loss"] for r in train_records], "params": params}
    if reference is None:
      reference = row
    row["max_loss_rel_diff"] = max(abs(a - b) / abs(b) for a, b in
                                   zip(row["losses"], reference["losses"]))
    row["nll_diff"] = row["nll"] - reference["nll"]
    row["max_param_abs_diff"] = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
                                    for a, b in zip(row["params"], reference["params"]))
    rows.append(row)
  return rows


def first_steps(config_path: str, steps=(1, 2, 5, 10, 20, 50)) -> list[str]:
  """Table rows: 1 vs 8 host devices over the first optimizer steps, the same batches. Run in a
  process started with 8 host devices (XLA_FLAGS)."""
  import jax  # pylint: disable=import-outside-toplevel
  from ml_collections import config_flags  # pylint: disable=import-outside-toplevel
  from vae_jax import parallel, train  # pylint: disable=import-outside-toplevel
  from vae_jax.data import batching  # pylint: disable=import-outside-toplevel
  config = config_flags.config_flags._LoadConfigModule("config", config_path).get_config()  # pylint: disable=protected-access
  config.eval.batch_size = 400
  records = {}
  for n in (1, 8):
    run = train.setup_run(config, devices=jax.devices()[:n])
    optimizer = train.make_optimizer(config.train, run.total_steps)
    state = train.create_train_state(run, optimizer)
    train_steps = train.make_train_steps(run, optimizer)
    order = parallel.replicate(np.asarray(batching.epoch_order(
        jax.random.PRNGKey(0), 0, run.train_images.shape[0])), run.mesh)
    records[n] = []
    for step in range(1, max(steps) + 1):
      state, metrics = train_steps(state, run.train_images, order, 1)
      if step in steps:
        records[n].append((step, float(metrics["loss"]), float(metrics["grad_norm"]),
                           jax.device_get(state.params)))
  rows = []
  for (step, loss_1, norm_1, params_1), (_, loss_8, norm_8, params_8) in zip(records[1],
                                                                              records[8]):
    diff = max(float(np.max(np.abs(a - b))) for a, b in
               zip(jax.tree_util.tree_leaves(params_1), jax.tree_util.tree_leaves(params_8)))
    rows.append(f"| {step} | {abs(loss_1 - loss_8) / abs(loss_1):.1e} | "
                f"{abs(norm_1 - norm_8) / norm_1:.1e} | {diff:.1e} |")
  return rows


def _protocol(row) -> str:
  """The IS-NLL's samples, test images and training budget (the same for every row)."""
  epochs = f"{row['epochs']:g} epoch" + ("" if row["epochs"] == 1 else "s")
  return f"L={row['num_samples']:,}, {row['num_points']:,} test images, {epochs}"


def render(rows, commands, overrides):
  lines = ["# 1 device vs 8 host devices vs 2 processes", "",
           "Written by `python launch/scaling.py`. The same config trained and evaluated three "
           "ways on this machine; differences are against the 1-device run (losses: every "
           "logged training interval; parameters: the final checkpoint, restored in one "
           "process). The host devices and processes share the same CPU cores, so the step "
           "times show overhead, not speed-up.", "", "Commands:", ""]
  lines += [f"    {c}" for c in commands]
  lines += ["", f"Overrides: `{' '.join(overrides)}`", "",
            f"| setup | devices | ms/step | train img/s | test IS-NLL ({_protocol(rows[0])}) | "
            "NLL diff | max rel. loss diff | max param diff | IS seconds |",
            "|---|---|---|---|---|---|---|---|---|"]
  for r in rows:
    lines.append(f"| {r['setup']} | {r['devices']} | {r['ms_per_step']:.2f} | "
                 f"{r['images_per_second']:,.0f} | {r['nll']:.4f} | {r['nll_diff']:.1e} | "
                 f"{r['max_loss_rel_diff']:.1e} | {r['max_param_abs_diff']:.1e} | "
                 f"{r['is_seconds']:.1f} |")
  return "\n".join(lines) + "\n"


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--runs_dir", required=True)
  parser.add_argument("--output", default="results/scaling.md")
  parser.add_argument("--config", default="configs/mnist_realnvp.py")
  parser.add_argument("--epochs", type=float, default=1.0)
  parser.add_argument("--test_images", type=int, default=1000)
  parser.add_argument("--num_samples", type=int, default=1000)
  parser.add_argument("--first_steps", action="store_true",
                      help="only print the first-steps table (needs 8 host devices)")
  args = parser.parse_args(argv)
  if args.first_steps:
    print("\n".join(first_steps(args.config)))
    return 0
  overrides = [f"--config.train.num_epochs={args.epochs}", "--config.train.log_every_steps=50",
               f"--config.eval.num_samples={args.num_samples}",
               f"--config.eval.test_images={args.test_images}",
               "--config.eval.batch_size=400",  # divisible by 8 devices
               "--config.eval.active_unit_images=1000", "--config.eval.active_unit_samples=10"]
  commands = [run_setup(name, os.path.join(args.runs_dir,
                                           name.replace(" ", "_").replace(",", "")),
                        args.config, overrides) for name in SETUPS]
  rows = compare(args.runs_dir, list(SETUPS))
  completed = subprocess.run(
      [sys.executable, "launch/scaling.py", "--first_steps", f"--config={args.config}",
       "--runs_dir=-"], cwd=ROOT, capture_output=True, text=True, check=True,
      env=dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8"))
  text = render(rows, commands, overrides) + FIRST_STEPS + completed.stdout
  from vae_jax.metric_writer import write_text_atomically  # pylint: disable=import-outside-toplevel
  write_text_atomically(args.output, text)
  print(text)
  return 0


FIRST_STEPS = """
## Where the runs part: the first steps, 1 vs 8 host devices

The same batches, one step per call (`python launch/scaling.py --first_steps`, 8 host devices).
Loss and gradient norm agree to float precision at the first step, yet a few parameters already
differ by up to 0.8 x the learning rate. Adam's first update is lr * g / (|g| + eps) per
parameter: for a gradient element near zero (|g| of order eps = 1e-8, where many per-example
terms cancel) the float rounding of the batch sum, which differs when it is split over 8 devices,
changes the update by a good fraction of lr, even its sign (the largest such difference after
step 1 is in the encoder's first kernel). From then on the two runs follow slightly different
paths, as any two float orderings of the same training do; the tiny model of the tests has no such
parameters and matches to 1e-5 after 23 steps.

| step | loss rel. diff | grad norm rel. diff | max param diff |
|---|---|---|---|
"""


if __name__ == "__main__":
  sys.exit(main())
