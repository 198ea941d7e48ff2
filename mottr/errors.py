"""The one exception type meant for users, and the CLI boundary that prints it."""
import sys
from typing import Callable

from absl import flags


class UserError(Exception):
  """Bad input from a user: printed as one line, exit status 2, no traceback."""


def run_cli(main: Callable[[list[str]], None]) -> Callable[[list[str]], None]:
  """Wraps an absl `main` so that a UserError becomes one line on stderr and exit 2."""

  def wrapped(argv: list[str]) -> None:
    try:
      main(argv)
    except UserError as e:
      print(f"error: {e}", file=sys.stderr)
      sys.exit(2)

  return wrapped


def parse_flags(argv: list[str]) -> list[str]:
  """absl flags parser that reports a bad flag or config override as one line and exit 2."""
  try:
    return flags.FLAGS(argv)
  except (flags.Error, KeyError, AttributeError, TypeError, ValueError) as e:
    message = str(e).strip().strip('"').splitlines()[0] if str(e).strip() else type(e).__name__
    if isinstance(e, (KeyError, AttributeError)):
      message = f"unknown config key {message}"
    print(f"error: {message}; see --helpfull", file=sys.stderr)
    sys.exit(2)
