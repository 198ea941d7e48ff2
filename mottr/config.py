"""The config schema: every key a model, its training and its tracker read, with its default.

`configs/` holds the recipes (each a `get_config()` that starts from this one, with the command
that runs it in its docstring); a checkpoint's config.json holds the same keys, so a model
carries its architecture, how it was trained and its tuned `tracker` thresholds (the one set of
defaults is `mottr.tracker.TrackerSettings`). Any key is changed from a command line with
`--config.a.b=v` (`mottr.config_overrides`).

Options measured as useless were deleted (docs/history.md, "Deleted options"): a saved config
that still holds one is read when it holds the "off" value (the key is dropped) and refused in
one line otherwise (`drop_deleted`).
"""
import dataclasses
from typing import Any

import ml_collections

from mottr.schema import UserError
from mottr.tracker import TrackerSettings

# Deleted options and the value that meant "off"; keys whose value only mattered when their
# option was on map to ANY.
ANY = object()
DELETED: dict[str, Any] = {
    "model.denoise": False,
    "model.detached_births": False,
    "loss.dn_box_noise": ANY,
    "loss.dn_label_noise": ANY,
}


def get_config() -> ml_collections.ConfigDict:
  """Every key with its default: configs/default.py (the GPU/TPU recipe) and the tracker section."""
  # configs/default.py still holds the model, loss, data and schedule keys (another change edits
  # it now); they move here next, and configs/default.py will start from this function.
  from configs import default  # pylint: disable=g-import-not-at-top
  c = default.get_config()
  # Tracker and counting thresholds (mottr.tracker.TrackerSettings), exported with the model.
  c.tracker = ml_collections.ConfigDict(dataclasses.asdict(TrackerSettings()))
  return c


def refuse_deleted(config: ml_collections.ConfigDict) -> None:
  """UserError (one line) when a config turns on a deleted option."""
  flat = _flatten(config.to_dict())
  for key, off in DELETED.items():
    if off is not ANY and key in flat and flat[key] != off:
      raise UserError(f"config {key}={flat[key]!r}: this option was deleted (measured useless, "
                      "docs/history.md)")


def _flatten(d: dict, prefix: str = "") -> dict:
  out = {}
  for k, v in d.items():
    if isinstance(v, dict):
      out.update(_flatten(v, f"{prefix}{k}."))
    else:
      out[f"{prefix}{k}"] = v
  return out


def drop_deleted(saved: dict, source: str) -> dict:
  """`saved` (a config as nested dicts, e.g. a checkpoint's config.json) without the keys of
  deleted options; UserError (one line) when one of them is on."""
  flat = _flatten(saved)
  for key, off in DELETED.items():
    if key in flat and off is not ANY and flat[key] != off:
      raise UserError(f"{source}: {key}={flat[key]!r} was deleted from mottr (measured useless, "
                      "docs/history.md); this checkpoint needs an older mottr")
  out: dict = {}
  for key, value in flat.items():
    if key in DELETED:
      continue
    node = out
    *groups, leaf = key.split(".")
    for g in groups:
      node = node.setdefault(g, {})
    node[leaf] = value
  return out


def from_dict(saved: dict, source: str) -> ml_collections.ConfigDict:
  """The schema's config with a saved config's values (deleted options dropped, see
  `drop_deleted`); keys this version does not know are refused in one line."""
  config = get_config()
  values = {k: tuple(tuple(x) if isinstance(x, list) else x for x in v) if isinstance(v, list) else v
            for k, v in _flatten(drop_deleted(saved, source)).items()}
  unknown = sorted(set(values) - set(_flatten(config.to_dict())))
  if unknown:
    raise UserError(f"{source}: config does not match this version of mottr (unknown key "
                    f"{unknown[0]}); retrain or use a matching checkpoint")
  try:
    config.update_from_flattened_dict(values)
  except (KeyError, AttributeError, TypeError) as e:
    raise UserError(f"{source}: config does not match this version of mottr ({e}); retrain or "
                    "use a matching checkpoint") from None
  return config
