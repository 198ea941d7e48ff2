"""The one exception type meant for users, and the CLI boundary that prints it."""
import sys
from typing import Callable


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
