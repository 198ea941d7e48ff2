"""Training: `python -m mottr.train --config=configs/cpu.py --workdir=DIR [--config.x.y=v ...]`.

`train_and_evaluate(config, workdir)` runs the curriculum of `config.curriculum` (single-frame
detection pre-training, then longer clips), data-parallel over `jax.devices()`, with Orbax
checkpoints (atomic, last K kept, automatic resume) and TensorBoard scalars in `workdir`.
Batches and random keys are functions of the step, so a resumed run equals an uninterrupted one.
"""
import importlib.util
import json
import os
import time

from absl import app, flags, logging
import flax
from flax.training import train_state
import jax
import jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import ml_collections
from ml_collections import config_flags
import numpy as np
import optax
import orbax.checkpoint as ocp

from mottr import compile_cache, criterion, data, predictor
from mottr.data import stage_at, total_steps
from mottr.errors import UserError, parse_flags, run_cli
from mottr.model.motr import MOTR, build_model, empty_tracks


class TrainState(train_state.TrainState):
  pass


def load_config(path: str, overrides: dict | None = None) -> ml_collections.ConfigDict:
  """`get_config()` of a config file (e.g. configs/cpu.py) with flattened `a.b` overrides."""
  spec = importlib.util.spec_from_file_location("mottr_config", path)
  if spec is None or not os.path.isfile(path):
    raise UserError(f"{path}: no such config file")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config()
  config.update_from_flattened_dict(overrides or {})
  return config


def make_optimizer(config) -> optax.GradientTransformation:
  oc = config.optim
  schedule = optax.warmup_cosine_decay_schedule(
      0.0, oc.lr, oc.warmup_steps, max(total_steps(config), oc.warmup_steps + 1), oc.lr * oc.min_lr_ratio)
  return optax.chain(optax.clip_by_global_norm(oc.clip_norm),
                     optax.adamw(schedule, weight_decay=oc.weight_decay))


def create_state(config, model: MOTR) -> TrainState:
  size = config.model.image_size
  images = jnp.zeros((1, size, size, 3), jnp.uint8)
  params = jax.jit(model.init)(jax.random.key(config.seed), images,
                               empty_tracks(1, config.model.num_slots, config.model.d_model))
  return TrainState.create(apply_fn=model.apply, params=params, tx=make_optimizer(config))


def make_train_step(config, model: MOTR, mesh: Mesh):
  """The whole update as one jitted function, state donated, batch split over the mesh's `data` axis."""
  replicated = NamedSharding(mesh, P())
  split = NamedSharding(mesh, P("data"))

  def step(state: TrainState, batch: dict, rng: jax.Array) -> tuple[TrainState, dict]:
    grad_fn = jax.value_and_grad(lambda p: criterion.clip_loss(model, p, batch, rng, config), has_aux=True)
    (_, metrics), grads = grad_fn(state.params)
    metrics["grad_norm"] = optax.global_norm(grads)
    return state.apply_gradients(grads=grads), metrics

  return jax.jit(step, in_shardings=(replicated, split, replicated), out_shardings=(replicated, replicated),
                 donate_argnums=0)


def step_rng(config, step: int) -> jax.Array:
  return jax.random.fold_in(jax.random.key(config.seed + 1), step)


def checkpoint_manager(workdir: str, config) -> ocp.CheckpointManager:
  options = ocp.CheckpointManagerOptions(max_to_keep=config.keep_checkpoints, create=True)
  return ocp.CheckpointManager(os.path.abspath(os.path.join(workdir, "checkpoints")), options=options)


def save_checkpoint(mngr: ocp.CheckpointManager, step: int, state: TrainState, config) -> None:
  mngr.save(step, args=ocp.args.Composite(
      # Host copies: the next (donating) step may reuse the device buffers while Orbax writes.
      state=ocp.args.StandardSave(jax.tree.map(np.array, flax.serialization.to_state_dict(state))),
      config=ocp.args.JsonSave(config.to_dict())))


def restore_checkpoint(mngr: ocp.CheckpointManager, state: TrainState) -> TrainState:
  """The latest checkpoint restored into `state`'s structure (no pickle anywhere)."""
  step = mngr.latest_step()
  target = flax.serialization.to_state_dict(state)
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
  restored = mngr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract)))
  return flax.serialization.from_state_dict(state, restored["state"])


def warm_start(state: TrainState, workdir: str) -> TrainState:
  """`state` with the parameters of `workdir`'s latest checkpoint wherever name and shape agree
  (e.g. stage 2 of a recipe starting from stage 1); new parameters keep their initialisation."""
  try:
    source = predictor.raw_params(workdir)
  except UserError as e:
    raise UserError(f"config.init_from: no checkpoint to start from ({e})") from None
  params, fresh = predictor.merge_params(state.params, source)
  print(f"warm start from {workdir}: {len(jax.tree.leaves(params)) - len(fresh)} of "
        f"{len(jax.tree.leaves(params))} arrays copied" + (f"; new: {', '.join(fresh)}" if fresh else ""),
        flush=True)
  return state.replace(params=params)


def validate(config, root: str, params) -> dict[str, float]:
  """Count error per class and detection AP on the first `config.eval_frames` frames of `root`'s val split."""
  from mottr import evaluate  # deferred: TrackEval and pycocotools are only needed here
  metrics = evaluate.evaluate_predictor(predictor.Predictor(config, params), root, "val", max_frames=config.eval_frames)
  out = {f"count_error_{k}": float(v) for k, v in metrics["counts"]["error"].items()}
  out.update(mAP=metrics["detection"]["all"]["mAP"], mAP50=metrics["detection"]["all"]["mAP50"],
             HOTA=metrics["tracking"]["all"]["HOTA"], IDF1=metrics["tracking"]["all"]["IDF1"])
  print("val " + " ".join(f"{k}={v:.3f}" for k, v in out.items()), flush=True)
  return out


class _Window:
  """Metrics and wall time since the last log line: rates cover this window only, never a
  compilation or a validation."""

  def __init__(self, step: int):
    self.restart(step)
    self.pending: list[dict] = []

  def restart(self, step: int) -> None:
    self.t0, self.s0 = time.perf_counter(), step

  def flush(self, step: int) -> tuple[dict[str, float], float]:
    """(mean of each metric over the pending steps, steps/s since the window started)."""
    means = {k: float(np.mean([m[k] for m in self.pending])) for k in self.pending[0]} if self.pending else {}
    rate = (step - self.s0) / max(time.perf_counter() - self.t0, 1e-9)
    self.pending = []
    self.restart(step)
    return means, rate


def _progress(step: int, end: int, rate: float, frames_per_s: float, metrics: dict[str, float]) -> str:
  eta = (end - step) / max(rate, 1e-9)
  terms = " ".join(f"{k}={v:.4f}" for k, v in sorted(metrics.items()))
  return f"step {step}/{end} {rate:.2f} steps/s {frames_per_s:.0f} frames/s eta {eta / 60:.1f} min | {terms}"


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, stop_at: int | None = None) -> TrainState:
  """Trains `config` in `workdir`, resuming from its latest checkpoint; returns the final state.

  `stop_at` ends the run early at that step with a checkpoint, as a preemption would.
  """
  from tensorboardX import SummaryWriter  # deferred: only training needs it

  os.makedirs(workdir, exist_ok=True)
  devices = jax.devices()
  if config.batch_size % len(devices):
    raise UserError(f"batch_size {config.batch_size} is not divisible by the {len(devices)} devices; "
                    "set --config.batch_size to a multiple")
  mesh = Mesh(np.array(devices), ("data",))
  model = build_model(config)
  state = create_state(config, model)
  mngr = checkpoint_manager(workdir, config)
  if mngr.latest_step() is not None:
    state = restore_checkpoint(mngr, state)
    print(f"resumed from step {int(state.step)}", flush=True)
  elif config.init_from:
    state = warm_start(state, config.init_from)
  with open(os.path.join(workdir, "config.json"), "w") as f:
    json.dump(config.to_dict(), f, indent=1)

  loader = data.TrainData(config, workdir)
  train_step = make_train_step(config, model, mesh)
  split = NamedSharding(mesh, P("data"))
  writer = SummaryWriter(os.path.join(workdir, "tb"))
  end = total_steps(config)
  stop = end if stop_at is None else min(stop_at, end)
  step = first = int(state.step)
  window = _Window(step)
  for host_batch in loader.batches(step, stop, int(config.data.workers)):
    stage_start = step in (first, stage_at(config, step)[2])
    t_step = time.perf_counter()
    batch = jax.device_put(host_batch, split)
    state, metrics = train_step(state, batch, step_rng(config, step))
    step += 1
    if stage_start:  # the first step of a clip length compiles it: timed apart, outside the window
      jax.block_until_ready(metrics)
      clip_len = stage_at(config, step - 1)[1]
      compile_s = time.perf_counter() - t_step
      print(f"clip length {clip_len}: first step (compilation) {compile_s:.1f} s", flush=True)
      writer.add_scalar(f"compile/clip_len_{clip_len}_s", compile_s, step)
      window.restart(step)
    window.pending.append(metrics)
    if step % config.log_every == 0 or step == stop:
      means, rate = window.flush(step)
      frames_per_s = rate * config.batch_size * stage_at(config, step - 1)[1]
      print(_progress(step, end, rate, frames_per_s, means), flush=True)
      for k, v in means.items():
        writer.add_scalar(f"train/{k}", v, step)
      writer.add_scalar("train/steps_per_s", rate, step)
      writer.add_scalar("train/frames_per_s", frames_per_s, step)
      writer.add_scalar("train/clip_len", stage_at(config, step - 1)[1], step)
    if step % config.checkpoint_every == 0 or step == stop:
      save_checkpoint(mngr, step, state, config)
    if config.eval_every and (step % config.eval_every == 0 or step == end):
      for k, v in validate(config, data.synth_root(config, workdir), state.params).items():
        writer.add_scalar(f"val/{k}", v, step)
      window.restart(step)
  mngr.wait_until_finished()
  writer.close()
  return state


def _define_flags() -> None:
  """CLI flags, defined only when this module runs as a program (tests and tools import it)."""
  config_flags.DEFINE_config_file("config", "configs/default.py", "Training configuration.", lock_config=True)
  flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and prepared data.", required=True)


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise UserError(f"unexpected arguments {argv[1:]}; use --config.x=v for overrides")
  config = flags.FLAGS.config
  logging.set_verbosity(logging.WARNING)  # Orbax and TFDS are chatty at INFO
  compile_cache.enable()
  if config.distributed:
    jax.distributed.initialize()
  train_and_evaluate(config, flags.FLAGS.workdir)


if __name__ == "__main__":
  _define_flags()
  app.run(run_cli(main), flags_parser=parse_flags)
