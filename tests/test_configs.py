"""Every config file and every cell of every paper builds a valid config and a model."""
import pytest

from vae_jax import config_files, configuration
from vae_jax.models import create_model

PAPERS = ("xu2020", "vampprior", "serevae", "iaf", "vlae")
SINGLE_CONFIGS = ("mnist_realnvp", "mnist_standard", "quickstart")
# (height, width, channels) of each dataset, so that models build without reading data files.
IMAGE_SHAPES = {"digits": (8, 8, 1), "cifar10": (32, 32, 3), "freyfaces": (28, 20, 1)}
_MNIST_SHAPE = (28, 28, 1)


def _builds(config):
  configuration.validate(config, num_devices=1)
  create_model(config.model, IMAGE_SHAPES.get(config.data.name, _MNIST_SHAPE))


@pytest.mark.parametrize("paper", PAPERS)
def test_every_cell_of_every_paper_builds_a_config_and_a_model(paper):
  cells = config_files.cells(f"configs/{paper}.py")
  assert cells, paper
  for cell, get_config in cells.items():
    config = get_config()
    # --config=configs/<paper>.py:<cell> gives the same config as the paper's cells() table.
    assert config_files.load(f"configs/{paper}.py:{cell}") == config, cell
    _builds(config)


@pytest.mark.parametrize("name", SINGLE_CONFIGS)
def test_every_single_config_file_builds(name):
  _builds(config_files.load(f"configs/{name}.py"))


def test_the_mnist_configs_are_the_papers_cells():
  assert config_files.load("configs/mnist_realnvp.py") == config_files.load(
      "configs/xu2020.py:dense,rnvp_prior,K=20,mnist")
  standard = config_files.load("configs/mnist_standard.py")
  assert standard.model.prior == "standard" and standard.model.flow_depth == 0


def test_the_base_config_is_a_plain_vae():
  """No paper's choices in the defaults: each paper states its own (configs/<paper>.py)."""
  config = configuration.base_config()
  assert (config.model.prior, config.model.flow_depth, config.model.posterior_flow_depth) == (
      "standard", 0, 0)
  assert config.train.l2_weight == 0 and config.train.kl_warmup_fraction == 0
  assert tuple(config.train.learning_rates) == (1e-3,) and not config.train.lr_boundaries


def test_unknown_files_and_cells_are_named():
  with pytest.raises(FileNotFoundError, match="configs/nope.py"):
    config_files.load("configs/nope.py")
  with pytest.raises(ValueError, match="Unknown VampPrior cell 'x'; valid cells: static_mnist"):
    config_files.load("configs/vampprior.py:x")
