"""VampPrior (Tomczak & Welling 2018): list the cells, print or run their commands, archive
finished runs, measure the VampPrior's training throughput against K, and collect
paper-vs-ours markdown.

  python launch/vampprior.py list
  python launch/vampprior.py commands --runs_dir=DIR [--epochs=N --warmup_epochs=W] [--cells=a,b]
  python launch/vampprior.py run --runs_dir=DIR [--epochs=N --warmup_epochs=W] [--cells=a,b]
  python launch/vampprior.py throughput [--components=1,50,500] [--steps=200] --output=FILE
  python launch/vampprior.py archive --runs_dir=DIR --to=results/vampprior/runs
  python launch/vampprior.py collect --runs_dir=results/vampprior/runs

Run from the repository root. A cell's workdir is DIR/<cell>, or DIR/<cell>-<N>ep for a reduced
budget of N epochs; with a reduced budget the KL warm-up lasts W epochs (default: the paper's 100,
or the whole run if shorter). `collect` writes results/vampprior.md: Tables 1-5 with our number
beside the paper's (blank where not run), the Figure 2-3 series, the throughput measurements,
then every archived run with its budget and settings.
"""
import argparse
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)

from vae_jax import config_files  # pylint: disable=wrong-import-position
# pylint: disable-next=wrong-import-position
from launch.runs import (BOUNDS, LEGEND, TEST_SET_SIZES, Protocol, add_archive_and_collect_parsers,
                         add_cell_parsers, archive, best_eval, cell_of, describe, fmt, label,
                         protocol, read_runs, render_runs, run_commands, run_protocol, select_cells,
                         workdir_name)
# pylint: disable-next=wrong-import-position
from vae_jax.metric_writer import write_json_atomically, write_text_atomically

vampprior = config_files.module("configs/vampprior.py")
_PAPER_WARMUP_EPOCHS = 100
THROUGHPUT_FILE = "throughput.json"

# --- the paper's numbers: test NLL in nats (the paper's LL with its sign flipped), bits/dim ----
# Table 1: dataset -> {(model, prior): value}; bits/dim for Frey Faces and Histopathology.
_TABLE1_ROWS = {
    "static_mnist": (88.56, 85.57, 86.05, 83.19, 82.41, 81.09, 80.58, 79.78),
    "mnist": (84.50, 82.38, 82.42, 81.24, 80.40, 79.75, 79.70, 78.45),
    "omniglot": (108.50, 104.75, 103.52, 101.18, 97.65, 97.56, 90.11, 89.76),
    "caltech101_silhouettes": (123.43, 114.55, 112.08, 108.28, 106.35, 104.22, 85.51, 86.22),
    "freyfaces": (4.63, 4.57, 4.61, 4.51, 4.49, 4.45, 4.43, 4.38),
    "histopathology": (6.07, 6.04, 5.82, 5.75, 5.59, 5.58, 4.84, 4.82),
}
TABLE1_COLUMNS = tuple((model, prior) for model in vampprior.MODELS
                       for prior in ("standard", "vampprior"))
TABLE1 = {dataset: dict(zip(TABLE1_COLUMNS, values)) for dataset, values in _TABLE1_ROWS.items()}
# Tables 2-5: the paper's own models, (row, model, prior, NLL). Rows of other papers are kept for
# reference with model None.
TABLES_2_TO_5 = {
    "2": ("static_mnist", (
        ("VAE (L=1) + NF [32]", None, None, 85.10), ("VAE (L=2) [6]", None, None, 87.86),
        ("IWAE (L=2) [6]", None, None, 85.32),
        ("HVAE (L=2) + SG", "hvae", "standard", 85.89), ("HVAE (L=2) + MoG", "hvae", "mog", 85.07),
        ("HVAE (L=2) + VampPrior data", "hvae", "vampprior_data", 85.71),
        ("HVAE (L=2) + VampPrior", "hvae", "vampprior", 83.19),
        ("AVB + AC (L=1) [28]", None, None, 80.20), ("VLAE [7]", None, None, 79.03),
        ("VAE + IAF [18]", None, None, 79.88),
        ("ConvHVAE (L=2) + VampPrior", "conv_hvae", "vampprior", 81.09),
        ("PixelHVAE (L=2) + VampPrior", "pixel_hvae", "vampprior", 79.78))),
    "3": ("mnist", (
        ("VAE (L=2) + VGP [40]", None, None, 81.32), ("CaGeM-0 (L=2) [25]", None, None, 81.60),
        ("LVAE (L=5) [36]", None, None, 81.74),
        ("HVAE (L=2) + VampPrior data", "hvae", "vampprior_data", 81.71),
        ("HVAE (L=2) + VampPrior", "hvae", "vampprior", 81.24),
        ("VLAE [7]", None, None, 78.53), ("VAE + IAF [18]", None, None, 79.10),
        ("PixelVAE [15]", None, None, 78.96),
        ("ConvHVAE (L=2) + VampPrior", "conv_hvae", "vampprior", 79.78),
        ("PixelHVAE (L=2) + VampPrior", "pixel_hvae", "vampprior", 78.45))),
    "4": ("omniglot", (
        ("VR-max (L=2) [24]", None, None, 103.72), ("IWAE (L=2) [6]", None, None, 103.38),
        ("LVAE (L=5) [36]", None, None, 102.11),
        ("HVAE (L=2) + VampPrior", "hvae", "vampprior", 101.18),
        ("VLAE [7]", None, None, 89.83),
        ("ConvHVAE (L=2) + VampPrior", "conv_hvae", "vampprior", 97.56),
        ("PixelHVAE (L=2) + VampPrior", "pixel_hvae", "vampprior", 89.76))),
    "5": ("caltech101_silhouettes", (
        ("IWAE (L=1) [24]", None, None, 117.21), ("VR-max (L=1) [24]", None, None, 117.10),
        ("HVAE (L=2) + VampPrior", "hvae", "vampprior", 108.28),
        ("VLAE [7]", None, None, 78.53),
        ("ConvHVAE (L=2) + VampPrior", "conv_hvae", "vampprior", 104.22),
        ("PixelHVAE (L=2) + VampPrior", "pixel_hvae", "vampprior", 86.22))),
}


def table_cells() -> list[str]:
  """The cells of the paper's Tables 1-5 and of the Figure 2-3 series, in paper order."""
  names = [vampprior.cell_name(dataset, model, prior)
           for dataset in TABLE1 for model, prior in TABLE1_COLUMNS]
  names += [vampprior.cell_name(dataset, model, prior)
            for dataset, rows in TABLES_2_TO_5.values() for _, model, prior, _ in rows if model]
  names += [vampprior.cell_name("static_mnist", "hvae", prior, k)
            for prior in vampprior.FIGURE_PRIORS for k in vampprior.FIGURE_COMPONENTS]
  return list(dict.fromkeys(names))


def command(cell: str, runs_dir: str, epochs=None, warmup_epochs=None) -> list[str]:
  args = [sys.executable, "-m", "vae_jax.main", f"--config=configs/vampprior.py:{cell}",
          f"--workdir={os.path.join(runs_dir, workdir_name(cell, epochs))}"]
  if epochs is None:
    return args
  warmup = min(warmup_epochs or _PAPER_WARMUP_EPOCHS, epochs)
  return args + [f"--config.train.num_epochs={epochs}",
                 f"--config.train.kl_warmup_fraction={warmup / epochs!r}"]


def paper_protocol(dataset: str, key: str) -> Protocol:
  """Section 5: IS-NLL with 5,000 samples (Figure 2: the ELBO) of models trained to early
  stopping, on the full test set."""
  return protocol(BOUNDS[key], vampprior.IS_SAMPLES, None, True, TEST_SET_SIZES.get(dataset))


def _run_of(runs: dict, cell: str):
  """(run, its best evaluation) of `cell`; None when not run."""
  for name, run in runs.items():
    if cell_of(name, vampprior.cells())[0] == cell:
      return run, best_eval(run, vampprior.IS_SAMPLES)
  return None


def _ours(found, dataset: str, key: str) -> str:
  """Our number `key` (an eval_test.json key) of a run that `_run_of` found, labelled with its
  protocol; blank when not run."""
  if found is None:
    return ""
  run, results = found
  return label(fmt(results[key]), run_protocol(run, results, BOUNDS[key]),
               paper_protocol(dataset, key))


def _metric(dataset: str) -> str:
  return "bits_per_dim" if dataset in vampprior.GRAY_DATASETS else "nll"


def render_tables(runs: dict) -> str:
  lines = ["# Tomczak & Welling (2018), VampPrior: paper vs ours", "",
           "Generated by `python launch/vampprior.py collect`. Test NLL in nats (the paper's LL "
           "with its sign flipped; lower is better), bits/dim for Frey Faces and Histopathology. "
           f"The paper: {describe(paper_protocol('mnist', 'nll'))} on the full test sets. "
           f"Blank: not run here. {LEGEND}", "",
           "## Table 1: standard prior vs VampPrior", "",
           "| dataset | " + " | ".join(f"{m} {p} paper | ours" for m, p in TABLE1_COLUMNS)
           + " |", "|---|" + "---|---|" * len(TABLE1_COLUMNS)]
  for dataset, paper in TABLE1.items():
    row = [f"{paper[(model, prior)]:.2f} | " + _ours(
        _run_of(runs, vampprior.cell_name(dataset, model, prior)), dataset, _metric(dataset))
           for model, prior in TABLE1_COLUMNS]
    lines.append(f"| {dataset} | " + " | ".join(row) + " |")
  for table, (dataset, rows) in TABLES_2_TO_5.items():
    lines += ["", f"## Table {table}: {dataset}", "", "| model | paper IS-NLL | ours |",
              "|---|---|---|"]
    for row, model, prior, paper in rows:
      ours = "(other paper)" if model is None else _ours(
          _run_of(runs, vampprior.cell_name(dataset, model, prior)), dataset, "nll")
      lines.append(f"| {row} | {paper:.2f} | {ours} |")
  lines += ["", "## Figures 2-3: HVAE (L=2) on static MNIST against the number of components K", "",
            "Figure 2 plots the test ELBO, Figure 3 the active units of z1 and z2 (the paper's "
            "values are read off plots and not in our text).", "",
            "| prior | K | ours ELBO | ours IS-NLL | active z1 | active z2 |",
            "|---|---|---|---|---|---|"]
  series = [("standard", 0)] + [(p, k) for p in vampprior.FIGURE_PRIORS
                                for k in vampprior.FIGURE_COMPONENTS]
  for prior, k in series:
    found = _run_of(runs, vampprior.cell_name("static_mnist", "hvae", prior, k))
    get = lambda key: "" if found is None else found[1].get(key, "")
    lines.append(f"| {prior} | {k or ''} | {_ours(found, 'static_mnist', 'elbo')} | "
                 f"{_ours(found, 'static_mnist', 'nll')} | {get('active_units_z1')} | "
                 f"{get('active_units_z2')} |")
  return "\n".join(lines) + "\n"


def render_throughput(path: str) -> str:
  if not os.path.exists(path):
    return ""
  with open(path, encoding="utf-8") as f:
    measured = json.load(f)
  lines = ["", "## Training throughput against K", "",
           f"`python launch/vampprior.py throughput` on {measured['devices']} ({measured['host']}, "
           f"{measured['cpu_count']} cores): {measured['model']}, batch {measured['batch_size']}, "
           f"{measured['steps']} timed steps after compilation, nothing else running.", "",
           "| prior | K | images/s | ms per step | step time vs standard |", "|---|---|---|---|---|"]
  base = measured["runs"][0]["ms_per_step"]
  for r in measured["runs"]:
    lines.append(f"| {r['prior']} | {r['num_components'] or ''} | {r['images_per_second']:.0f} | "
                 f"{r['ms_per_step']:.2f} | {r['ms_per_step'] / base:.2f}x |")
  return "\n".join(lines) + "\n"


def throughput(components, steps: int, output: str, cell: str) -> None:
  """Training images/s of `cell` with the standard prior and with a VampPrior of each K: the
  same jitted step as `vae_jax.main`, timed over `steps` steps after compilation."""
  import jax  # pylint: disable=import-outside-toplevel
  import platform  # pylint: disable=import-outside-toplevel
  from vae_jax import train  # pylint: disable=import-outside-toplevel
  runs = []
  for prior, k in [("standard", 0)] + [("vampprior", k) for k in components]:
    config = vampprior.get_config(cell)
    config.model.prior = vampprior.prior_config(prior, k)
    run = train.setup_run(config)
    optimizer = train.make_optimizer(config.train, run.total_steps)
    state = train.create_train_state(run, optimizer)
    step = train.make_train_steps(run, optimizer)
    order = jax.numpy.arange(run.train_images.shape[0])
    state, metrics = step(state, run.train_images, order, 1)  # compile
    jax.block_until_ready(metrics)
    start = time.perf_counter()
    for _ in range(steps):
      state, metrics = step(state, run.train_images, order, 1)
    jax.block_until_ready(metrics)
    seconds = time.perf_counter() - start
    runs.append({"prior": prior, "num_components": k, "ms_per_step": 1000 * seconds / steps,
                 "images_per_second": steps * config.train.batch_size / seconds})
    print(json.dumps(runs[-1]))
  result = {"model": cell, "batch_size": config.train.batch_size, "steps": steps,
            "devices": f"{jax.device_count()}x {jax.devices()[0].platform}",
            "host": platform.node(), "cpu_count": os.cpu_count(), "runs": runs}
  write_json_atomically(output, result)


def collect(runs_dir: str, output_dir: str) -> None:
  runs = read_runs(runs_dir)
  text = (render_tables(runs) + render_throughput(os.path.join(runs_dir, THROUGHPUT_FILE))
          + render_runs(runs))
  path = os.path.join(output_dir, "vampprior.md")
  write_text_atomically(path, text)
  print(f"wrote {path}")


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  sub = parser.add_subparsers(dest="action", required=True)
  sub.add_parser("list")
  add_cell_parsers(sub, lambda p: p.add_argument(
      "--warmup_epochs", type=int, help="KL warm-up of a reduced budget"))
  p = sub.add_parser("throughput")
  p.add_argument("--components", default="1,50,500")
  p.add_argument("--steps", type=int, default=200)
  p.add_argument("--cell", default="static_mnist-vae-vampprior")
  p.add_argument("--output", required=True)
  add_archive_and_collect_parsers(sub)
  args = parser.parse_args(argv)
  if args.action == "list":
    for cell in table_cells():
      print(cell)
  elif args.action in ("commands", "run"):
    cells = select_cells(table_cells(), args.cells, "python launch/vampprior.py list")
    return run_commands([command(cell, args.runs_dir, args.epochs, args.warmup_epochs)
                         for cell in cells], args.action == "run" and not args.dry_run, ROOT)
  elif args.action == "throughput":
    throughput([int(k) for k in args.components.split(",")], args.steps, args.output, args.cell)
  elif args.action == "archive":
    archive(args.runs_dir, args.to)
  else:
    collect(args.runs_dir, args.output_dir)
  return 0


if __name__ == "__main__":
  sys.exit(main())
