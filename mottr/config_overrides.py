"""Config overrides (`--config.a.b=v`, the one override syntax of every CLI): parsed as Python literals,
checked against the keys and types of the config they change. A typo in a key or a value of the
wrong type is a one-line UserError, never a silently added key or an ignored value."""
import ast
import difflib
import re
from typing import Any

import ml_collections

from mottr.schema import UserError


def parse_value(text: str) -> Any:
  """A Python literal (`8`, `False`, `(1, 2)`, `'x'`), else the text itself as a string."""
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
    return text


def parse_overrides(argv: list[str]) -> tuple[list[str], dict[str, Any]]:
  """Splits `--config.a.b=v` arguments (values as Python literals, else strings) from the rest."""
  rest, overrides = [], {}
  for arg in argv:
    match = re.fullmatch(r"--config\.([\w.]+)=(.*)", arg)
    if match is None:
      rest.append(arg)
      continue
    key, value = match.groups()
    overrides[key] = parse_value(value)
  return rest, overrides


def leaf_keys(config: ml_collections.ConfigDict, prefix: str = "") -> list[str]:
  """Every settable `a.b.c` key of a config (groups are walked, not listed)."""
  keys = []
  for k, v in config.items():
    if isinstance(v, ml_collections.ConfigDict):
      keys.extend(leaf_keys(v, f"{prefix}{k}."))
    else:
      keys.append(f"{prefix}{k}")
  return keys


def _kind(value: Any) -> str:
  return {bool: "True or False", int: "an integer", float: "a number", str: "a string",
          tuple: "a tuple", list: "a list"}.get(type(value), type(value).__name__)


def checked_value(config: ml_collections.ConfigDict, key: str, value: Any) -> Any:
  """`value` as config key `key` takes it; UserError for an unknown key or a wrong type."""
  shown = f"config override {key}={value!r}"
  node = config
  parts = key.split(".")
  for depth, part in enumerate(parts):
    if not isinstance(node, ml_collections.ConfigDict) or part not in node:
      close = difflib.get_close_matches(key, leaf_keys(config), n=1, cutoff=0.6)
      hint = f"did you mean {close[0]}?" if close else "see the config files in configs/"
      raise UserError(f"{shown}: unknown key; {hint}")
    node = node[part]
    if isinstance(node, ml_collections.ConfigDict) and depth == len(parts) - 1:
      raise UserError(f"{shown}: {key} is a group of keys; set one of them, e.g. "
                      f"{leaf_keys(node, key + '.')[0]}")
  old = node
  if old is None or isinstance(value, type(old)) and not (
      isinstance(value, bool) and not isinstance(old, bool)):
    return value
  if isinstance(old, float) and isinstance(value, int) and not isinstance(value, bool):
    return float(value)
  if isinstance(old, str) and isinstance(value, (int, float)):
    return str(value)  # `--config.name=123`: the text was parsed as a number
  if isinstance(old, tuple) and isinstance(value, list):
    return tuple(value)
  raise UserError(f"{shown}: {key} must be {_kind(old)} (it is {old!r})")


def apply(config: ml_collections.ConfigDict, overrides: dict[str, Any] | None
          ) -> ml_collections.ConfigDict:
  """Sets each checked `a.b` override on `config` (in place) and returns it."""
  for key, value in (overrides or {}).items():
    value = checked_value(config, key, value)
    try:
      config.update_from_flattened_dict({key: value})
    except (KeyError, AttributeError, TypeError, ValueError) as e:
      raise UserError(f"config override {key}={value!r}: {str(e).splitlines()[0][:160]}") from None
  return config


def check(config: ml_collections.ConfigDict, overrides: dict[str, Any] | None) -> None:
  """Raises the UserError `apply` would, without changing `config`."""
  apply(config.copy_and_resolve_references(), overrides)
