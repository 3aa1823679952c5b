"""What the paper launchers share: workdir names, reading finished runs, archiving them, the
protocol label of each of our numbers, and the markdown table of every archived run."""
import json
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
from typing import NamedTuple

from vae_jax.configuration import networks_label, upgrade_model

ARCHIVED_FILES = re.compile(r"config\.json|eval_test.*\.json|train_summary\.json|analysis\.json|"
                            r"command\.txt|(samples|reconstructions|decompressions|pseudo_inputs)"
                            r"\.png")


def workdir_name(cell: str, epochs=None) -> str:
  return cell if epochs is None else f"{cell}-{epochs}ep"


def load_json(path: str):
  """The JSON file at `path`, None if there is none; a broken file is an error that names it."""
  if not os.path.exists(path):
    return None
  try:
    with open(path, encoding="utf-8") as f:
      return json.load(f)
  except ValueError as e:
    raise ValueError(f"{path}: not valid JSON ({e})") from e


def read_runs(runs_dir: str) -> dict:
  """Workdir name -> {config, eval (by number of samples), summary} for every evaluated run."""
  runs = {}
  for name in sorted(os.listdir(runs_dir)) if os.path.isdir(runs_dir) else []:
    path = os.path.join(runs_dir, name)
    evals = [load_json(os.path.join(path, file))
             for file in (sorted(os.listdir(path)) if os.path.isdir(path) else [])
             if re.fullmatch(r"eval_test.*\.json", file)]
    if evals:
      runs[name] = {"config": load_json(os.path.join(path, "config.json")), "evals": evals,
                    "summary": load_json(os.path.join(path, "train_summary.json")) or {}}
  return runs


def cell_of(name: str, cells) -> tuple:
  """(cell, epochs or None) for a workdir name, or (None, None)."""
  match = re.fullmatch(r"(.*?)(?:-(\d+)ep)?", name)
  cell, epochs = match.group(1), match.group(2)
  return (cell, epochs) if cell in cells else (None, None)


def best_eval(run: dict, preferred: int):
  """The evaluation on the most test points; among those, the one with the paper's number of
  samples (`preferred`), else the one with the most."""
  return max(run["evals"], key=lambda r: (r["num_points"], r["num_samples"] == preferred,
                                          r["num_samples"]))


def fmt(value, digits=2) -> str:
  return "" if value is None else f"{value:.{digits}f}"


# The full test sets the papers evaluate on (vae_jax/data/sources.py; Omniglot: Burda et al.'s).
TEST_SET_SIZES = {"static_mnist": 10_000, "mnist": 10_000, "fashion_mnist": 10_000,
                  "omniglot": 8_070, "cifar10": 10_000, "caltech101_silhouettes": 2_307,
                  "freyfaces": 200}


LEGEND = ("Each of our cells says how it was measured: value · bound and L · test images where "
          "fewer than the full test set · epochs; wherever ours differs from the paper's "
          "protocol, the paper's follows in parentheses.")


class Protocol(NamedTuple):
  """How a number was measured, so that unlike numbers are never compared unawares: its bound
  ("IS-NLL", "ELBO", ...; None for a statistic that bounds nothing), the importance samples L,
  the training epochs (a paper's: the most; None: not given or not recorded), whether early
  stopping ended training, and the test images (None: not known)."""
  bound: str | None
  samples: int | None = None
  epochs: float | None = None
  early_stopping: bool = False
  test_images: int | None = None


# What the number under each eval_test.json key is, for its label; keys not here bound nothing.
BOUNDS = {"nll": "IS-NLL", "bits_per_dim": "IS-NLL bits/dim", "elbo": "ELBO",
          "reconstruction": "ELBO term", "kl": "ELBO term", "kl_z_given_x": "−ELBO − IS-NLL"}


def protocol(bound: str | None, samples=None, epochs=None, early_stopping=False,
             test_images=None) -> Protocol:
  """A Protocol whose L counts only for the bounds that involve the IS-NLL."""
  return Protocol(bound, samples if bound and "IS-NLL" in bound else None, epochs,
                  early_stopping, test_images)


def measured(results: dict, bound: str | None, epochs, early_stopping=False) -> Protocol:
  """Our protocol of a number of `bound` from one evaluation (an eval_test*.json); each test
  image counts once, however many times it was binarized."""
  points = results.get("num_points")
  test_images = None if points is None else points // results.get("test_binarizations", 1)
  return protocol(bound, results.get("num_samples"), epochs, early_stopping, test_images)


def early_stopped(config: dict | None, epochs) -> bool:
  """Whether early stopping ended a run (its config.json and the epochs it trained)."""
  train = (config or {}).get("train", {})
  return (bool(train.get("early_stopping_patience_epochs")) and epochs is not None
          and epochs < train.get("num_epochs", 0))


def run_protocol(run: dict, results: dict, bound: str | None) -> Protocol:
  """Our protocol of a number of `bound` from `results`, one evaluation of a run of
  `read_runs`: the epochs it trained and whether early stopping ended it."""
  trained = run["summary"].get("epochs")
  return measured(results, bound, trained, early_stopped(run["config"], trained))


def _bound(p: Protocol) -> str:
  return p.bound + ("" if p.samples is None else f", L={p.samples:,}")


def _epochs(epochs: float) -> str:
  """Whole epochs as they are, a fraction of one (a stopped run) to two decimals."""
  return f"{epochs:,.0f} ep" if epochs == round(epochs) else f"{epochs:.2f} ep"


def _budget(p: Protocol) -> str:
  if p.early_stopping:
    return ("" if p.epochs is None else f"≤{_epochs(p.epochs)}, ") + "early stopping"
  return "epochs not given" if p.epochs is None else _epochs(p.epochs)


def _test_images(ours: int | None, paper: int | None) -> list[str]:
  """What a cell says of its test images: nothing where they are the paper's."""
  if ours is None:
    return [] if paper is None else ["test images not recorded"]
  if paper is None:
    return [f"{ours:,} test images"]
  return [f"first {ours:,} of {paper:,} test images"] if ours < paper else []


def describe(paper: Protocol) -> str:
  """A paper's protocol in the words of `label`, for a table's header or legend."""
  return " · ".join(([_bound(paper)] if paper.bound else []) + [_budget(paper)])


def label(value: str, ours: Protocol, paper: Protocol) -> str:
  """One of our numbers with its protocol, in the cell itself: `value` · its bound and L · its
  test images where fewer than the paper's · its epochs; wherever ours differs from the
  paper's, the paper's follows in parentheses (an ELBO against an IS-NLL, fewer samples or
  epochs)."""
  parts = [value]
  if ours.bound:
    bound = _bound(ours)
    if paper.bound and ours.bound != paper.bound:
      bound += f" (paper: {_bound(paper)})"
    elif paper.samples is not None and ours.samples != paper.samples:
      bound += f" (paper: {'' if ours.samples else 'L='}{paper.samples:,})"
    parts += [bound] + _test_images(ours.test_images, paper.test_images)
  trained = ("epochs not recorded" if ours.epochs is None else _epochs(ours.epochs)
             ) + (", early-stopped" if ours.early_stopping else "")
  same = ours.early_stopping if paper.early_stopping else ours.epochs == paper.epochs
  parts.append(trained if same else f"{trained} (paper: {_budget(paper)})")
  return " · ".join(parts)


def render_runs(runs: dict) -> str:
  """Every run: settings, budget, and each evaluation."""
  lines = ["", "## Every archived run", "",
           "| run | architecture, prior, posterior | epochs | test points | IS samples | IS-NLL | "
           "ELBO | KL nats | KL bits | bits/dim of the IS-NLL | active units | train img/s |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
  for name, run in runs.items():
    model = upgrade_model(run["config"]["model"])
    networks = networks_label(run["config"]["model"])
    q, p = model["posterior"], model["prior"]
    posterior = ("gaussian" if q["name"] == "gaussian" else
                 f"{q['name']} x{q.get('num_blocks', q.get('num_steps'))} "
                 f"{tuple(q['hidden']) if q['name'] == 'iaf' else ''}")
    prior = ("vampprior_data" if p.get("from_data") else p["name"]) + (
        f" x{p['num_steps']} {tuple(p['hidden'])}" if p["name"] == "af" else "")
    if p["name"] in ("mog", "vampprior"):
      prior += f" K={p['num_components']}"
    summary = run["summary"]
    for r in sorted(run["evals"], key=lambda r: (r["num_samples"], r["num_points"])):
      samples = r["num_samples"]
      lines.append(
          f"| {name} | {networks}, {prior}, {posterior} | "
          f"{fmt(summary.get('epochs'), 0)} | {r.get('num_points', '')} | {samples} | "
          f"{r['nll']:.2f} | {r['elbo']:.2f} | "
          f"{r['kl']:.2f} | {r['kl'] / math.log(2):.1f} | {r['bits_per_dim']:.4f} | "
          f"{r.get('active_units', '')} | {fmt(summary.get('train_images_per_second'), 0)} |")
  return "\n".join(lines) + "\n"


def archive(runs_dir: str, to: str) -> None:
  """Copies each finished run's small files (no checkpoints) to `to`/<workdir name>/."""
  for name in sorted(os.listdir(runs_dir)):
    source = os.path.join(runs_dir, name)
    if not os.path.exists(os.path.join(source, "eval_test.json")):
      continue
    os.makedirs(os.path.join(to, name), exist_ok=True)
    for file in os.listdir(source):
      if ARCHIVED_FILES.fullmatch(file):
        shutil.copy2(os.path.join(source, file), os.path.join(to, name, file))


def display(cmd: list[str]) -> str:
  """A command as a user would type it: `python` for the interpreter that runs it."""
  return shlex.join(["python"] + cmd[1:])


def workdir_of(cmd: list[str], root: str = "") -> str:
  """The --workdir= argument of a command, relative to `root`."""
  return os.path.join(root, next(a.split("=", 1)[1] for a in cmd if a.startswith("--workdir=")))


def write_command(cmd: list[str], root: str = "") -> None:
  """Records a run's command line as command.txt in its workdir."""
  workdir = workdir_of(cmd, root)
  os.makedirs(workdir, exist_ok=True)
  data_dir = os.environ.get("VAE_JAX_DATA_DIR")
  prefix = f"VAE_JAX_DATA_DIR={shlex.quote(data_dir)} " if data_dir else ""
  with open(os.path.join(workdir, "command.txt"), "w", encoding="utf-8") as f:
    f.write(prefix + display(cmd) + "\n")


def select_cells(cells, cells_flag, list_command: str) -> list[str]:
  """The cells named in a comma-separated --cells flag (all when empty), checked."""
  if not cells_flag:
    return list(cells)
  chosen = [c for c in cells_flag.split(",") if c]
  unknown = [c for c in chosen if c not in cells]
  if unknown:
    raise SystemExit(f"Unknown cells: {', '.join(unknown)}. See `{list_command}`.")
  return chosen


def run_commands(commands, execute: bool, root: str) -> int:
  """Prints each command; with `execute`, runs them one after another from `root`: a finished run
  (eval_test.json in its workdir) is skipped, each command is recorded in its workdir
  (command.txt), and the first that fails stops the rest (exit status 1)."""
  for cmd in commands:
    workdir = workdir_of(cmd, root)
    if execute and os.path.exists(os.path.join(workdir, "eval_test.json")):
      print(f"finished, skipped: {workdir}", flush=True)
      continue
    print(f"{'running' if execute else 'would run'}: {display(cmd)}", flush=True)
    if not execute:
      continue
    write_command(cmd, root)
    returncode = subprocess.run(cmd, cwd=root, check=False).returncode
    if returncode:
      print(f"FAILED (exit status {returncode}): {display(cmd)}\n  workdir: {workdir}\n"
            "Stopped here; the remaining runs did not start.", file=sys.stderr)
      return 1
  return 0


def add_cell_parsers(subparsers, configure=None) -> None:
  """The `commands` and `run` actions: --runs_dir, --epochs (a reduced budget, part of the
  workdir name) and --cells; `run` also --dry_run. `configure(parser)` adds a launcher's own."""
  for name in ("commands", "run"):
    p = subparsers.add_parser(name)
    if configure is not None:
      configure(p)
    p.add_argument("--runs_dir", required=True)
    p.add_argument("--epochs", type=int, help="reduced budget; part of the workdir name")
    p.add_argument("--cells", help="comma-separated cells (default: all)")
    if name == "run":
      p.add_argument("--dry_run", action="store_true")


def add_archive_and_collect_parsers(subparsers) -> None:
  """The `archive --runs_dir --to` and `collect --runs_dir [--output_dir]` actions."""
  p = subparsers.add_parser("archive")
  p.add_argument("--runs_dir", required=True)
  p.add_argument("--to", required=True)
  p = subparsers.add_parser("collect")
  p.add_argument("--runs_dir", required=True)
  p.add_argument("--output_dir", default="results")
