# Sourced by .ci/run and .ci/lock: the tested Python/JAX combinations and how to find them.
# The newest combination comes first; constraints.txt pins each one's versions (markers on
# python_version tell them apart where they differ).
TESTED_PYTHONS=(3.12 3.11)

# Prints the interpreter of Python $1 (e.g. 3.12): python$1 on PATH if it runs, else pyenv's
# newest patch release of it.
find_python() {
  local candidate
  for candidate in "python$1" \
      $(ls -d "${PYENV_ROOT:-$HOME/.pyenv}/versions/$1".*/bin/python 2>/dev/null | sort -V | tail -1); do
    if [[ "$("$candidate" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" == "$1" ]]; then
      echo "$candidate"
      return
    fi
  done
  echo "Python $1 not found (neither python$1 on PATH nor a pyenv version); install it" >&2
  return 1
}

# Creates a fresh virtual environment at $2 with Python $1 and installs the project into it with
# pip's further arguments ($3...), as a user would; pip's notes about this machine's empty
# package mirrors are left out of the log.
fresh_venv() {
  local python
  python="$(find_python "$1")"
  "$python" -m venv "$2"
  "$2/bin/python" -m pip install --quiet --disable-pip-version-check "${@:3}" 2>&1 \
    | { grep -v "^WARNING: Location 'file:///opt/" || true; }
}
