"""`python -m vae_jax.analyze` end to end on two tiny trained workdirs (standard and RealNVP prior)."""
import json
import os
import shutil
import sys

from absl import app
import jax
import numpy as np
import pytest

from vae_jax import analyze
from vae_jax.analysis import reports

from conftest import tiny_config, train_only

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def workdirs(tmp_path_factory):
  paths = []
  for prior in ("standard", "realnvp"):
    config = tiny_config(prior)
    config.train.beta = 0.5 if prior == "standard" else 1.0
    config.train.num_epochs = 1
    path = str(tmp_path_factory.mktemp(prior))
    train_only(config, path)  # the analyses do not read the test-set evaluation
    paths.append(path)
  return paths


def _options(output_dir, **overrides):
  settings = dict(output_dir=str(output_dir), num_samples=20, posterior_samples=50,
                  interpolation_pairs=2, interpolation_steps=4, grid_rows=3, grid_columns=4,
                  low_posterior_candidates=200, low_posterior_kept=10, elbo_samples=10,
                  aggregate_images=100, aggregate_nx=(1, 2), aggregate_nz=2)
  settings.update(overrides)
  return reports.Options(**settings)


def test_every_analysis_writes_its_json_and_figures(workdirs, tmp_path):
  options = _options(tmp_path / "out")
  results = analyze.run(workdirs, ["standard", "realnvp"], list(reports.WHATS), options, None)
  written = set(os.listdir(tmp_path / "out"))
  assert {f"{what}.json" for what in reports.WHATS} <= written
  assert {"elbo.md", "overlap.png", "rate_distortion.png", "interpolation.png",
          "low_posterior.png", "samples_nearest_standard.png",
          "samples_nearest_realnvp.png"} <= written
  saved = json.loads((tmp_path / "out" / "elbo.json").read_text())
  assert saved["workdirs"] == {"standard": workdirs[0], "realnvp": workdirs[1]}
  for label in ("standard", "realnvp"):
    elbo = results["elbo"][label]
    assert elbo["elbo"] == pytest.approx(elbo["reconstruction"] - elbo["kl"], abs=1e-3)
    assert elbo["kl_z_given_x"] == pytest.approx(-elbo["nll"] - elbo["elbo"])
    assert 0 <= elbo["active_units"] <= 4
    overlap = results["overlap"][label]
    assert overlap["normalized_distance"]["mean"] > 0 and overlap["std"]["mean"] > 0
  rows = {r["label"]: r for r in results["rate_distortion"]["rows"]}
  assert (rows["standard"]["K"], rows["standard"]["beta"]) == (0, 0.5)
  assert (rows["realnvp"]["K"], rows["realnvp"]["beta"]) == (2, 1.0)
  assert rows["realnvp"]["rate"] == results["elbo"]["realnvp"]["kl"]
  interpolation = results["interpolation"]
  assert interpolation["kinds"] == ["similar"] * 2 + ["dissimilar"] * 2
  assert np.asarray(interpolation["realnvp"]["log_p"]).shape == (4, 4)
  low = results["low_posterior"]
  assert low["realnvp"]["source"] == "realnvp"
  # The lowest q(z) of 200 prior samples lie below those of training points' posteriors.
  for label in ("standard", "realnvp"):
    assert low[label]["log_p_low"]["mean"] < low[label]["log_p_train"]["mean"]
  kl = results["aggregate_kl"]["realnvp"]
  assert set(kl) == {"n_x=1", "n_x=2"}
  assert kl["n_x=2"]["log_num_x_samples"] == pytest.approx(np.log(200))
  summary = json.loads(open(os.path.join(workdirs[1], "analysis.json")).read())
  assert summary["aggregated_posterior_kl_nx2"] == kl["n_x=2"]["aggregated_posterior_kl"]


def test_the_samples_grid_ends_with_the_nearest_training_image(workdirs, tmp_path):
  workdir = reports.load(workdirs[1], "realnvp")
  result = reports.samples_with_nearest(workdir, _options(tmp_path))
  nearest = result["nearest_training_index"]
  assert len(nearest) == 3 and len(result["pixel_distance"]) == 3
  assert all(0 <= i < workdir.run.dataset.train.shape[0] for i in nearest)


def test_a_failed_analysis_leaves_earlier_results_in_place(workdirs, tmp_path):
  out = tmp_path / "out"
  analyze.run(workdirs[:1], ["a"], ["elbo"], _options(out), None)
  before = (out / "elbo.json").read_text()
  with pytest.raises(ValueError, match="not one of the labels"):
    analyze.run(workdirs[:1], ["a"], ["low_posterior"],
                _options(out, low_posterior_source="missing"), None)
  assert (out / "elbo.json").read_text() == before
  assert not (out / "low_posterior.json").exists()


def test_a_shared_low_posterior_source_needs_the_same_encoder_and_decoder(workdirs, tmp_path):
  """B.7 scores the standard VAE's low-q(z) samples with its post-hoc prior: both models share
  q(z|x) and p(x|z). Here a copy of a workdir with another prior plays the pair; a model with
  another encoder is refused."""
  source = reports.load(workdirs[1], "a")
  other_prior = jax.tree_util.tree_map(lambda p: p * 1.5, source.params["prior"])
  twin = reports.Workdir(path=source.path, label="b", run=source.run,
                         params={**source.params, "prior": other_prior})
  low = reports.low_posterior([source, twin], _options(tmp_path, low_posterior_source="a"))
  # b scores a's z: the same lowest q(z) and the same z under a's encoder, another log p(z).
  assert low["b"]["source"] == "a" and low["a"]["log_q_low"] == low["b"]["log_q_low"]
  assert low["a"]["log_p_low"] != low["b"]["log_p_low"]
  alone = reports.low_posterior([twin], _options(tmp_path))
  assert alone["b"]["log_q_low"] != low["b"]["log_q_low"]  # its own prior's samples
  other = reports.load(workdirs[0], "other")
  with pytest.raises(ValueError, match="has another encoder or decoder"):
    reports.low_posterior([source, other], _options(tmp_path, low_posterior_source="a"))


def test_usage_errors_are_explained():
  with pytest.raises(Exception, match="unknown"):
    analyze._whats(["elbo", "nonsense"])  # pylint: disable=protected-access
  with pytest.raises(Exception, match="1 --label for 2 --workdir"):
    analyze._labels(["a", "b"], ["x"])  # pylint: disable=protected-access
  with pytest.raises(Exception, match="Labels must differ"):
    analyze._labels(["runs/x", "other/x"], None)  # pylint: disable=protected-access


def test_cli_refuses_a_directory_that_is_not_a_workdir(tmp_path):
  try:
    analyze.FLAGS(["analyze", f"--workdir={tmp_path}", "--what=elbo"])
    with pytest.raises(app.UsageError, match="is not a vae_jax training workdir"):
      analyze.main(["analyze"])
  finally:
    analyze.FLAGS.unparse_flags()
  assert not os.listdir(tmp_path)  # nothing written


def test_rate_distortion_launcher_names_its_cells_and_the_plot_command(tmp_path, capsys):
  sys.path.insert(0, os.path.join(ROOT, "launch"))
  try:
    import rate_distortion  # pylint: disable=import-outside-toplevel
  finally:
    sys.path.pop(0)
  assert rate_distortion.main([f"--runs_dir={tmp_path}", "--betas=0.5,2", "--depths=0,20",
                               "--architecture=dense", "--epochs=3", "--dry_run"]) == 0
  lines = capsys.readouterr().out.splitlines()
  cells = [line.split("xu2020.py:")[1].split()[0] for line in lines if "would run" in line]
  assert cells == ["dense,standard,beta=0.5,mnist", "dense,standard,beta=2,mnist",
                   "dense,rnvp_prior,K=20,beta=0.5,mnist", "dense,rnvp_prior,K=20,beta=2,mnist"]
  assert "vae_jax.analyze --what=rate_distortion" in lines[-1]
  assert lines[-1].count("--workdir=") == 4


def test_analysing_an_unfinished_run_warns(workdirs, tmp_path, caplog):
  """The same checkpoint read as part of a longer run: the analysis says it is unfinished."""
  longer = tmp_path / "longer"
  shutil.copytree(workdirs[0], longer)
  saved = json.loads((longer / "config.json").read_text())
  saved["train"]["num_epochs"] = 2.0
  (longer / "config.json").write_text(json.dumps(saved))
  with caplog.at_level("WARNING"):
    reports.load(str(workdirs[0]), "finished")
    assert "unfinished run" not in caplog.text
    reports.load(str(longer), "longer")
  assert "the run stopped at step" in caplog.text and "unfinished run" in caplog.text
