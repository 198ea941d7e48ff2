"""Checkpoints: a model's config and parameters on disk, exported, loaded and warm-started.

An exported model is a folder with `config.json` (the whole config: architecture, training and the
`tracker` section, read by `mottr.config.from_dict`) and `params.msgpack` (flax serialisation, no
pickle), as `mottr/assets/shipped/`; a training workdir holds the same config.json beside its
Orbax checkpoints (`checkpoints/`), whose latest one is read. Training saves and restores its
full state itself (`mottr.train`); `merge_params` is its warm start. A model whose config has
`refiner.enabled` also holds `refiner.msgpack`, the crop refiner's parameters (`mottr.refiner`;
a `mottr.train_refiner` workdir holds the same file).
"""
import json
import os

import flax
from flax import traverse_util
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from mottr import config as config_lib
from mottr import config_overrides
from mottr.model import crop_refiner
from mottr.model.motr import build_model, empty_tracks
from mottr.schema import UserError

SHIPPED_CHECKPOINT = os.path.join(os.path.dirname(__file__), "assets", "shipped")
REFINER_NAME = "refiner.msgpack"
EXPORT_NAMES = ("config.json", "params.msgpack", REFINER_NAME)


def export(config: ml_collections.ConfigDict, params, out_dir: str, *,
           overwrite: bool = False, refiner_params=None) -> None:
  """Writes `config.json` + `params.msgpack` (no pickle), and `refiner.msgpack` when the config
  enables the refiner, into out_dir, each moved into place atomically. Other files in out_dir are
  never touched; an out_dir that already holds any of them (an earlier export) is refused
  (UserError) unless `overwrite`."""
  from mottr import outputs  # pylint: disable=g-import-not-at-top
  refines = bool(config.get("refiner") and config.refiner.enabled)
  if refines != (refiner_params is not None):
    raise ValueError("the refiner's parameters go with config.refiner.enabled, and only with it")
  with outputs.output_dir(out_dir, EXPORT_NAMES, overwrite=overwrite, flag="--out") as tmp:
    with open(os.path.join(tmp, "config.json"), "w") as f:
      json.dump(config.to_dict(), f, indent=1)
    with open(os.path.join(tmp, "params.msgpack"), "wb") as f:
      f.write(flax.serialization.to_bytes(params))
    if refines:
      with open(os.path.join(tmp, REFINER_NAME), "wb") as f:
        f.write(flax.serialization.to_bytes(refiner_params))


def read_config(path: str) -> ml_collections.ConfigDict:
  """The config.json of an exported model or training workdir, as `mottr.config.from_dict` reads
  it; a missing, damaged or foreign one is a one-line UserError."""
  config_path = os.path.join(path, "config.json")
  if not os.path.isfile(config_path):
    raise UserError(f"{path}: no checkpoint here (config.json missing); pass --checkpoint DIR of a training "
                    "workdir or an exported model")
  try:
    with open(config_path) as f:
      saved = json.load(f)
  except (ValueError, RecursionError) as e:  # JSONDecodeError, UnicodeDecodeError
    raise UserError(f"{config_path}: not valid JSON ({str(e)[:120]}); the checkpoint is damaged, "
                    "export or copy it again") from None
  if not isinstance(saved, dict):
    raise UserError(f"{config_path}: not a JSON object of config values; the checkpoint is "
                    "damaged, export or copy it again")
  return config_lib.from_dict(saved, config_path)  # deleted options off, no unknown key


def load(checkpoint_dir: str | None = None, overrides: dict | None = None, step: int | None = None
         ) -> tuple[ml_collections.ConfigDict, dict]:
  """(config, parameters) of an exported model or a training workdir's checkpoint `step` (None: the
  latest); None = the shipped model. `overrides` ({"a.b": v}) change the config first (unknown
  keys, deleted options among them, wrong types and parameters that do not fit: one-line UserErrors)."""
  path = checkpoint_dir or SHIPPED_CHECKPOINT
  config = read_config(path)
  config_overrides.apply(config, overrides)
  model = build_model(config)
  size = config.model.image_size
  init = lambda: model.init(jax.random.key(0), jnp.zeros((1, size, size, 3), jnp.uint8),
                            empty_tracks(1, config.model.num_slots, config.model.d_model))
  template = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), jax.eval_shape(init))
  return config, _load_params(path, template, step)


def refiner_template(config: ml_collections.ConfigDict):
  """Zero parameters of the config's crop refiner (their shapes)."""
  size = config.refiner.crop_size
  init = lambda: crop_refiner.init_params(crop_refiner.build_refiner(config.refiner), size)
  return jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), jax.eval_shape(init))


def load_refiner(checkpoint_dir: str | None, config: ml_collections.ConfigDict):
  """The crop refiner's parameters of a model folder (None = the shipped model) or refiner workdir,
  when its config enables the refiner; else None."""
  if not config.refiner.enabled:
    return None
  path = os.path.join(checkpoint_dir or SHIPPED_CHECKPOINT, REFINER_NAME)
  if not os.path.isfile(path):
    raise UserError(f"{path}: missing, but config.refiner.enabled is on; train one (python -m mottr.train_refiner) "
                    "or pass --config.refiner.enabled=False")
  template = refiner_template(config)
  try:
    with open(path, "rb") as f:
      return _checked(template, flax.serialization.from_bytes(template, f.read()))
  except Exception as e:  # damaged file or another architecture
    raise UserError(f"{path}: does not fit config.refiner ({type(e).__name__}: {str(e)[:120]}); "
                    "export the model and its refiner again") from None


def merge_params(params, source) -> tuple[dict, list[str]]:
  """`params` with every array of `source` whose name and shape agree; and the names left as
  they were."""
  flat = traverse_util.flatten_dict(params)
  src = traverse_util.flatten_dict(source)
  kept = [k for k, v in flat.items() if not (k in src and np.shape(src[k]) == np.shape(v))]
  for k, v in flat.items():
    if k not in kept:
      flat[k] = jnp.asarray(src[k], v.dtype)
  return traverse_util.unflatten_dict(flat), sorted("/".join(map(str, k)) for k in kept)


def raw_params(path: str, step: int | None = None) -> dict:
  """The parameter dict of an exported model or a workdir's checkpoint `step` (None: the latest), as
  stored; of a checkpoint that holds a moving average of the parameters (`optim.ema_decay`), the average."""
  exported = os.path.join(path, "params.msgpack")
  if os.path.isfile(exported) and step is not None:
    raise UserError(f"{path} is an exported model (one set of weights); a step needs a training workdir")
  if os.path.isfile(exported):
    with open(exported, "rb") as f:
      return flax.serialization.msgpack_restore(f.read())
  ckpt_dir = os.path.join(path, "checkpoints")
  if not os.path.isdir(ckpt_dir):
    raise UserError(f"{path}: neither params.msgpack nor checkpoints/ found; pass an exported model or a training workdir")
  import orbax.checkpoint as ocp
  mngr = ocp.CheckpointManager(os.path.abspath(ckpt_dir))
  steps = sorted(mngr.all_steps())
  if not steps:
    raise UserError(f"{ckpt_dir}: holds no checkpoint yet; train first or pass another --checkpoint")
  if step is None:
    step = steps[-1]
  elif step not in steps:
    raise UserError(f"{ckpt_dir}: no checkpoint of step {step}; it holds steps {', '.join(map(str, steps))}")
  restored = mngr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
  state = restored["state"]
  return state.get("ema_params") or state["params"]  # the moving average where training kept one


def _checked(template, params):
  """params, after checking every leaf has the template's shape (the config's architecture)."""
  for (key, want), got in zip(jax.tree_util.tree_leaves_with_path(template), jax.tree.leaves(params)):
    if np.shape(got) != np.shape(want):
      raise ValueError(f"{jax.tree_util.keystr(key)} has shape {np.shape(got)}, the config needs {np.shape(want)}")
  return params


def _load_params(path: str, template, step: int | None = None):
  try:
    return _checked(template, flax.serialization.from_state_dict(template, raw_params(path, step)))
  except UserError:
    raise
  except Exception as e:  # shape/structure mismatch of a foreign checkpoint
    raise UserError(f"{path}: checkpoint does not fit its config ({type(e).__name__}: {str(e)[:120]}); "
                    "use a checkpoint written by this version of mottr") from None
