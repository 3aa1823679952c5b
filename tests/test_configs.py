"""Every config file and every cell of every paper builds a valid config and a model."""
import json
import pathlib

import numpy as np
import pytest

from vae_jax import config_files, configuration
from vae_jax.models import create_model, factory

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
  assert standard.model.prior.name == "standard"


def test_the_base_config_is_a_plain_vae():
  """No paper's choices in the defaults: each paper states its own (configs/<paper>.py)."""
  config = configuration.base_config()
  assert (config.model.prior.name, config.model.posterior.name) == ("standard", "gaussian")
  assert config.train.l2_weight == 0 and config.train.kl_warmup_fraction == 0
  assert tuple(config.train.learning_rates) == (1e-3,) and not config.train.lr_boundaries


def test_unknown_files_and_cells_are_named():
  with pytest.raises(FileNotFoundError, match="configs/nope.py"):
    config_files.load("configs/nope.py")
  with pytest.raises(ValueError, match="Unknown VampPrior cell 'x'; valid cells: static_mnist"):
    config_files.load("configs/vampprior.py:x")


def test_every_archived_config_from_before_the_component_trees_loads_and_builds():
  """config.json files written before issue #20 (model.prior a name, its options spread over the
  model's keys) load as today's configs: the archived runs in results/ are such files."""
  paths = sorted(pathlib.Path(config_files.CONFIG_DIR.parent, "results").glob("*/runs/*/config.json"))
  assert len(paths) > 20
  for path in paths:
    old = json.loads(path.read_text())
    config = configuration.from_json(path.read_text())
    _builds(config)
    if isinstance(old["model"]["prior"], str):
      assert config.model.prior.name == old["model"]["prior"].replace("vampprior_data", "vampprior")


# The networks' keys of config.model before issue #20 part 2 (all but architecture and width
# the same in both cells below), and what part 1 replaced by the prior and posterior trees.
_OLD_NETWORK_KEYS = dict(hidden_units=[500, 500], resnet_vae_layers=4, resnet_vae_hidden=160,
                         inference="bidirectional")
_OLD_FLOW_KEYS = dict(af_hidden=[640, 640, 640], af_mean_only=True, num_components=500,
                      learn_prior_weights=False, pseudo_input_mean=0.05, pseudo_input_std=0.01,
                      iaf_hidden=[320, 320], iaf_location_only=False)


@pytest.mark.parametrize("cell, architecture, likelihood, width", [
    ("dense,rnvp_both,K=4,pure,mnist", "dense", "bernoulli", 1.0),
    ("resnet,rnvp_both,K=4,pure,width=0.25,cifar10", "resnet_cifar", "discretized_logistic", 0.25),
])
def test_an_old_config_becomes_the_same_cell_config_of_today(cell, architecture, likelihood, width):
  """A config.json as written before issue #20: architecture, likelihood, hidden_units, width,
  resnet_vae_*, and the prior and posterior spread over the model's keys."""
  today = config_files.load(f"configs/xu2020.py:{cell}")
  old = json.loads(configuration.to_json(today))
  model = {k: old["model"][k] for k in ("latent_dim", "min_logstd", "sere")}
  model.update(_OLD_NETWORK_KEYS, **_OLD_FLOW_KEYS, architecture=architecture,
               likelihood=likelihood, width=width, prior="realnvp", flow_depth=4,
               flow_type="pure", coupling_hidden=old["model"]["prior"]["coupling_hidden"],
               posterior_flow="realnvp", posterior_flow_depth=4)
  old["model"] = model
  assert configuration.from_json(json.dumps(old)) == today


def test_a_new_prior_is_one_module_and_one_registry_line(monkeypatch):
  """The README's worked example: a Laplace prior, registered, configured and trained through."""
  import flax.linen as nn  # pylint: disable=import-outside-toplevel
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  from conftest import tiny_config  # pylint: disable=import-outside-toplevel

  class LaplacePrior(nn.Module):
    latent_dim: int
    scale: float = 1.0

    def log_prob(self, z):
      return jnp.sum(-jnp.abs(z) / self.scale - jnp.log(2.0 * self.scale), axis=-1)

    def sample(self, key, n: int):
      return self.scale * jax.random.laplace(key, (n, self.latent_dim))

  monkeypatch.setitem(factory.PRIORS, "laplace", LaplacePrior)
  config = tiny_config("standard")
  config.model.prior = factory.component("prior", "laplace", scale=0.5)
  configuration.validate(config, num_devices=1)
  model = create_model(config.model, (8, 8, 1))
  x = jnp.zeros((2, 8, 8, 1))
  params = model.init({"params": jax.random.PRNGKey(0)}, x, jax.random.PRNGKey(1))
  parts = model.apply(params, x, jax.random.PRNGKey(1), 3, method="log_weights")
  np.testing.assert_allclose(parts.log_prior, np.sum(-np.abs(parts.z) / 0.5 - np.log(1.0), -1),
                             rtol=1e-5, atol=1e-5)
  with pytest.raises(ValueError, match="takes scale; not scael"):
    factory.check_component("prior", {"name": "laplace", "scael": 2.0})
