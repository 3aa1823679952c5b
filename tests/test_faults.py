"""Faults a run must survive (issue #19): so far, a metrics log torn by a kill."""
import json

import pytest

from vae_jax.metric_writer import MetricWriter


def _write_records(workdir, steps):
  with MetricWriter(str(workdir)) as writer:
    for step in steps:
      writer.write(step, "train", {"loss": float(step)})


def _steps(workdir):
  with open(workdir / "metrics.jsonl", encoding="utf-8") as f:
    return [json.loads(line)["step"] for line in f]


def test_a_torn_last_metrics_line_is_dropped_on_resume(tmp_path):
  _write_records(tmp_path, [10, 20, 30])
  with open(tmp_path / "metrics.jsonl", "a", encoding="utf-8") as f:
    f.write('{"step": 40, "split": "tr')  # killed mid-write
  with MetricWriter(str(tmp_path), resume_step=30) as writer:
    writer.write(40, "train", {"loss": 40.0})
  assert _steps(tmp_path) == [10, 20, 30, 40]


def test_a_bad_metrics_line_before_the_last_is_an_error_naming_file_and_line(tmp_path):
  _write_records(tmp_path, [10, 20])
  path = tmp_path / "metrics.jsonl"
  lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
  path.write_text("".join([lines[0], "garbage\n", lines[1]]), encoding="utf-8")
  with pytest.raises(ValueError, match=r"metrics.jsonl, line 2, is not a JSON record"):
    MetricWriter(str(tmp_path), resume_step=20)
  assert path.read_text(encoding="utf-8").count("\n") == 3  # nothing rewritten
