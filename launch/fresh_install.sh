#!/usr/bin/env bash
# A new user's first minutes, timed: for each tested Python, a fresh clone of this repository, a
# fresh virtual environment, an empty pip cache, then the README's commands exactly (install from
# the lock file, the quickstart, the test suite). Prints one line per step; results/README.md
# ("Fresh installs on current JAX") records its output.
#   bash launch/fresh_install.sh [WORK_DIR]   (default: a new temporary folder)
# The data tests read $VAE_JAX_DATA_DIR, by default this repository's ../shared/data.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
export VAE_JAX_DATA_DIR="${VAE_JAX_DATA_DIR:-$(cd "$repo/.." && pwd)/shared/data}"
source "$repo/.ci/pythons.sh"
work="${1:-$(mktemp -d)}"
for version in "${TESTED_PYTHONS[@]}"; do
  clone="$work/vae_jax_py$version"
  rm -rf "$clone"
  git clone --quiet "$repo" "$clone"
  cd "$clone"
  "$(find_python "$version")" -m venv .venv
  # shellcheck disable=SC1091
  source .venv/bin/activate
  export PIP_CACHE_DIR="$clone/.pip_cache"
  start=$SECONDS
  pip install --quiet -e ".[test]" -c constraints.txt 2>&1 | { grep -v "^WARNING: Location" || true; }
  echo "Python $version: install $((SECONDS - start)) s ($(python -c 'import jax; print("JAX", jax.__version__)'))"
  start=$SECONDS
  python -m vae_jax.main --config=configs/quickstart.py --workdir=runs/quickstart > quickstart.log 2>&1
  echo "Python $version: quickstart $((SECONDS - start)) s: $(tail -1 quickstart.log)"
  start=$SECONDS
  echo "Python $version: suite $(python -m pytest -q -n auto tests 2>&1 | tail -1) (wall $((SECONDS - start)) s)"
  deactivate
  rm -rf "$PIP_CACHE_DIR"
done
