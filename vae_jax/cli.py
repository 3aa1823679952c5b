"""Command-line entry points: user errors end in one line and exit status 2 (issue #19).

A user error is one the person at the command line can fix: a bad or misspelt config key, a
missing or unreadable file, a busy workdir, an unreadable checkpoint. It is printed as `vae_jax: <message>`
without a traceback (with `--verbose`, the traceback too); programming errors keep theirs.
"""
import re
import sys

from absl import app, flags

USAGE_STATUS = 2


class UserError(Exception):
  """Marks an error message meant for the command line (raised by the library's checks)."""


def _user_errors():
  from vae_jax import checkpoints, configuration, train  # pylint: disable=import-outside-toplevel
  # OSError: missing or unreadable files and directories, and a --config file that failed to
  # load (ml_collections reports it when the config is first read).
  return (UserError, configuration.ConfigError, OSError, train.WorkdirBusyError,
          checkpoints.UnreadableCheckpointError)


def _stop(error: BaseException) -> None:
  message = " ".join(str(error).split()) or type(error).__name__
  print(f"vae_jax: {message}", file=sys.stderr)
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
    _stop(UserError(f"unknown config key in the command line: {detail}"))
  except flags.Error as error:
    _stop(error)


def run(main) -> None:
  """app.run(main) with user errors as one line and exit status 2."""
  def guarded(argv):
    try:
      return main(argv)
    except _user_errors() as error:
      if flags.FLAGS.verbose:
        raise
      _stop(error)
  app.run(guarded, flags_parser=_parse_flags)


flags.DEFINE_boolean("verbose", False, "Show the traceback of user errors too.")
