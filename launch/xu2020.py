"""Xu et al. (2020): list the tables' cells, train them, and collect paper-vs-ours markdown.

  python launch/xu2020.py list [TABLE]
  python launch/xu2020.py slug CELL
  python launch/xu2020.py commands <TABLE|all> --runs_dir=DIR [--epochs=N]
  python launch/xu2020.py run <TABLE|all> --runs_dir=DIR [--epochs=N] [--dry_run]
  python launch/xu2020.py collect --runs_dir=DIR [--runs_dir=DIR2 ...] [--output=results/xu2020.md]
  python launch/xu2020.py archive --runs_dir=DIR --to=results/xu2020/runs

Run from the repository root. A cell's workdir is DIR/<cell_slug(cell)>, plus -<N>ep for a
reduced budget of N epochs. `collect` also reads workdirs of a cell with epochs=<N> and
width=<fraction> tokens (launch/cifar10_budget.sh), each width in rows of its own. Post-hoc and
iterative cells start from their pretraining cell's workdir, which comes first in `commands` and
`run`.
"""
import argparse
import dataclasses
import functools
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)

# pylint: disable=wrong-import-position
from launch import runs as runs_lib
from launch import xu2020_tables
from vae_jax import config_files
from vae_jax.metric_writer import write_text_atomically
# pylint: enable=wrong-import-position

xu2020 = config_files.module("configs/xu2020.py")
_BUDGET_SUFFIX = re.compile(r"(?P<slug>.+?)(?:-[0-9.]+ep)?")


def workdir_name(cell: str, epochs: int | None = None) -> str:
  return runs_lib.workdir_name(xu2020.cell_slug(cell), epochs)


def ordered_cells(table: str) -> list[str]:
  """The cells of a table (or of "all"), each preceded by its pretraining cell, if any."""
  cells = xu2020_tables.all_cells() if table == "all" else xu2020_tables.cells(table)
  ordered = {}
  for cell in cells:
    pretraining = xu2020.pretraining_cell(cell)
    if pretraining:
      ordered[pretraining] = None
    ordered[cell] = None
  return list(ordered)


def command(cell: str, runs_dir: str, epochs: int | None = None, overrides=()) -> list[str]:
  """The training command of one cell, as an argument list; `overrides` are extra
  "key=value" config settings (for example "eval.num_samples=100")."""
  argv = [sys.executable, "-m", "vae_jax.main", f"--config=configs/xu2020.py:{cell}",
          f"--workdir={os.path.join(runs_dir, workdir_name(cell, epochs))}"]
  if epochs is not None:
    argv.append(f"--config.train.num_epochs={epochs}")
  argv += [f"--config.{override}" for override in overrides]
  pretraining = xu2020.pretraining_cell(cell)
  if pretraining:
    argv.append("--config.train.init_from="
                + os.path.join(runs_dir, workdir_name(pretraining, epochs)))
  return argv


def commands(table: str, runs_dir: str, epochs: int | None = None) -> list[list[str]]:
  return [command(cell, runs_dir, epochs) for cell in ordered_cells(table)]


def run(table: str, runs_dir: str, epochs: int | None, dry_run: bool) -> int:
  return run_cells(ordered_cells(table), runs_dir, epochs, dry_run)


def run_cells(cells, runs_dir: str, epochs: int | None, dry_run: bool, overrides=()) -> int:
  """Trains the cells one after another (launch/runs.py: finished ones are skipped, the first
  failure stops the rest)."""
  runs_dir = os.path.abspath(runs_dir)
  return runs_lib.run_commands([command(cell, runs_dir, epochs, overrides) for cell in cells],
                               not dry_run, ROOT)


def _known_slugs() -> set[str]:
  return {xu2020.cell_slug(cell) for cell in ordered_cells("all")}


_WIDTH_TOKEN = re.compile(r"-width(?P<width>[0-9.]+)")
_EPOCHS_TOKEN = re.compile(r"-epochs[0-9.]+")


def table_cell_of(name: str, slugs: set[str]) -> tuple[str, float] | None:
  """(table cell slug, width) of a workdir name; None if it runs no table cell. A -<N>ep suffix
  or an epochs=<N> token is a reduced budget of the cell, a width=<fraction> token a narrower
  model than the paper's (width 1)."""
  slug = _BUDGET_SUFFIX.fullmatch(name)["slug"]
  width = _WIDTH_TOKEN.search(slug)
  if width:
    slug = slug.replace(width[0], "", 1)
  if slug not in slugs:
    slug = _EPOCHS_TOKEN.sub("", slug, count=1)
  if slug not in slugs:
    return None
  return slug, float(width["width"]) if width else 1.0


def finished_workdirs(runs_dirs) -> dict[tuple[str, float], list[str]]:
  """(cell slug, width) -> the finished workdirs (with eval_test.json) of that cell and model
  width, at any budget."""
  slugs = _known_slugs()
  found = {}
  for runs_dir in runs_dirs:
    for name in sorted(os.listdir(runs_dir)):
      workdir = os.path.join(runs_dir, name)
      key = table_cell_of(name, slugs)
      if key and os.path.isfile(os.path.join(workdir, "eval_test.json")):
        found.setdefault(key, []).append(workdir)
  return found


def read_run(workdir: str) -> dict:
  """A finished workdir's results, epochs, config and command (None/"" where the file is
  absent)."""
  command_path = os.path.join(workdir, "command.txt")
  command_line = ""
  if os.path.exists(command_path):
    with open(command_path, encoding="utf-8") as f:
      command_line = f.read().strip()
  results = runs_lib.load_json(os.path.join(workdir, "eval_test.json"))
  # analysis.json: from vae_jax.analyze (Table B.5).
  results.update(runs_lib.load_json(os.path.join(workdir, "analysis.json")) or {})
  summary = runs_lib.load_json(os.path.join(workdir, "train_summary.json"))
  # An evaluation of an unfinished run (vae_jax.evaluate) records the epochs it had trained.
  return {"results": results,
          "epochs": summary["epochs"] if summary else results.get("epochs"),
          "config": runs_lib.load_json(os.path.join(workdir, "config.json")),
          "command": command_line}


def _ours(metric: str, results: dict):
  if metric == "kl_z_given_x":
    if "nll" not in results or "elbo" not in results:
      return None
    return -results["nll"] - results["elbo"]
  return results.get(metric)


def _format(value: float, table: str, metric: str) -> str:
  """A number with the paper's printed precision for that table and metric."""
  if metric.startswith("active_units"):
    return f"{round(value, 1):g}"
  if metric.startswith("aggregated_posterior_kl"):
    return f"{value:.3f}"
  if metric == "posterior_std":
    return f"{value:.4f}"
  return f"{value:.{1 if table == 'B.7' else 2}f}"


@functools.cache
def _paper_setup(cell: str) -> tuple:
  """(IS samples, epochs, early stopping?, test images) of the paper's protocol for a cell, as
  its config sets them (B.1, B.3)."""
  config = xu2020.get_config(cell)
  return (config.eval.num_samples, config.train.num_epochs,
          config.train.early_stopping_patience_epochs > 0,
          runs_lib.TEST_SET_SIZES.get(config.data.name))


def paper_protocol(cell: str, metric: str) -> runs_lib.Protocol:
  """How the paper measured `metric` of `cell`, for our number's label."""
  return runs_lib.protocol(runs_lib.BOUNDS.get(metric), *_paper_setup(cell))


def _escape(text: str) -> str:
  return text.replace("|", "\\|")


def render(runs: dict[tuple[str, float], dict], runs_dirs) -> str:
  """The markdown of all tables, given (cell slug, width) -> the chosen run of that cell."""
  samples = sorted({r["results"]["num_samples"] for r in runs.values()
                    if "num_samples" in r["results"]})
  lines = [
      "# Xu et al. (2020): paper vs. our runs", "",
      "Generated by `python launch/xu2020.py collect` from "
      + ", ".join(f"`{d}`" for d in runs_dirs) + ".", "",
      "Legend. Values are in nats per image, except Table B.2 (bits per dimension on CIFAR-10). "
      "NLL is the importance-sampled negative log-likelihood, with the number of importance "
      "samples per test point in each run's eval_test.json (`num_samples`; the paper: 1,000; "
      f"ours: {', '.join(str(s) for s in samples) or 'no runs yet'}). "
      "kl_z_given_x = -NLL - ELBO. Paper values are means over 3 runs (± their standard "
      "deviation where printed); ours are single runs, blank where the cell has not been run, "
      "and reference rows (other papers' models) have none. The paper's protocol: IS-NLL with "
      "L=1,000 on the full test sets, ELBO and its terms on the same, after 2,400 epochs "
      "(post-hoc and iterative priors: 3,200 more after pre-training; Table B.4: 300; "
      f"StaticMNIST and PixelVAE: early stopping within them). {runs_lib.LEGEND} The bound is "
      "the IS-NLL, the ELBO, an ELBO term, or −ELBO − IS-NLL for kl_z_given_x (none for counts "
      "and statistics). Hardware: devices and CPU cores of our run. Command: the exact command "
      "that trained it (command.txt).", ""]
  for table in xu2020_tables.TABLES.values():
    lines += [f"## Table {table.name}: {table.title}", "",
              "| row | column | metric | paper | ours | hardware | command |",
              "|---|---|---|---|---|---|---|"]
    for entry in table.entries:
      paper = "" if entry.paper is None else _format(entry.paper, table.name, entry.metric)
      if entry.paper_std is not None:
        paper += " ± " + _format(entry.paper_std, table.name, entry.metric)
      slug = xu2020.cell_slug(entry.cell) if entry.cell else None
      lines.append(_row(entry, table.name, paper, runs.get((slug, 1.0))))
      # Narrower models than the paper's: own rows, without the paper's number beside them.
      for (other, width), chosen in sorted(runs.items(), key=lambda item: -item[0][1]):
        if other == slug and width != 1.0:
          column = f"{entry.column}, our width={width:g} variant (not the paper's model)"
          lines.append(_row(dataclasses.replace(entry, column=column), table.name, "", chosen))
    lines.append("")
  return "\n".join(lines)


def _row(entry, table_name: str, paper: str, chosen: dict | None) -> str:
  """One markdown row: the entry, the paper's number and our chosen run's with its protocol
  (blank without one)."""
  ours = hardware = command_line = ""
  if chosen:
    results = chosen["results"]
    value = _ours(entry.metric, results)
    if value is not None:
      protocol = runs_lib.measured(
          results, runs_lib.BOUNDS.get(entry.metric), chosen["epochs"],
          runs_lib.early_stopped(chosen["config"], chosen["epochs"]))
      ours = runs_lib.label(_format(value, table_name, entry.metric), protocol,
                            paper_protocol(entry.cell, entry.metric))
    if "devices" in results:
      hardware = results["devices"] + (
          f", {results['cpu_count']} CPU cores" if "cpu_count" in results else "")
    command_line = f"`{chosen['command']}`" if chosen["command"] else ""
  return "| " + " | ".join(_escape(c) for c in (
      entry.row, entry.column, entry.metric, paper, ours, hardware, command_line)) + " |"


def collect(runs_dirs, output: str) -> None:
  """Reads every finished cell workdir, then writes the markdown; nothing is written on error."""
  runs = {}
  for key, workdirs in finished_workdirs(runs_dirs).items():
    candidates = [read_run(w) for w in workdirs]
    runs[key] = max(candidates, key=lambda r: -1 if r["epochs"] is None else r["epochs"])
  write_text_atomically(output, render(runs, runs_dirs))
  print(f"wrote {output}: {len(runs)} cells with results")


def _list(table: str | None) -> None:
  if table is None:
    for name, t in xu2020_tables.TABLES.items():
      print(f"{name:5} {len(xu2020_tables.cells(name)):3} cells  {t.title}")
    return
  for cell in xu2020_tables.cells(table):
    print(f"{cell}\t{workdir_name(cell)}")


def main(argv=None) -> int:
  tables = list(xu2020_tables.TABLES)
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  sub = parser.add_subparsers(dest="action", required=True)
  list_parser = sub.add_parser("list", help="tables, or one table's cells and workdir names")
  list_parser.add_argument("table", nargs="?", choices=tables)
  sub.add_parser("slug", help="a cell's workdir name").add_argument("cell")
  for action in ("commands", "run"):
    p = sub.add_parser(action, help=f"{action} the training of a table's cells")
    p.add_argument("table", choices=tables + ["all"])
    p.add_argument("--runs_dir", required=True)
    p.add_argument("--epochs", type=int, help="reduced budget; part of the workdir name")
    if action == "run":
      p.add_argument("--dry_run", action="store_true", help="print what would run")
  collect_parser = sub.add_parser("collect", help="paper vs. ours markdown")
  collect_parser.add_argument("--runs_dir", action="append", required=True)
  collect_parser.add_argument("--output", default="results/xu2020.md")
  archive_parser = sub.add_parser("archive", help="copy the runs' small files")
  archive_parser.add_argument("--runs_dir", required=True)
  archive_parser.add_argument("--to", required=True)
  args = parser.parse_args(argv)

  if args.action in ("commands", "run") and args.epochs is not None and args.epochs < 1:
    parser.error("--epochs must be positive")
  if args.action == "list":
    _list(args.table)
  elif args.action == "slug":
    print(workdir_name(args.cell))
  elif args.action == "commands":
    for argv_ in commands(args.table, args.runs_dir, args.epochs):
      print(runs_lib.display(argv_))
  elif args.action == "run":
    return run(args.table, args.runs_dir, args.epochs, args.dry_run)
  elif args.action == "collect":
    try:
      collect(args.runs_dir, args.output)
    except (OSError, ValueError, KeyError) as e:
      print(f"collect failed, {args.output} left unchanged: {type(e).__name__}: {e}",
            file=sys.stderr)
      return 1
  else:
    runs_lib.archive(args.runs_dir, args.to)
  return 0


if __name__ == "__main__":
  sys.exit(main())
