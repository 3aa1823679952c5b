"""Did a redesign change any config or model? For issue #20: dump every cell's config and the
abstract parameter tree of every distinct model with one checkout, then compare with another.

  PYTHONPATH=<old checkout> python launch/issue20_diagnostics/same_models.py dump old.json
  PYTHONPATH=. python launch/issue20_diagnostics/same_models.py dump new.json
  PYTHONPATH=. python launch/issue20_diagnostics/same_models.py compare old.json new.json

(run from the root of each checkout). `compare` converts each old config with
`configuration.from_json` (as a workdir's config.json is loaded) and counts those equal to the
new config of the same cell, and the models whose parameter trees (paths and shapes) are equal.
"""
import glob
import json
import sys

import jax
import jax.numpy as jnp

from vae_jax import config_files, configuration
from vae_jax.models import create_model

_IMAGE_SHAPES = {"digits": (8, 8, 1), "cifar10": (32, 32, 3), "freyfaces": (28, 20, 1)}


def _configs() -> dict:
  """{'configs/<file>.py[:<cell>]': config} of every config file and every cell."""
  configs = {}
  for path in sorted(glob.glob("configs/*.py")):
    module = config_files.module(path)
    for cell in (module.cells() if hasattr(module, "cells") else [None]):
      spec = path if cell is None else f"{path}:{cell}"
      configs[spec] = config_files.load(spec)
  return configs


def _parameter_shapes(config) -> dict:
  shape = _IMAGE_SHAPES.get(config.data.name, (28, 28, 1))
  model, key = create_model(config.model, shape), jax.random.PRNGKey(0)
  variables = jax.eval_shape(lambda: model.init({"params": key, "dropout": key},
                                                jnp.zeros((2,) + shape), key))
  return {jax.tree_util.keystr(path): list(leaf.shape)
          for path, leaf in jax.tree_util.tree_leaves_with_path(variables)}


def dump(output: str) -> None:
  configs, models, seen = {}, {}, set()
  for spec, config in _configs().items():
    configs[spec] = json.loads(configuration.to_json(config))
    distinct = json.dumps([configs[spec]["model"], config.data.name], sort_keys=True)
    if distinct not in seen:
      seen.add(distinct)
      models[spec] = _parameter_shapes(config)
  with open(output, "w", encoding="utf-8") as f:
    json.dump({"configs": configs, "models": models}, f, sort_keys=True)
  print(f"{len(configs)} configs, {len(models)} distinct models")


def compare(old_path: str, new_path: str) -> None:
  old, new = (json.load(open(p, encoding="utf-8")) for p in (old_path, new_path))
  equal = sum(json.loads(configuration.to_json(configuration.from_json(json.dumps(config))))
              == new["configs"].get(spec) for spec, config in old["configs"].items())
  print(f"configs: {equal} of {len(old['configs'])} equal after conversion "
        f"({len(new['configs'])} today)")
  same = sum(tree == new["models"].get(spec) for spec, tree in old["models"].items())
  arrays = sum(len(tree) for tree in old["models"].values())
  print(f"models: {same} of {len(old['models'])} with equal parameter trees ({arrays} arrays)")


if __name__ == "__main__":
  {"dump": dump, "compare": compare}[sys.argv[1]](*sys.argv[2:])
