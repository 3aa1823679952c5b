"""User errors at the command line: one line on stderr, exit status 2, nothing written (#19)."""
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _main(tmp_path, *flags):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  return subprocess.run(
      [sys.executable, "-m", "vae_jax.main", "--config=configs/mnist_realnvp.py",
       f"--workdir={tmp_path / 'run'}", *flags],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.parametrize("flag, message", [
    ("--config.train.num_epoch=3", "unknown config key in the command line: num_epoch Did you mean"
                                   " num_epochs instead of num_epoch ?; valid keys of config.train:"
                                   " batch_size, beta,"),
    ("--config.train.batch_size=0", "config.train.batch_size=0 must be > 0."),
    ("--config.model.prior.name=foo",
     "config.model.prior.name='foo'; valid values: standard, realnvp"),
])
def test_a_user_error_is_one_line_with_exit_status_2_and_writes_nothing(tmp_path, flag, message):
  result = _main(tmp_path, flag)
  assert result.returncode == 2, result.stderr[-2000:]
  lines = [l for l in result.stderr.splitlines() if l.startswith("vae_jax:")]
  assert len(lines) == 1 and message in lines[0], result.stderr[-2000:]
  assert "Traceback" not in result.stderr and result.stdout == ""
  assert not (tmp_path / "run").exists()


def test_verbose_shows_the_traceback(tmp_path):
  result = _main(tmp_path, "--config.train.batch_size=0", "--verbose")
  assert result.returncode != 0 and "Traceback" in result.stderr


@pytest.mark.parametrize("flag", ["--num_samples=0", "--num_samples=-1", "--test_images=-1"])
def test_evaluate_refuses_counts_it_cannot_honour(tmp_path, flag):
  result = subprocess.run([sys.executable, "-m", "vae_jax.evaluate", f"--workdir={tmp_path}", flag],
                          cwd=REPO, env=dict(os.environ, JAX_PLATFORMS="cpu"), capture_output=True,
                          text=True, timeout=300, check=False)
  assert result.returncode == 2, result.stderr[-2000:]
  lines = [l for l in result.stderr.splitlines() if l.startswith("vae_jax:")]
  assert len(lines) == 1 and flag.split("=")[0][2:] in lines[0] and "Traceback" not in result.stderr
  assert not os.listdir(tmp_path)


def test_a_missing_config_file_or_a_workdir_that_is_a_file_is_one_line(tmp_path):
  (tmp_path / "run").write_text("not a directory")
  result = _main(tmp_path, "--config.train.num_epochs=1")
  assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
  assert "vae_jax: --workdir=" in result.stderr and "is a file" in result.stderr
  result = subprocess.run([sys.executable, "-m", "vae_jax.main", "--config=configs/nope.py",
                           f"--workdir={tmp_path / 'other'}"], cwd=REPO, capture_output=True,
                          text=True, timeout=300, check=False)
  assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
  assert "configs/nope.py" in result.stderr and not (tmp_path / "other").exists()
