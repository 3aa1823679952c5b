"""Command-line entry points: user errors end in one line and exit status 2 (issue #19).

A user error is one the person at the command line can fix: a bad or misspelt config key, a
missing or unreadable file, a busy workdir, an unreadable checkpoint. It is printed as
`vae_jax: <message>` without a traceback (with `--verbose`, the traceback too); programming errors
keep theirs.
"""
import importlib.util
import re
import sys

from absl import app, flags

USAGE_STATUS = 2


def _user_errors():
  from vae_jax import checkpoints, configuration, runs  # pylint: disable=import-outside-toplevel
  # OSError: missing or unreadable files and directories, and a --config file that failed to
  # load (ml_collections reports it when the config is first read).
  return (configuration.ConfigError, OSError, runs.WorkdirBusyError,
          checkpoints.UnreadableCheckpointError)


def _stop(message: str) -> None:
  print(f"vae_jax: {' '.join(message.split())}", file=sys.stderr)
  sys.exit(USAGE_STATUS)


def _parse_flags(argv):
  """absl's flag parsing, with a misspelt --config.<key> (ml_collections raises AttributeError
  or KeyError while it applies the override) as a user error."""
  try:
    return flags.FLAGS(argv)
  except (AttributeError, KeyError) as error:
    if "--verbose" in argv:
      raise
    detail = " ".join(re.sub(r"\\n|\\'|'|\"", " ", str(error)).split())
    _stop(f"unknown config key in the command line: {detail}{_valid_keys(argv)}")
  except flags.Error as error:
    _stop(str(error))


def _valid_keys(argv) -> str:
  """"; valid keys of config.<section>: ..." for the first --config.<section>.<key> override
  whose key the config (loaded from --config=<file>[:<argument>]) lacks; "" if none is found."""
  try:
    location = next(a for a in argv if a.startswith("--config="))[len("--config="):]
    path, _, argument = location.partition(":")
    spec = importlib.util.spec_from_file_location("vae_jax_cli_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config(argument) if argument else module.get_config()
    for override in (a for a in argv if a.startswith("--config.")):
      *section, key = override[len("--config."):].split("=")[0].split(".")
      node = config
      for part in section:
        node = node[part]
      if key not in node:
        return f"; valid keys of config.{'.'.join(section)}: {', '.join(sorted(node.keys()))}"
  except Exception:  # pylint: disable=broad-exception-caught  (only a hint; the error stands)
    pass
  return ""


def run(main) -> None:
  """app.run(main) with user errors as one line and exit status 2."""
  def guarded(argv):
    try:
      return main(argv)
    except _user_errors() as error:
      if flags.FLAGS.verbose:
        raise
      _stop(str(error) or type(error).__name__)
  app.run(guarded, flags_parser=_parse_flags)


flags.DEFINE_boolean("verbose", False, "Show the traceback of user errors too.")
