"""The one exception type meant for users, and the CLI boundary that prints it."""
import contextlib
import os
import re
import sys
from typing import Callable, Iterator

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
    text = str(e.args[0] if isinstance(e, KeyError) and e.args else e).strip().strip('"')
    message = text.splitlines()[0] if text else type(e).__name__
    if isinstance(e, (KeyError, AttributeError)):
      hint = re.search(r'Did you mean "([^"]+)"', text)
      key = re.search(r"[\w.]+", message)
      message = (f"config override {key.group(0) if key else message}: unknown key" +
                 (f"; did you mean {hint.group(1)}?" if hint else ""))
    print(f"error: {message}; see --helpfull", file=sys.stderr)
    sys.exit(2)
  except (SyntaxError, ImportError, NameError, OSError) as e:  # e.g. a broken --config file
    print(f"error: cannot load a flag's file ({type(e).__name__}: {str(e).splitlines()[0]})",
          file=sys.stderr)
    sys.exit(2)


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[None]:
  """Silences native (FFmpeg) messages on fd 2, e.g. while a damaged video is decoded."""
  sys.stderr.flush()
  saved = os.dup(2)
  try:
    with open(os.devnull, "w") as devnull:
      os.dup2(devnull.fileno(), 2)
    yield
  finally:
    os.dup2(saved, 2)
    os.close(saved)
