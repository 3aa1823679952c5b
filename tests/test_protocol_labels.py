"""Every number of ours in results/*.md says how it was measured (issue #21): its bound, its
importance samples, its test images and its epochs, and where any differs from the paper's
protocol the cell itself says so (launch/runs.py's `label`)."""
import json
import os
import re

import pytest

from conftest import launch_module

runs_lib = launch_module("runs.py")
Protocol = runs_lib.Protocol
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAPER = Protocol("IS-NLL", 1000, 2400.0, False, 10_000)
# A labelled cell: a number, the bound part (absent for statistics), maybe the test images, and
# the epochs part last.
_LABELLED = re.compile(r"-?\d[\d,.]* · (.+ · )?(\d[\d,.]* ep|epochs not recorded)[^·]*")


def test_a_number_measured_as_in_the_paper_is_not_flagged():
  assert runs_lib.label("81.00", PAPER, PAPER) == "81.00 · IS-NLL, L=1,000 · 2,400 ep"


def test_fewer_importance_samples_are_said_in_the_cell():
  ours = PAPER._replace(samples=100)
  assert runs_lib.label("81.00", ours, PAPER) == (
      "81.00 · IS-NLL, L=100 (paper: 1,000) · 2,400 ep")
  unrecorded = PAPER._replace(samples=None)
  assert "IS-NLL (paper: L=1,000)" in runs_lib.label("81.00", unrecorded, PAPER)


def test_fewer_epochs_are_said_in_the_cell():
  assert runs_lib.label("86.53", PAPER._replace(epochs=200.0), PAPER) == (
      "86.53 · IS-NLL, L=1,000 · 200 ep (paper: 2,400 ep)")
  assert runs_lib.label("1.00", PAPER._replace(epochs=0.64020486), PAPER).endswith(
      " · 0.64 ep (paper: 2,400 ep)")


def test_fewer_test_images_are_said_in_the_cell():
  assert runs_lib.label("4.56", PAPER._replace(test_images=1000), PAPER) == (
      "4.56 · IS-NLL, L=1,000 · first 1,000 of 10,000 test images · 2,400 ep")
  # Against a test set of unknown size the count is said anyway.
  assert "· 200 test images ·" in runs_lib.label(
      "4.56", PAPER._replace(test_images=200), PAPER._replace(test_images=None))


def test_an_elbo_is_never_mistaken_for_an_is_nll():
  elbo = Protocol("ELBO", None, 2400.0, False, 10_000)
  assert runs_lib.label("-90.82", elbo, PAPER) == (
      "-90.82 · ELBO (paper: IS-NLL, L=1,000) · 2,400 ep")
  assert runs_lib.label("-90.82", elbo, elbo) == "-90.82 · ELBO · 2,400 ep"


def test_early_stopping_against_the_papers_early_stopping():
  paper = Protocol("IS-NLL", 5000, None, True, 2307)
  stopped = runs_lib.measured({"num_samples": 5000, "num_points": 2307}, "IS-NLL", 151.0, True)
  assert runs_lib.label("124.85", stopped, paper) == (
      "124.85 · IS-NLL, L=5,000 · 151 ep, early-stopped")
  cut_short = stopped._replace(early_stopping=False, epochs=60.0)
  assert runs_lib.label("89.80", cut_short, paper).endswith(" · 60 ep (paper: early stopping)")
  assert runs_lib.describe(paper) == "IS-NLL, L=5,000 · early stopping"
  assert runs_lib.describe(PAPER._replace(early_stopping=True)) == (
      "IS-NLL, L=1,000 · ≤2,400 ep, early stopping")


def test_measured_reads_an_evaluation():
  """Test images count once however often binarized; L only for bounds of the IS-NLL."""
  results = {"num_samples": 1000, "num_points": 100_000, "test_binarizations": 10}
  assert runs_lib.measured(results, "IS-NLL", 200.0) == Protocol("IS-NLL", 1000, 200.0, False,
                                                                  10_000)
  assert runs_lib.measured(results, "ELBO", 200.0).samples is None
  assert runs_lib.measured({}, None, None) == Protocol(None)
  config = {"train": {"num_epochs": 500.0, "early_stopping_patience_epochs": 50}}
  assert runs_lib.early_stopped(config, 151.0)
  assert not runs_lib.early_stopped(config, 500.0)
  assert not runs_lib.early_stopped({"train": {"num_epochs": 500.0}}, 151.0)
  assert not runs_lib.early_stopped({}, 151.0)


def _ours_cells(markdown: str) -> list[str]:
  """The non-empty cells of every column headed "ours..." in the markdown's tables."""
  cells, header = [], None
  for line in markdown.splitlines():
    if not line.startswith("|"):
      header = None
      continue
    row = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip()[1:-1])]
    if header is None:
      header = row
    elif not set(line) <= set("|-"):
      cells += [c for h, c in zip(header, row) if h.startswith("ours") and c]
  return cells


def _assert_labelled(markdown: str) -> list[str]:
  cells = [c for c in _ours_cells(markdown) if c != "(other paper)"]
  for cell in cells:
    assert _LABELLED.fullmatch(cell), f"unlabelled: {cell!r}"
  return cells


def _write_run(path, results: dict, epochs: float, config=None) -> None:
  os.makedirs(path)
  for name, content in (("eval_test.json", results), ("train_summary.json", {"epochs": epochs}),
                        ("config.json", config or {})):
    with open(os.path.join(path, name), "w", encoding="utf-8") as f:
      json.dump(content, f)


def test_xu2020_tables_flag_every_difference_from_the_papers_protocol(tmp_path):
  """A CIFAR-10 run with 100 samples on 1,000 test images after 4 epochs, and an MNIST run as
  the paper evaluates it (10,000 images, each binarized 10 times) but at 200 epochs."""
  runs = tmp_path / "runs"
  _write_run(str(runs / "resnet-standard-cifar10-4ep"),
             {"nll": 9000.0, "elbo": -9100.0, "bits_per_dim": 4.56, "num_samples": 100,
              "num_points": 1000}, 4.0)
  _write_run(str(runs / "dense-standard-mnist-200ep"),
             {"nll": 86.9, "elbo": -91.24, "num_samples": 1000, "num_points": 100_000,
              "test_binarizations": 10}, 200.0)
  launcher = launch_module("xu2020.py")
  launcher.collect([str(runs)], str(tmp_path / "out.md"))
  markdown = (tmp_path / "out.md").read_text(encoding="utf-8")
  cells = _assert_labelled(markdown)
  assert ("4.56 · IS-NLL bits/dim, L=100 (paper: 1,000) · first 1,000 of 10,000 test images · "
          "4 ep (paper: 2,400 ep)") in cells
  assert "86.90 · IS-NLL, L=1,000 · 200 ep (paper: 2,400 ep)" in cells
  assert "-91.24 · ELBO · 200 ep (paper: 2,400 ep)" in cells


def _collect_all(out) -> dict:
  """Each paper launcher's markdown from the archived runs (read only, named as the committed
  tables name them: from the repository's root), written under `out`."""
  launch_module("xu2020.py").collect(["results/xu2020/runs"], str(out / "xu2020.md"))
  for script, folder in (("vampprior.py", "vampprior"), ("serevae.py", "serevae"),
                         ("iaf_vlae.py", "iaf_vlae")):
    launch_module(script).collect(os.path.join("results", folder, "runs"), str(out))
  return {name: (out / f"{name}.md").read_text(encoding="utf-8")
          for name in ("xu2020", "vampprior", "serevae", "iaf", "vlae")}


def test_tables_regenerated_from_the_archived_runs_have_no_bare_number(tmp_path, monkeypatch):
  monkeypatch.chdir(_ROOT)
  markdowns = _collect_all(tmp_path)
  for name, markdown in markdowns.items():
    cells = _assert_labelled(markdown)
    # Our archived CIFAR-10 runs use 5 to 100 samples on the 1,000 test images of the data
    # directory, the paper 1,000 samples on all 10,000: each cell says so.
    for cell in cells:
      samples = re.search(r"L=([\d,]+)", cell)
      if name == "xu2020" and samples and samples[1] != "1,000":
        assert f"L={samples[1]} (paper: 1,000) · first 1,000 of 10,000 test images" in cell, cell
  for name, markdown in markdowns.items():  # what is committed is what the runs give
    with open(os.path.join(_ROOT, "results", f"{name}.md"), encoding="utf-8") as f:
      assert f.read() == markdown, f"results/{name}.md differs from its collect: rerun it"
  assert len(_ours_cells(markdowns["xu2020"])) >= 40
  assert "84.26 · IS-NLL, L=128 (paper: 4,096) · 6 ep (paper: epochs not given)" in _ours_cells(
      markdowns["vlae"])


@pytest.mark.parametrize("name", ["xu2020", "vampprior", "serevae", "iaf", "vlae"])
def test_the_committed_tables_are_labelled(name):
  with open(os.path.join(_ROOT, "results", f"{name}.md"), encoding="utf-8") as f:
    _assert_labelled(f.read())
