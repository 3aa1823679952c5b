"""IAF (Kingma et al. 2016) and VLAE (Chen et al. 2017): list the cells, print or run their
commands, archive finished runs and collect paper-vs-ours markdown.

  python launch/iaf_vlae.py list <iaf|vlae>
  python launch/iaf_vlae.py commands <iaf|vlae> --runs_dir=DIR [--epochs=N]
  python launch/iaf_vlae.py run <iaf|vlae> --runs_dir=DIR [--epochs=N] [--cells=a,b] [--dry_run]
  python launch/iaf_vlae.py archive --runs_dir=DIR --to=results/iaf_vlae/runs
  python launch/iaf_vlae.py collect --runs_dir=results/iaf_vlae/runs

Run from the repository root. A cell's workdir is DIR/<cell>, or DIR/<cell>-<N>ep for a reduced
budget of N epochs. `collect` writes results/iaf.md and results/vlae.md: each paper table with our
number beside the paper's (blank where not run), then every archived run, cell or not, with its
budget and settings.
"""
import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)

from vae_jax import config_files  # pylint: disable=wrong-import-position
# pylint: disable-next=wrong-import-position
from launch.runs import (LEGEND, TEST_SET_SIZES, Protocol, add_archive_and_collect_parsers,
                         add_cell_parsers, archive, best_eval, cell_of, fmt, label, read_runs,
                         render_runs, run_commands, run_protocol, select_cells, workdir_name)
from vae_jax.metric_writer import write_text_atomically  # pylint: disable=wrong-import-position

iaf = config_files.module("configs/iaf.py")
vlae = config_files.module("configs/vlae.py")
# The papers' protocols (neither gives its epochs): IAF Table 1 IS-NLL with 128 samples, its
# CIFAR-10 bits/dim with samples not in our text; VLAE IS-NLL with 4,096 samples.
_IAF_TABLE1 = Protocol("IS-NLL", iaf.TABLE1_SAMPLES, test_images=TEST_SET_SIZES["mnist"])
_IAF_CIFAR = Protocol("IS-NLL bits/dim", test_images=TEST_SET_SIZES["cifar10"])

# --- the papers' numbers (nats for NLL, as positive numbers; bits/dim for CIFAR-10) -------------
# IAF Table 1 (dynamic MNIST): (VLB, log p(x) with 128 samples), signs flipped to NLL.
IAF_TABLE1 = {"diagonal": (84.08, 81.08), "iaf-d2-w320": (82.02, 79.77),
              "iaf-d2-w1920": (81.17, 79.30), "iaf-d4-w1920": (80.93, 79.17),
              "iaf-d8-w1920": (80.80, 79.10)}
IAF_TABLE2_BITS_PER_DIM = 3.11  # ResNet VAE with IAF, depth 20, bidirectional
# IAF Table 3: (layers, direction, IAF hidden layers) -> (location-only, location+scale).
IAF_TABLE3 = {(4, "bottom_up", 0): (3.67, 3.68), (4, "bottom_up", 1): (3.61, 3.61),
              (4, "bidirectional", 0): (3.66, 3.67), (4, "bidirectional", 1): (3.58, 3.56),
              (8, "bottom_up", 0): (3.54, 3.55), (8, "bottom_up", 1): (3.48, 3.49),
              (8, "bidirectional", 0): (3.51, 3.52), (8, "bidirectional", 1): (3.45, 3.42)}
# IAF Table 4: (direction, posterior) -> bits/dim at depth 4, 8, 12.
IAF_TABLE4 = {("bottom_up", "gaussian"): (3.71, 3.55, 3.44),
              ("bottom_up", "linear"): (3.68, 3.55, 3.41),
              ("bottom_up", "iaf-h1"): (3.61, 3.49, 3.38),
              ("bidirectional", "gaussian"): (3.74, 3.60, 3.46),
              ("bidirectional", "linear"): (3.67, 3.52, 3.40),
              ("bidirectional", "iaf-h1"): (3.56, 3.42, 3.28),
              ("bidirectional", "iaf-h2"): (3.54, 3.39, 3.27),
              ("bidirectional", "iaf-h1-2steps"): (3.53, 3.36, 3.26)}
# VLAE Tables 1-4, test NLL in nats; Section 4.1: E[KL] of the converged static-MNIST VLAE.
VLAE_TABLES = {"static_mnist-iaf-vae": 79.88, "static_mnist-af-vae": 79.30,
               "static_mnist-vlae": 79.03, "mnist-vlae": 78.53, "omniglot-vlae": 90.98,
               "caltech101_silhouettes-vlae": 77.36}
VLAE_KL_NATS, VLAE_KL_BITS = 13.3, 19.2


def iaf_table_cells() -> list[tuple[str, str, str]]:
  """(table, cell, label) of every number of the IAF paper's tables, in paper order."""
  rows = [("1", f"mnist-{name}", name) for name in IAF_TABLE1]
  rows.append(("2", iaf.cifar_cell("iaf-h2", "bidirectional", 20), "depth 20, bidirectional, IAF "
               "2 hidden layers"))
  rows += [("3", iaf.cifar_cell(f"iaf-h{hidden}", direction, layers, location_only),
            f"depth {layers}, {direction}, IAF {hidden} hidden, "
            + ("location-only" if location_only else "location+scale"))
           for layers, direction, hidden in IAF_TABLE3 for location_only in (True, False)]
  rows += [("4", iaf.cifar_cell(posterior, direction, layers),
            f"{direction}, {posterior}, depth {layers}")
           for direction, posterior in IAF_TABLE4 for layers in (4, 8, 12)]
  return rows


def vlae_table_cells() -> list[tuple[str, str, str]]:
  """(table, cell, label) of every number of VLAE's Tables 1-4, in paper order."""
  labels = {"static_mnist-iaf-vae": "IAF VAE", "static_mnist-af-vae": "AF VAE"}
  return [(str(vlae.DATASETS.index(cell.split("-")[0]) + 1), cell, labels.get(cell, "VLAE"))
          for cell in VLAE_TABLES]


PAPERS = {"iaf": iaf_table_cells, "vlae": vlae_table_cells}
CELLS = {"iaf": iaf.cells, "vlae": vlae.cells}


def command(paper: str, cell: str, runs_dir: str, epochs=None) -> list[str]:
  args = [sys.executable, "-m", "vae_jax.main", f"--config=configs/{paper}.py:{cell}",
          f"--workdir={os.path.join(runs_dir, workdir_name(cell, epochs))}"]
  return args + ([f"--config.train.num_epochs={epochs}"] if epochs is not None else [])


def _ours(runs: dict, cells, cell: str, paper: Protocol, samples: int) -> str:
  """The run of `cell`'s NLL in nats (or bits/dim, as `paper`'s bound says) with its protocol;
  blank when not run."""
  for name, run in runs.items():
    if cell_of(name, cells)[0] == cell:
      results = best_eval(run, samples)
      value = results["bits_per_dim" if "bits/dim" in paper.bound else "nll"]
      return label(fmt(value), run_protocol(run, results, paper.bound), paper)
  return ""


def render_iaf(runs: dict) -> str:
  cells = iaf.cells()
  lines = ["# Kingma et al. (2016), IAF: paper vs ours", "",
           "Generated by `python launch/iaf_vlae.py collect`. NLL in nats (the paper's log p(x) "
           f"with its sign flipped), bits/dim for CIFAR-10. Blank: not run here. {LEGEND}", "",
           "## Table 1: dynamically binarized MNIST (IS with 128 samples)", "",
           "| model | paper ELBO (VLB) | paper IS-NLL | ours |", "|---|---|---|---|"]
  for name, (vlb, nll) in IAF_TABLE1.items():
    ours = _ours(runs, cells, f"mnist-{name}", _IAF_TABLE1, iaf.TABLE1_SAMPLES)
    lines.append(f"| {name} | {-vlb:.2f} | {nll:.2f} | {ours} |")
  lines += ["", "Table 1's question at a budget this CPU allows (the same DenseVAE networks, 100 "
            "epochs, diagonal vs IAF posterior vs the equivalent AF prior) is in \"Every archived "
            "run\" below and in results/README.md."]
  ours = _ours(runs, cells, "cifar10-bidirectional-iaf-h2-depth20", _IAF_CIFAR, 1000)
  lines += ["", "## Table 2: CIFAR-10, ResNet VAE with IAF (depth 20)", "",
            "| paper bits/dim | ours |", "|---|---|",
            f"| {IAF_TABLE2_BITS_PER_DIM:.2f} | {ours} |", "",
            "## Table 3: CIFAR-10 bits/dim, location-only vs location+scale IAF", "",
            "| depth | inference | IAF hidden layers | paper loc-only | paper loc+scale | ours "
            "loc-only | ours loc+scale |", "|---|---|---|---|---|---|---|"]
  for (layers, direction, hidden), (loc, full) in IAF_TABLE3.items():
    ours = [_ours(runs, cells, f"cifar10-{direction}-iaf-h{hidden}-depth{layers}{suffix}",
                  _IAF_CIFAR, 1000) for suffix in ("-loc", "")]
    lines.append(f"| {layers} | {direction} | {hidden} | {loc:.2f} | {full:.2f} | {ours[0]} | "
                 f"{ours[1]} |")
  lines += ["", "## Table 4: CIFAR-10 bits/dim by ResNet depth", "",
            "| inference, posterior | paper 4 | paper 8 | paper 12 | ours 4 | ours 8 | ours 12 |",
            "|---|---|---|---|---|---|---|"]
  for (direction, posterior), paper in IAF_TABLE4.items():
    ours = [_ours(runs, cells, f"cifar10-{direction}-{posterior}-depth{d}", _IAF_CIFAR, 1000)
            for d in (4, 8, 12)]
    lines.append(f"| {direction}, {posterior} | " + " | ".join(f"{p:.2f}" for p in paper)
                 + " | " + " | ".join(ours) + " |")
  return "\n".join(lines) + "\n"


def render_vlae(runs: dict) -> str:
  cells = vlae.cells()
  lines = ["# Chen et al. (2017), VLAE: paper vs ours", "",
           "Generated by `python launch/iaf_vlae.py collect`. Test NLL in nats (the paper: IS "
           f"with 4096 samples). Blank: not run here. {LEGEND}", "",
           "| table | dataset, model | paper IS-NLL | ours |", "|---|---|---|---|"]
  for table, cell, row in vlae_table_cells():
    dataset = cell.split("-")[0]
    paper = Protocol("IS-NLL", vlae.IS_SAMPLES, test_images=TEST_SET_SIZES[dataset])
    lines.append(f"| {table} | {dataset}, {row} | {VLAE_TABLES[cell]:.2f} | "
                 f"{_ours(runs, cells, cell, paper, vlae.IS_SAMPLES)} |")
  lines += ["", f"Section 4.1: the converged static-MNIST VLAE has E[KL(q(z|x) || p(z))] = "
            f"{VLAE_KL_NATS} nats = {VLAE_KL_BITS} bits per image; ours are in "
            "the KL columns below.", "",
            "Not runnable here yet: Omniglot (no 28x28 `chardata.mat` in ../shared/data; the loader "
            "exists). Caltech-101 Silhouettes runs (its cell, file and loader are here) but has not "
            "been run. Tables 2-3's \"Unconditional Decoder\" (the PixelCNN trained alone) has no "
            "cell."]
  return "\n".join(lines) + "\n"


def collect(runs_dir: str, output_dir: str) -> None:
  runs = read_runs(runs_dir)
  for paper, render in (("iaf", render_iaf), ("vlae", render_vlae)):
    cells = CELLS[paper]()
    own = {n: r for n, r in runs.items()
           if cell_of(n, cells)[0] or (paper == "iaf" and not any(
               cell_of(n, c())[0] for c in CELLS.values()))}
    path = os.path.join(output_dir, f"{paper}.md")
    write_text_atomically(path, render(runs) + render_runs(own))
    print(f"wrote {path}")


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  sub = parser.add_subparsers(dest="action", required=True)
  sub.add_parser("list").add_argument("paper", choices=PAPERS)
  add_cell_parsers(sub, lambda p: p.add_argument("paper", choices=PAPERS))
  add_archive_and_collect_parsers(sub)
  args = parser.parse_args(argv)
  if args.action == "list":
    for table, cell, name in PAPERS[args.paper]():
      print(f"Table {table}\t{cell}\t{name}")
  elif args.action in ("commands", "run"):
    cells = select_cells([cell for _, cell, _ in PAPERS[args.paper]()], args.cells,
                         f"python launch/iaf_vlae.py list {args.paper}")
    return run_commands([command(args.paper, cell, args.runs_dir, args.epochs) for cell in cells],
                        args.action == "run" and not args.dry_run, ROOT)
  elif args.action == "archive":
    archive(args.runs_dir, args.to)
  else:
    collect(args.runs_dir, args.output_dir)
  return 0


if __name__ == "__main__":
  sys.exit(main())
