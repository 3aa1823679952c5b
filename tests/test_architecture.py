"""The package's structure (issue #20): no import cycle among vae_jax's modules, and every model
provides the interface of vae_jax.models.base with capability flags that match its methods."""
import ast
import pathlib

import pytest

from vae_jax.models import LatentVariableModel, create_model
from vae_jax.models.factory import component
from vae_jax.models.resnet_vae import ResNetVAE
from vae_jax.models.sere_vae import SelfReflectiveVAE
from conftest import tiny_config

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "vae_jax"


def _module_name(path: pathlib.Path) -> str:
  parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
  return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict:
  """Each vae_jax module -> the vae_jax modules it imports anywhere in its file (inside
  functions too: a deferred import still ties the two modules together)."""
  modules = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
  graph = {}
  for name, path in modules.items():
    imported = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
      if isinstance(node, ast.Import):
        imported.update(alias.name for alias in node.names)
      elif isinstance(node, ast.ImportFrom):
        assert node.level == 0, f"{name}: relative import (the graph reads absolute ones)"
        # `from a import b` imports the module a.b where there is one, else a's name b.
        imported.update(f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in modules
                        else node.module for alias in node.names)
    graph[name] = sorted(imported & set(modules) - {name})
  return graph


def find_cycle(graph: dict):
  """Modules that import each other in a ring, the first repeated at the end; None if none."""
  visiting, done = set(), set()

  def visit(path):
    visiting.add(path[-1])
    for target in graph[path[-1]]:
      if target in visiting:
        return path[path.index(target):] + [target]
      if target not in done:
        cycle = visit(path + [target])
        if cycle:
          return cycle
    visiting.discard(path[-1])
    done.add(path[-1])
    return None

  for module in sorted(graph):
    cycle = None if module in done else visit([module])
    if cycle:
      return cycle
  return None


def test_find_cycle_finds_a_ring_and_passes_a_tree():
  assert find_cycle({"a": ["b"], "b": ["c"], "c": ["a"]}) == ["a", "b", "c", "a"]
  assert find_cycle({"a": ["b", "c"], "b": ["c"], "c": []}) is None


def test_vae_jax_modules_import_each_other_without_cycles():
  graph = import_graph()
  assert "vae_jax.evaluate" in graph["vae_jax.train"]  # training ends in the test evaluation
  assert "vae_jax.models.base" in graph["vae_jax.bounds"]
  cycle = find_cycle(graph)
  assert cycle is None, "import cycle: " + " -> ".join(cycle)


def _hvae_config():
  config = tiny_config("standard")
  config.model.name = "hvae"
  config.model.encoder = component("encoder", "gated")
  config.model.decoder = component("decoder", "two_latent")
  return config


MODELS = {
    "vae": lambda: create_model(tiny_config("standard").model, (8, 8, 1)),
    "vae_vampprior": lambda: create_model(tiny_config("vampprior").model, (8, 8, 1)),
    "hvae": lambda: create_model(_hvae_config().model, (8, 8, 1)),
    "resnet_vae": lambda: ResNetVAE(num_layers=2, hidden=8, latent_channels=3,
                                    image_shape=(8, 8, 3)),
    "sere_vae": lambda: SelfReflectiveVAE(image_shape=(6, 6, 1), num_layers=2, latent_dim=2),
}
# The methods behind each capability flag but has_pseudo_inputs (which reads the prior).
CAPABILITY_METHODS = {
    "has_posterior_sampler": ("sample_posterior",),
    "has_flow_posterior": ("gaussian_posterior", "flow_posterior", "unflow_posterior"),
    "has_kl_per_layer": ("kl_per_layer",),
}


@pytest.mark.parametrize("name", list(MODELS))
def test_every_model_provides_the_interface_and_says_what_else_it_has(name):
  model = MODELS[name]()
  assert isinstance(model, LatentVariableModel)
  for flag, methods in CAPABILITY_METHODS.items():
    has_methods = all(callable(getattr(type(model), method, None)) for method in methods)
    assert getattr(model, flag) == has_methods, flag
  assert model.has_pseudo_inputs == (name == "vae_vampprior")
