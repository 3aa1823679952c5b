"""The transcribed tables of Xu et al. (2020) and the launch/xu2020.py tooling (no training)."""
import json
import os
import subprocess
import sys

import pytest

from vae_jax import config_files
from conftest import launch_module

xu2020 = config_files.module("configs/xu2020.py")
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


launcher = launch_module("xu2020.py")
xu2020_tables = launcher.xu2020_tables
TABLES = xu2020_tables.TABLES


def _paper(table, row, column, metric="nll"):
  (entry,) = [e for e in TABLES[table].entries
              if (e.row, e.column, e.metric) == (row, column, metric)]
  return entry


def test_table_names_in_paper_order():
  assert list(TABLES) == [str(i) for i in range(1, 7)] + [f"B.{i}" for i in range(1, 24)]


def test_every_cell_is_canonical_and_configurable():
  cells = xu2020_tables.all_cells()
  assert len(cells) == len(set(cells))
  for cell in cells:
    assert xu2020.canonical(cell) == cell
    xu2020.get_config(cell)


def test_the_config_files_cells_are_exactly_the_tables_cells():
  """configs/xu2020.py names the paper's models itself (configs do not read launch/)."""
  assert set(xu2020.cells()) == set(xu2020_tables.all_cells())


def test_every_table_has_cells_and_numbers():
  for table in TABLES.values():
    assert table.title and xu2020_tables.cells(table.name), table.name
    for entry in table.entries:
      assert isinstance(entry.paper, float), entry


def test_spot_checks():
  assert [_paper("3", "MNIST", f"DenseVAE {f}").paper
          for f in ("standard", "RNVP q(z|x)", "RNVP p(z)")] == [84.48, 82.53, 80.43]
  entry = _paper("B.15", "Flow depth 50", "Omniglot")
  assert (entry.paper, entry.paper_std, entry.cell) == (93.52, 0.02,
                                                        "resnet,rnvp_prior,K=50,omniglot")
  assert _paper("B.15", "Flow depth 0", "MNIST").cell == "resnet,standard,mnist"
  bpd = {e.cell: e.paper for e in TABLES["B.2"].entries if e.cell}
  assert bpd == {"resnet,standard,cifar10": 3.98, "resnet,rnvp_prior,K=50,cifar10": 3.54}
  entry = _paper("4", "both, K = K0", "K0 = 20")
  assert (entry.paper, entry.cell) == (78.56, "resnet,rnvp_both,K=20,mnist")
  assert _paper("4", "p(z), K = 2K0", "K0 = 20").cell == "resnet,rnvp_prior,K=40,mnist"
  entry = _paper("B.9", "VAE + IAF* (Kingma et al., 2016)", "NLL")
  assert (entry.cell, entry.paper, entry.paper_std) == (None, 79.10, 0.07)
  entry = _paper("B.21", "ResnetHVAE RNVP p(z2)", "Omniglot")
  assert (entry.paper, entry.cell) == (93.47, "resnet_hvae,rnvp_prior,K=20,omniglot")
  entry = _paper("B.3", "Normal", "min logstd = -∞", "posterior_std")
  assert (entry.paper, entry.cell) == (0.6873, "resnet,standard,min_logstd=-inf,mnist")
  assert _paper("B.22", "standard", "Omniglot", "active_units_z2").paper == 57.7
  assert _paper("B.7", "DynamicMNIST", "post-hoc", "active_units").paper == 25.3


def test_repeated_numbers_agree():
  """Tables that repeat each other's numbers (Table 3 in B.12, 4 in B.13, 6 in B.18, B.6/B.20)."""
  def values(name, with_std=False):
    return {(e.cell, e.metric): (e.paper, e.paper_std) if with_std else e.paper
            for e in TABLES[name].entries}
  b12 = values("B.12")
  assert len(values("3")) == 36 and values("3").items() <= b12.items()
  assert values("4").items() <= values("B.13").items()
  assert values("6").items() <= values("B.18").items()
  assert values("B.6") == values("B.20")
  b21 = values("B.21", with_std=True)
  assert all(b21[k] == v for k, v in values("B.12", with_std=True).items() if k in b21)


def test_table_3_has_36_cells():
  assert len(xu2020_tables.cells("3")) == 36
  assert all(e.cell for e in TABLES["3"].entries)


def test_commands_put_pretraining_first():
  lines = [" ".join(argv) for argv in launcher.commands("B.6", "runs", epochs=5)]
  posthoc = next(i for i, line in enumerate(lines) if ",posthoc," in line)
  pretraining = next(i for i, line in enumerate(lines)
                     if "xu2020.py:resnet,standard,static_mnist " in line)
  assert pretraining < posthoc
  assert lines[posthoc].endswith(
      "--config.train.num_epochs=5 "
      "--config.train.init_from=runs/resnet-standard-static_mnist-5ep")
  assert "--workdir=runs/resnet-rnvp_prior-K20-posthoc-static_mnist-5ep" in lines[posthoc]
  # Table 5 has no post-hoc cell of its own, but `all` includes the pretraining cells once each.
  all_cells = launcher.ordered_cells("all")
  assert len(all_cells) == len(set(all_cells))


def _finished_workdir(path, nll, epochs, command="python -m vae_jax.main ..."):
  os.makedirs(path)
  results = {"nll": nll, "elbo": -nll - 2.0, "reconstruction": -60.0, "kl": 25.0,
             "active_units": 40, "num_samples": 1000, "num_points": 10000, "devices": "1x cpu",
             "cpu_count": 2}
  for name, content in (("eval_test.json", results), ("train_summary.json", {"epochs": epochs}),
                        ("config.json", {})):
    with open(os.path.join(path, name), "w", encoding="utf-8") as f:
      json.dump(content, f)
  with open(os.path.join(path, "command.txt"), "w", encoding="utf-8") as f:
    f.write(command + "\n")


def _rows(markdown, table):
  section = markdown.split(f"## Table {table}: ")[1].split("\n## ")[0]
  return [[c.strip() for c in line.strip("|").split(" | ")]
          for line in section.splitlines() if line.startswith("| ") and "---" not in line][1:]


def test_collect_fills_only_the_run_cell(tmp_path):
  runs = tmp_path / "runs"
  _finished_workdir(str(runs / "resnet-standard-mnist-10ep"), 85.123, 10)
  _finished_workdir(str(runs / "resnet-standard-mnist-50ep"), 82.5, 50, "python good")
  os.makedirs(runs / "dense-standard-mnist")  # unfinished: no eval_test.json
  output = tmp_path / "out.md"
  launcher.collect([str(runs)], str(output))
  markdown = output.read_text(encoding="utf-8")
  expected = {"nll": "82.50", "elbo": "-84.50", "reconstruction": "-60.00", "kl": "25.00",
              "kl_z_given_x": "2.00", "active_units": "40"}
  filled = 0
  for name, table in TABLES.items():
    rows = _rows(markdown, name)
    assert len(rows) == len(table.entries)
    for entry, row in zip(table.entries, rows):
      escaped = [text.replace("|", "\\|") for text in (entry.row, entry.column, entry.metric)]
      assert row[:3] == escaped
      if entry.cell == "resnet,standard,mnist":  # B.3's posterior_std is not in the results
        value = expected.get(entry.metric)
        # The 50-epoch run's number, labelled with its budget against the paper's 2,400 epochs.
        assert (row[4] == "" if value is None else row[4].startswith(value + " · ")
                and row[4].endswith(" · 50 ep (paper: 2,400 ep)"))
        assert row[5:] == ["1x cpu, 2 CPU cores", "`python good`"]
        filled += entry.metric in expected
      else:
        assert row[4:] == ["", "", ""], (name, row)
  assert filled > 10
  table_3 = {(r[0], r[1]): r for r in _rows(markdown, "3")}
  assert table_3[("MNIST", "ResnetVAE standard")][3:5] == [
      "81.07", "82.50 · IS-NLL, L=1,000 · 50 ep (paper: 2,400 ep)"]
  table_6 = {(r[0], r[1], r[2]): r for r in _rows(markdown, "6")}
  assert table_6[("MNIST", "standard", "kl_z_given_x")][3:5] == [
      "3.55", "2.00 · −ELBO − IS-NLL, L=1,000 · 50 ep (paper: 2,400 ep)"]
  assert table_6[("MNIST", "standard", "elbo")][4] == "-84.50 · ELBO · 50 ep (paper: 2,400 ep)"
  assert _rows(markdown, "B.15")[0][3] == "82.95 ± 0.09"


def test_collect_keeps_the_old_output_when_reading_fails(tmp_path):
  runs = tmp_path / "runs"
  _finished_workdir(str(runs / "resnet-standard-mnist"), 81.0, 2400)
  (runs / "resnet-standard-mnist" / "eval_test.json").write_text("{not json", encoding="utf-8")
  output = tmp_path / "out.md"
  output.write_text("old", encoding="utf-8")
  with pytest.raises(ValueError, match="eval_test.json"):
    launcher.collect([str(runs)], str(output))
  assert output.read_text(encoding="utf-8") == "old"
  assert sorted(os.listdir(tmp_path)) == ["out.md", "runs"]  # no temporary file left


def test_archive_then_collect_from_the_archive(tmp_path):
  runs = tmp_path / "runs"
  _finished_workdir(str(runs / "resnet-standard-mnist-50ep"), 82.5, 50)
  (runs / "resnet-standard-mnist-50ep" / "checkpoint.bin").write_text("big", encoding="utf-8")
  archived = tmp_path / "archive"
  assert launcher.main(["archive", f"--runs_dir={runs}", f"--to={archived}"]) == 0
  # Every small file there is (this workdir has no analysis.json or images), not the checkpoint.
  assert sorted(os.listdir(archived / "resnet-standard-mnist-50ep")) == [
      "command.txt", "config.json", "eval_test.json", "train_summary.json"]
  launcher.collect([str(archived)], str(tmp_path / "out.md"))
  assert "82.50" in (tmp_path / "out.md").read_text(encoding="utf-8")


def test_cli_lists_from_the_repository_root():
  result = subprocess.run([sys.executable, "launch/xu2020.py", "list", "B.4"], cwd=_ROOT,
                          capture_output=True, text=True, check=True)
  assert result.stdout.splitlines()[0] == (
      "resnet_small,rnvp_prior,K=12,pure,epochs=300,lr=0.0005,static_mnist\t"
      "resnet_small-rnvp_prior-K12-pure-epochs300-lr0.0005-static_mnist")


def test_collect_reads_the_analysis_numbers_of_a_workdir(tmp_path):
  """Table B.5's aggregated-posterior KL comes from <workdir>/analysis.json (vae_jax.analyze)."""
  workdir = tmp_path / "runs" / "resnet-rnvp_prior-K20-mnist-20ep"
  _finished_workdir(str(workdir), 80.0, 20)
  (workdir / "analysis.json").write_text(json.dumps({"aggregated_posterior_kl_nx2": 12.3456}),
                                         encoding="utf-8")
  output = tmp_path / "out.md"
  launcher.collect([str(tmp_path / "runs")], str(output))
  row = _rows(output.read_text(encoding="utf-8"), "B.5")[0]
  assert row[:5] == ["D_KL(q(z)\\|\\|p(z))", "n_x = 1", "aggregated_posterior_kl_nx1", "15.279", ""]
  row = _rows(output.read_text(encoding="utf-8"), "B.5")[1]
  assert row[3:5] == ["14.623", "12.346 · 20 ep (paper: 2,400 ep)"]  # a statistic: no bound


def test_collect_puts_narrower_models_in_rows_of_their_own(tmp_path):
  """A width=0.25 run of a Table B.2 cell (launch/cifar10_budget.sh) gets its own row, labelled
  and without the paper's number; the full model's row stays the full model's."""
  runs = tmp_path / "runs"
  _finished_workdir(str(runs / "resnet-rnvp_prior-K50-epochs9-width0.25-cifar10"), 9000.0, 9)
  _finished_workdir(str(runs / "resnet-standard-cifar10-2ep"), 9500.0, 2)
  (runs / "resnet-standard-cifar10-2ep" / "eval_test.json").write_text(
      json.dumps({"bits_per_dim": 4.9}), encoding="utf-8")
  (runs / "resnet-rnvp_prior-K50-epochs9-width0.25-cifar10" / "eval_test.json").write_text(
      json.dumps({"bits_per_dim": 4.5}), encoding="utf-8")
  output = tmp_path / "out.md"
  launcher.collect([str(runs)], str(output))
  rows = {(r[0], r[1]): r for r in _rows(output.read_text(encoding="utf-8"), "B.2")}
  assert rows[("ResnetVAE", "bpd")][3:5] == [
      "3.98", "4.90 · IS-NLL bits/dim (paper: L=1,000) · test images not recorded · 2 ep "
      "(paper: 2,400 ep)"]
  rnvp = "ResnetVAE + RealNVP p(z), K = 50"
  assert rows[(rnvp, "bpd")][3:5] == ["3.54", ""]
  variant = rows[(rnvp, "bpd, our width=0.25 variant (not the paper's model)")]
  assert variant[3] == "" and variant[4].startswith("4.50 · IS-NLL bits/dim")
  assert variant[4].endswith(" · 9 ep (paper: 2,400 ep)")
  assert len(rows) == len(TABLES["B.2"].entries) + 1
  assert launcher.table_cell_of("resnet-standard-epochs9-width0.25-cifar10", {"x"}) is None
