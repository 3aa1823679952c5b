"""Shared fixtures: a tiny config on the embedded digits, so training tests take seconds."""
import importlib.util
import os
import tempfile
import warnings

# The tests build and compile the same small models many times over (every run jits its steps
# anew, and subprocess tests start fresh processes); XLA's persistent compilation cache, in a new
# directory per session and inherited by the subprocesses, turns the repeats into lookups. Set
# before jax is imported.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", tempfile.mkdtemp(prefix="vae_jax_xla_cache_"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
# The tests' models are tiny, so LLVM's optimisation of each compiled program costs more than it
# saves: without it the suite ran 15-20% faster on 2 cores. The results differ from the
# optimised programs' only by float rounding (fusion changes the order of sums).
os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")
# TensorFlow (the TFDS tests, with the tfds extra) logs its CPU features at exit; errors still show.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Upstream, not ours (README, "Tested versions"): TFP's JAX substrate, which distrax imports,
# reads jax.core.pytype_aval_mappings once, at import, which is here (before pytest's filters).
warnings.filterwarnings("ignore", "jax.core.pytype_aval_mappings is deprecated", DeprecationWarning)

import jax  # pylint: disable=wrong-import-position
import pytest  # pylint: disable=wrong-import-position

from vae_jax import config_files, configuration, train  # pylint: disable=wrong-import-position
from vae_jax.models.factory import component  # pylint: disable=wrong-import-position

# The tiny model's prior options by prior (the rest are each prior's defaults).
_TINY_PRIORS = {"realnvp": dict(num_blocks=2, coupling_hidden=16), "af": dict(num_steps=2),
                "mog": dict(num_components=500), "vampprior": dict(num_components=500)}


def launch_module(script: str):
  """launch/<script> loaded as a module (launch/ is not a package), for tests of launchers."""
  path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "launch", script)
  spec = importlib.util.spec_from_file_location(f"launch_{script[:-3]}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def train_only(config, workdir: str) -> None:
  """A workdir as `vae_jax.main` leaves it (config.json and checkpoints), without the test-set
  evaluation, for tests that read only the checkpoints."""
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, "config.json"), "w", encoding="utf-8") as f:
    f.write(configuration.to_json(config))
  train.train(train.setup_run(config), workdir)


def tiny_config(prior: str = "realnvp"):
  """A DenseVAE with Xu et al.'s training settings (B.3), shrunk to train in seconds."""
  config = config_files.module("configs/xu2020.py").paper_defaults()
  config.data.name = "digits"
  config.data.test_binarizations = 1
  config.model.latent_dim = 4
  config.model.encoder.features = config.model.decoder.features = (32,)
  config.model.prior = component("prior", prior, **_TINY_PRIORS.get(prior, {}))
  config.train.num_epochs = 3
  config.train.batch_size = 64
  config.train.log_every_steps = 10
  config.train.checkpoint_every_steps = 20
  config.eval.num_samples = 20
  config.eval.sample_chunk = 10
  config.eval.batch_size = 160
  config.eval.num_images = 8
  return config


@pytest.fixture
def config():
  return tiny_config()


@pytest.fixture
def float64():
  """JAX in float64 for one test, so that exactness checks (inverses, log-dets against autodiff
  Jacobians) are sharp: float32 rounding, amplified by an ill-conditioned flow, is not."""
  with jax.enable_x64(True):
    yield


def pytest_configure(config):
  config.addinivalue_line("markers", "slow: longer tests, run with VAE_JAX_SLOW_TESTS=1")
  # A deprecation that our own code triggers (JAX, Flax, NumPy... name the calling module) fails
  # the suite, so that it is fixed before the next release removes the API.
  config.addinivalue_line("filterwarnings", r"error::DeprecationWarning:vae_jax(\.|$)")
  config.addinivalue_line("filterwarnings", r"error::FutureWarning:vae_jax(\.|$)")


def pytest_collection_modifyitems(config, items):
  """The default suite stays under 10 minutes on 2 cores; VAE_JAX_SLOW_TESTS=1 adds the rest."""
  del config
  if os.environ.get("VAE_JAX_SLOW_TESTS") == "1":
    return
  skip = pytest.mark.skip(reason="slow: set VAE_JAX_SLOW_TESTS=1 to run")
  for item in items:
    if "slow" in item.keywords:
      item.add_marker(skip)


def get_config():
  """tiny_config() for the command line: --config=tests/conftest.py (multi-process tests)."""
  return tiny_config()
