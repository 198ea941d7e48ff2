"""The CLI boundary of the one-line errors: absl flag parsing (bad flags and config overrides as
one line, exit 2). `UserError` and `run_cli` live in `mottr.schema`."""
import re
import sys

from absl import flags


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
