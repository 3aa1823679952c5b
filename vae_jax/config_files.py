"""Config files by path, and the cell mechanism that every paper's config file shares.

A config file under `configs/` defines `get_config()`; a paper's file defines `get_config(cell)`
and `cells()`, a dict {cell name: function of no arguments returning that cell's config}.
`python -m vae_jax.main --config=configs/<paper>.py:<cell>` calls `get_config(cell)` (ml_collections
config_flags); launchers, tests, the benchmark and other config files call `load` with the same
`path[:cell]` syntax.
"""
import functools
import importlib.util
import os
import pathlib
import types
from typing import Callable

import ml_collections

# The repository's configs/ (present in a source checkout, which `pip install -e .` keeps).
CONFIG_DIR = pathlib.Path(__file__).resolve().parents[1] / "configs"


@functools.cache
def _module_at(path: pathlib.Path) -> types.ModuleType:
  spec = importlib.util.spec_from_file_location(f"vae_jax_config_{path.stem}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def module(path) -> types.ModuleType:
  """The config file at `path` as a module; a relative path is tried from the working directory,
  then from the repository root, so "configs/xu2020.py" works from anywhere."""
  path = pathlib.Path(path)
  for candidate in (path, CONFIG_DIR.parent / path):
    if candidate.is_file():
      return _module_at(candidate.resolve())
  raise FileNotFoundError(f"No config file {os.fspath(path)!r} here or in {CONFIG_DIR.parent}.")


def load(spec: str) -> ml_collections.ConfigDict:
  """The config of `path` or `path:cell`, exactly as --config=`spec` gives it (unlocked)."""
  path, _, cell = str(spec).partition(":")
  get_config = module(path).get_config
  return get_config(cell) if cell else get_config()


def cells(path) -> dict[str, Callable[[], ml_collections.ConfigDict]]:
  """A paper's named cells: {cell: function returning its config}."""
  return module(path).cells()


def cell_config(table: dict, cell: str, paper: str) -> ml_collections.ConfigDict:
  """The config of `cell` in a paper's `cells()` table; an unknown name lists the valid ones."""
  if cell not in table:
    raise ValueError(f"Unknown {paper} cell {cell!r}; valid cells: {', '.join(table)}.")
  return table[cell]()
