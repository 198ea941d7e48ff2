"""Training: `python -m mottr.train --config=configs/cpu.py --workdir=DIR [--config.x.y=v ...]`.

`train_and_evaluate(config, workdir)` runs the curriculum of `config.curriculum` (single-frame
detection pre-training, then longer clips), data-parallel over `jax.devices()`, with Orbax
checkpoints (atomic, last K kept, automatic resume) and TensorBoard scalars in `workdir`.
Batches and random keys are functions of the step, so a resumed run equals an uninterrupted one.

Interruption: Ctrl-C or SIGTERM lets the current step finish, saves a checkpoint, prints one line
(the step and the checkpoint folder) and exits 130 or 143; a second Ctrl-C stops at once. Every exit,
an exception included, first waits for the checkpoint being written. A newest checkpoint that does not
restore (a torn or corrupt write) is moved to `workdir/corrupt_checkpoints/` with one warning line,
and the run resumes from the newest one that does.

Multi-host: every process runs the same command with `--coordinator_address=HOST:PORT
--num_processes=N --process_id=I` (or `--config.distributed=True` where JAX detects the cluster);
the batch of each step is split over the devices of all processes, process 0 writes the logs.
"""
import contextlib
import importlib.util
import json
import logging as logging_std
import os
import shutil
import signal
import sys
import threading
import time

from absl import app, flags, logging
import flax
from flax.training import train_state
import jax
import jax.numpy as jnp
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import ml_collections
from ml_collections import config_flags
import numpy as np
import optax
import orbax.checkpoint as ocp

from mottr import augment, checkpoint, compile_cache, config_overrides, criterion, data, matching, predictor, schema
from mottr.data import stage_at, total_steps
from mottr.errors import parse_flags
from mottr.model.motr import MOTR, build_model, empty_tracks
from mottr.schema import UserError, run_cli


class TrainState(train_state.TrainState):
  pass


class EmaTrainState(TrainState):
  """A TrainState that also carries an exponential moving average of the parameters
  (`config.optim.ema_decay` > 0); checkpoints, exports, validation and warm starts use the average."""
  ema_params: flax.core.FrozenDict | dict


def ema_decay_at(config, step: jax.Array) -> jax.Array:
  """The averaging weight of the old average at `step`: `config.optim.ema_decay`, ramped up as
  min(decay, (1 + step) / (10 + step)) when the run starts from scratch (so the average forgets the
  random initialisation); a warm-started run (`config.init_from`) starts from trained weights and
  averages at the full decay from its first step."""
  decay = config.optim.ema_decay
  if config.init_from:
    return jnp.asarray(decay, jnp.float32)
  step = jnp.asarray(step, jnp.float32)
  return jnp.minimum(decay, (1.0 + step) / (10.0 + step))


def load_config(path: str, overrides: dict | None = None) -> ml_collections.ConfigDict:
  """`get_config()` of a config file (e.g. configs/cpu.py) with flattened `a.b` overrides."""
  spec = importlib.util.spec_from_file_location("mottr_config", path)
  if spec is None or not os.path.isfile(path):
    raise UserError(f"{path}: no such config file")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config()
  return config_overrides.apply(config, overrides)  # unknown keys and wrong types: UserError


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
  if config.optim.ema_decay > 0:
    state = EmaTrainState.create(apply_fn=model.apply, params=params, tx=make_optimizer(config),
                                 ema_params=jax.tree.map(jnp.copy, params))
  else:
    state = TrainState.create(apply_fn=model.apply, params=params, tx=make_optimizer(config))
  return state.replace(step=jnp.zeros((), jnp.int32))  # typed as a restored one: one compiled step for both


def eval_params(state: TrainState):
  """The parameters a model is judged and exported with: the moving average where there is one."""
  return state.ema_params if isinstance(state, EmaTrainState) else state.params


def augment_batch(config, batch: dict, rng: jax.Array) -> dict:
  """The batch with the photometric augmentation (`mottr.augment`) keyed by the step's `rng` where
  `config.data.augment` (flip and JPEG came with the batch from the host); unchanged otherwise."""
  if not config.data.augment:
    return batch
  return dict(batch, image=augment.photometric(batch["image"], jax.random.fold_in(rng, augment.SEED)))


def make_train_step(config, model: MOTR, mesh: Mesh):
  """The whole update as one jitted function, state donated, batch split over the mesh's `data` axis;
  with `config.data.augment` it starts with the photometric augmentation, keyed by `rng` (the step's)."""
  replicated = NamedSharding(mesh, P())
  split = NamedSharding(mesh, P("data"))

  def step(state: TrainState, batch: dict, rng: jax.Array) -> tuple[TrainState, dict]:
    batch = augment_batch(config, batch, rng)
    grad_fn = jax.value_and_grad(lambda p: criterion.clip_loss(model, p, batch, rng, config), has_aux=True)
    (_, metrics), grads = grad_fn(state.params)
    metrics["grad_norm"] = optax.global_norm(grads)
    new = state.apply_gradients(grads=grads)
    if isinstance(state, EmaTrainState):
      d = ema_decay_at(config, state.step)
      new = new.replace(ema_params=jax.tree.map(lambda e, p: d * e + (1.0 - d) * p, state.ema_params, new.params))
    return new, metrics

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


@contextlib.contextmanager
def _quiet_absl():
  """Orbax's own ERROR log lines silenced (a failed restore is reported by us, in one line)."""
  level = logging.get_verbosity()
  logging.set_verbosity(logging.FATAL)
  try:
    yield
  finally:
    logging.set_verbosity(level)


def _first_line(e: BaseException, limit: int = 160) -> str:
  text = str(e).strip().splitlines()[0] if str(e).strip() else ""
  return f"{type(e).__name__}: {text[:limit]}" if text else type(e).__name__


class _OrbaxOrphanFilter(logging_std.Filter):
  """Drops asyncio's `Task/Future exception was never retrieved` for Orbax's and TensorStore's
  reads (an Orbax coroutine, a TensorStore error, or the closed loop)."""

  def filter(self, record: logging_std.LogRecord) -> bool:
    text = str(record.msg)
    if not text.startswith(("Task exception was never retrieved",
                            "Future exception was never retrieved")):
      return True
    error = str(record.exc_info[1]) if record.exc_info and record.exc_info[1] else ""
    return not ("orbax" in text or "tensorstore_spec" in error or "DATA_LOSS" in error
                or error == "Event loop is closed")


def _silence_failed_restore_leftovers() -> None:
  """Silences the tracebacks a failed restore leaves after our one warning line.

  When one read of a garbled checkpoint fails, Orbax's event loop ends and closes while
  TensorStore still completes the other reads on its own threads:
  - each completion calls `loop.call_soon_threadsafe` on the closed loop, and the
    `RuntimeError: Event loop is closed` goes to `sys.unraisablehook` (a bare traceback on
    stderr, up to hundreds, some after the restore returned);
  - Orbax's other read tasks and TensorStore's futures end with an error nobody retrieves, which
    asyncio logs with a traceback when they are garbage collected (any time later, e.g. at exit).
  Both are dropped, exactly those; everything else passes on. Installed once, for good (the
  leftovers come late).
  """
  previous = sys.unraisablehook
  if getattr(previous, "mottr_drops_closed_loop", False):
    return

  def hook(unraisable) -> None:
    e = unraisable.exc_value
    if isinstance(e, RuntimeError) and str(e) == "Event loop is closed":
      return
    previous(unraisable)

  hook.mottr_drops_closed_loop = True
  sys.unraisablehook = hook
  logging_std.getLogger("asyncio").addFilter(_OrbaxOrphanFilter())


def restore_checkpoint(mngr: ocp.CheckpointManager, state: TrainState) -> TrainState:
  """The newest checkpoint that restores, in `state`'s structure and shardings (no pickle anywhere).

  Newer checkpoints that fail to restore (torn or garbled files) are moved out of the checkpoint
  folder, to `../corrupt_checkpoints/STEP`, so that they count neither as latest nor against
  `keep_checkpoints`; one warning line names them. When none restores (e.g. the config changed
  the architecture), nothing is moved and the error is one line.
  """
  target = flax.serialization.to_state_dict(state)
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
  failed: list[tuple[int, BaseException]] = []
  _silence_failed_restore_leftovers()  # before the first read: a failing one leaves late callbacks
  for step in sorted(mngr.all_steps(), reverse=True):
    try:
      with _quiet_absl():
        restored = mngr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract)))
    except Exception as e:  # anything a torn write can raise: JSON, tensorstore, shape, missing file
      failed.append((step, e))
      continue
    if failed:
      _move_aside(mngr, [s for s, _ in failed])
      names = ", ".join(str(s) for s, _ in failed)
      print(f"warning: checkpoint {names} in {mngr.directory} does not restore ({_first_line(failed[0][1])}); "
            f"moved to {_corrupt_dir(mngr)}; resuming from checkpoint {step}", file=sys.stderr, flush=True)
    return flax.serialization.from_state_dict(state, restored["state"])
  raise UserError(f"{mngr.directory}: no checkpoint restores into this config (newest, {failed[0][0]}: "
                  f"{_first_line(failed[0][1])}); use the config it was trained with, or move {mngr.directory} "
                  "away to start afresh")


def _corrupt_dir(mngr: ocp.CheckpointManager) -> str:
  return os.path.join(os.path.dirname(str(mngr.directory)), "corrupt_checkpoints")


def _move_aside(mngr: ocp.CheckpointManager, steps: list[int]) -> None:
  """Moves the folders of `steps` out of the checkpoint folder (process 0 of a multi-host run)."""
  if jax.process_index() == 0:
    for step in steps:
      dest = os.path.join(_corrupt_dir(mngr), str(step))
      while os.path.exists(dest):
        dest += "_"
      os.makedirs(os.path.dirname(dest), exist_ok=True)
      shutil.move(os.path.join(str(mngr.directory), str(step)), dest)
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices("mottr: corrupt checkpoints moved")
  mngr.reload()


def warm_start(state: TrainState, workdir: str, step: int | None = None) -> TrainState:
  """`state` with the parameters of `workdir`'s checkpoint `step` (None: the latest; or an exported
  model) wherever name and shape agree (e.g. stage 2 of a recipe starting from stage 1); new
  parameters keep their initialisation."""
  try:
    source = checkpoint.raw_params(workdir, step)
  except UserError as e:
    raise UserError(f"config.init_from: no checkpoint to start from ({e})") from None
  params, fresh = checkpoint.merge_params(state.params, source)
  if isinstance(state, EmaTrainState):
    state = state.replace(ema_params=jax.tree.map(jnp.copy, params))
  print(f"warm start from {workdir}: {len(jax.tree.leaves(params)) - len(fresh)} of "
        f"{len(jax.tree.leaves(params))} arrays copied" + (f"; new: {', '.join(fresh)}" if fresh else ""),
        flush=True)
  return state.replace(params=params)


def validate(config, root: str, params, log=print) -> dict[str, float]:
  """Count error per class and detection AP on the first `config.eval_frames` frames of `root`'s val split."""
  from mottr import evaluate  # deferred: TrackEval and pycocotools are only needed here
  metrics = evaluate.evaluate_predictor(predictor.Predictor(config, params), root, "val", max_frames=config.eval_frames)
  out = {f"count_error_{k}": float(v) for k, v in metrics["counts"]["error"].items()}
  out.update(mAP=metrics["detection"]["all"]["mAP"], mAP50=metrics["detection"]["all"]["mAP50"],
             HOTA=metrics["tracking"]["all"]["HOTA"], IDF1=metrics["tracking"]["all"]["IDF1"])
  log("val " + " ".join(f"{k}={v:.3f}" for k, v in out.items()), flush=True)
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


class TrainingInterrupted(KeyboardInterrupt):
  """Raised by `train_and_evaluate` after Ctrl-C or SIGTERM stopped it at `step`, its checkpoint saved.
  The CLI exits with `exit_code`: 130 (SIGINT) or 143 (SIGTERM)."""

  def __init__(self, signum: int, step: int, message: str):
    super().__init__(message)
    self.signum, self.step = signum, step

  @property
  def exit_code(self) -> int:
    return 128 + self.signum


class _StopRequest:
  """SIGINT and SIGTERM set a flag that the loop reads after each step (so that no exception ever
  lands inside JAX or Orbax); a second SIGINT raises KeyboardInterrupt at once. Installed only in the
  main thread; the previous handlers come back on exit. In a multi-host run SIGTERM stays with JAX's
  preemption service, which makes every process stop at the same step, and SIGINT is passed to it as
  a SIGTERM (the exit status still says SIGINT)."""

  def __init__(self, multi_host: bool):
    self.signum: int | None = None
    self.multi_host = multi_host
    self.received: int | None = None  # multi-host: the SIGINT passed on to the preemption service
    self._signals = (signal.SIGINT,) if multi_host else (signal.SIGINT, signal.SIGTERM)
    self._previous: dict[int, object] = {}

  def _handle(self, signum: int, frame) -> None:
    del frame
    if (self.signum is not None or self.received is not None) and signum == signal.SIGINT:
      raise KeyboardInterrupt
    if self.multi_host:
      self.received = signum
      os.kill(os.getpid(), signal.SIGTERM)  # JAX's preemption notifier: all processes agree on a step
    elif self.signum is None:
      self.signum = signum

  def __enter__(self) -> "_StopRequest":
    if threading.current_thread() is threading.main_thread():
      for s in self._signals:
        self._previous[s] = signal.signal(s, self._handle)
    return self

  def __exit__(self, *exc) -> None:
    for s, handler in self._previous.items():
      signal.signal(s, handler)


def check_config(config, workdir: str) -> None:
  """Fails in one line (UserError), before any work, on what would otherwise fail mid-run."""
  for key in ("batch_size", "log_every", "checkpoint_every", "keep_checkpoints"):
    if int(config[key]) < 1:
      raise UserError(f"config.{key} is {config[key]}; it must be at least 1")
  if config.eval_every < 0:
    raise UserError(f"config.eval_every is {config.eval_every}; use 0 for no periodic validation")
  if not config.curriculum or any(int(n) < 1 or int(t) < 1 for n, t in config.curriculum):
    raise UserError(f"config.curriculum {tuple(config.curriculum)}: give (steps, clip length) pairs, both at least 1")
  if config.loss.matcher not in matching.SOLVERS:
    raise UserError(f"config.loss.matcher {config.loss.matcher!r}: use one of {', '.join(matching.SOLVERS)}")
  n = jax.device_count()
  if config.batch_size % n:
    raise UserError(f"batch_size {config.batch_size} is not divisible by the {n} devices; "
                    "set --config.batch_size to a multiple")
  root = config.data.synth_root
  if root:
    if not os.path.isdir(root):
      raise UserError(f"config.data.synth_root {root}: no such folder")
    if not os.path.isfile(schema.annotation_path(root, "train")):
      raise UserError(f"{root}: no annotations/instances_train.json; generate one with "
                      "python -m data_prep.synth --out_dir DIR or pass the real challenge root")
    if config.eval_every:
      for path in (schema.annotation_path(root, "val"), schema.video_path(root, "val")):
        if not os.path.isfile(path):
          raise UserError(f"{path}: missing; config.eval_every={config.eval_every} validates on the val split "
                          f"of {root}; add one or set --config.eval_every=0")
  real = config.data.real_root
  if real and not os.path.isdir(os.path.join(real, "frames", "train")):
    raise UserError(f"config.data.real_root {real}: no frames/train/ folder of real sparse frames")
  if config.init_from and not os.path.isdir(config.init_from):
    raise UserError(f"config.init_from {config.init_from}: no such folder")
  try:
    os.makedirs(workdir, exist_ok=True)
  except OSError as e:
    raise UserError(f"--workdir {workdir}: cannot create it ({e.strerror})") from None
  if not os.access(workdir, os.W_OK | os.X_OK):
    raise UserError(f"--workdir {workdir}: not writable")


class _NoWriter:
  """The SummaryWriter of processes other than 0 in a multi-host run."""

  def add_scalar(self, *args, **kwargs) -> None:
    pass

  def close(self) -> None:
    pass


def _preempted(step: int) -> bool:
  """Multi-host: whether every process is to stop after `step` (JAX's preemption service caught a
  SIGTERM on some process and picked this step for all)."""
  try:
    return multihost_utils.reached_preemption_sync_point(step)
  except RuntimeError:  # the preemption service is off (jax_enable_preemption_service=False)
    return False


def _global_batch(host_batch: dict[str, np.ndarray], sharding: NamedSharding) -> dict[str, jax.Array]:
  """The step's batch (the same on every process: a function of the step) as arrays split over the
  mesh; each process places only the rows of its own devices."""
  if jax.process_count() == 1:
    return jax.device_put(host_batch, sharding)
  return {k: jax.make_array_from_callback(v.shape, sharding, lambda index, v=v: v[index])
          for k, v in host_batch.items()}


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, stop_at: int | None = None) -> TrainState:
  """Trains `config` in `workdir`, resuming from its latest checkpoint that restores; returns the final state.

  `stop_at` ends the run early at that step with a checkpoint, as a preemption would. Ctrl-C or
  SIGTERM ends it after the current step with a checkpoint and raises `TrainingInterrupted`.
  Every exit waits for the checkpoint being written.
  """
  from tensorboardX import SummaryWriter  # deferred: only training needs it

  check_config(config, workdir)
  primary = jax.process_index() == 0
  multi_host = jax.process_count() > 1
  mesh = Mesh(np.array(jax.devices()), ("data",))
  replicated = NamedSharding(mesh, P())
  model = build_model(config)
  state = jax.device_put(create_state(config, model), replicated)
  with _quiet_absl():  # a garbled checkpoint's metadata is reported by restore_checkpoint, in one line
    mngr = checkpoint_manager(workdir, config)
  writer = None
  try:
    if mngr.latest_step() is not None:
      state = restore_checkpoint(mngr, state)
      if primary:
        print(f"resumed from step {int(state.step)}", flush=True)
    elif config.init_from:
      state = warm_start(state, config.init_from, config.init_step or None)
    if primary:
      with open(os.path.join(workdir, "config.json"), "w") as f:
        json.dump(config.to_dict(), f, indent=1)

    loader = data.TrainData(config, workdir)  # prepared by data_prep.prepare (main does it)
    train_step = make_train_step(config, model, mesh)
    split = NamedSharding(mesh, P("data"))
    writer = SummaryWriter(os.path.join(workdir, "tb")) if primary else _NoWriter()
    log = print if primary else (lambda *a, **k: None)
    end = total_steps(config)
    stop = end if stop_at is None else min(stop_at, end)
    step = first = int(state.step)
    saved = mngr.latest_step()
    window = _Window(step)
    with _StopRequest(multi_host) as request:
      for host_batch in loader.batches(step, stop, int(config.data.workers)):
        stage_start = step in (first, stage_at(config, step)[2])
        t_step = time.perf_counter()
        batch = _global_batch(host_batch, split)
        state, metrics = train_step(state, batch, step_rng(config, step))
        step += 1
        if stage_start:  # the first step of a clip length compiles it: timed apart, outside the window
          jax.block_until_ready(metrics)
          clip_len = stage_at(config, step - 1)[1]
          compile_s = time.perf_counter() - t_step
          log(f"clip length {clip_len}: first step (compilation) {compile_s:.1f} s", flush=True)
          writer.add_scalar(f"compile/clip_len_{clip_len}_s", compile_s, step)
          window.restart(step)
        window.pending.append(metrics)
        if step % config.log_every == 0 or step == stop:
          means, rate = window.flush(step)
          frames_per_s = rate * config.batch_size * stage_at(config, step - 1)[1]
          log(_progress(step, end, rate, frames_per_s, means), flush=True)
          for k, v in means.items():
            writer.add_scalar(f"train/{k}", v, step)
          writer.add_scalar("train/steps_per_s", rate, step)
          writer.add_scalar("train/frames_per_s", frames_per_s, step)
          writer.add_scalar("train/clip_len", stage_at(config, step - 1)[1], step)
        if multi_host and request.signum is None and _preempted(step):
          request.signum = request.received or signal.SIGTERM
        if step % config.checkpoint_every == 0 or step == stop:
          save_checkpoint(mngr, step, state, config)
          saved = step
        if request.signum is None and config.eval_every and (step % config.eval_every == 0 or step == end):
          params = jax.tree.map(np.asarray, eval_params(state)) if multi_host else eval_params(state)  # local programs
          for k, v in validate(config, data.synth_root(config, workdir), params, log).items():
            writer.add_scalar(f"val/{k}", v, step)
          window.restart(step)
        if request.signum is not None:  # Ctrl-C / SIGTERM during this step (or its validation)
          if saved != step:
            save_checkpoint(mngr, step, state, config)
            saved = step
          break
    mngr.wait_until_finished()
    if request.signum is not None:
      name = signal.Signals(request.signum).name
      where = (f"checkpoint {os.path.join(str(mngr.directory), str(saved))} saved; run the same command to resume"
               if saved is not None else "nothing to save yet")
      message = f"{name}: training stopped at step {step} of {end}; {where}"
      log(message, file=sys.stderr, flush=True)
      raise TrainingInterrupted(request.signum, step, message)
  except BaseException as e:
    # An exception (a failed step, validation or input), or a second Ctrl-C: the checkpoint being
    # written is completed before the exception leaves, so it is never lost to a half-written folder.
    _close(mngr, writer, quiet=not isinstance(e, TrainingInterrupted))
    raise
  _close(mngr, writer, quiet=False)
  return state


def _close(mngr: ocp.CheckpointManager, writer, quiet: bool) -> None:
  """Waits for the checkpoint in flight and closes the manager and the writer; with `quiet`
  (another exception is on its way) a failure here is one line on stderr, not a second traceback."""
  try:
    mngr.wait_until_finished()
    mngr.close()
    if writer is not None:
      writer.close()
  except Exception as e:
    if not quiet:
      raise
    print(f"error: while stopping, the checkpoint could not be completed ({_first_line(e)})", file=sys.stderr)


def _define_flags() -> None:
  """CLI flags, defined only when this module runs as a program (tests and tools import it)."""
  import configs  # pylint: disable=g-import-not-at-top  (the recipes; the CLI's default is configs/default.py)
  default = os.path.join(os.path.dirname(configs.__file__), "default.py")
  config_flags.DEFINE_config_file("config", default, "Training configuration (a configs/*.py recipe).",
                                  lock_config=True)
  flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and prepared data.", required=True)
  flags.DEFINE_string("coordinator_address", None, "Multi-host: HOST:PORT of process 0's coordinator "
                      "(every process passes the same); implies --config.distributed.")
  flags.DEFINE_integer("num_processes", None, "Multi-host: number of processes.")
  flags.DEFINE_integer("process_id", None, "Multi-host: this process's index, 0 .. num_processes-1.")


def initialize_distributed(coordinator_address: str | None = None, num_processes: int | None = None,
                           process_id: int | None = None) -> None:
  """`jax.distributed.initialize` (CPU processes join through gloo collectives); unset arguments are
  detected from the cluster (SLURM, TPU pods, ...) by JAX."""
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  try:
    jax.distributed.initialize(coordinator_address, num_processes, process_id)
  except (ValueError, TypeError) as e:
    raise UserError(f"multi-host setup: {_first_line(e)}; pass --coordinator_address=HOST:PORT "
                    "--num_processes=N --process_id=I on every process") from None


def prepare_data(config: ml_collections.ConfigDict, workdir: str) -> None:
  """The CLI's data step (`data_prep.prepare`: generate, build records) before the library trains;
  process 0 prepares and the others wait, so processes sharing a workdir do not race on it."""
  from data_prep import prepare  # pylint: disable=g-import-not-at-top  (data generation: CLIs only)
  check_config(config, workdir)
  if jax.process_index() == 0:
    prepare.prepare(config, workdir)
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices("mottr: training data prepared")


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise UserError(f"unexpected arguments {argv[1:]}; use --config.x=v for overrides")
  try:
    config = flags.FLAGS.config
    config.get("distributed")  # a failed load surfaces on first use
  except OSError as e:  # a missing or broken --config file (config_flags loads it lazily)
    detail = [line.strip() for line in str(e).splitlines() if line.strip()][-1]
    raise UserError(f"--config: cannot load the config file ({detail})") from None
  logging.set_verbosity(logging.WARNING)  # Orbax and TFDS are chatty at INFO
  compile_cache.enable()
  multi = (flags.FLAGS.coordinator_address, flags.FLAGS.num_processes, flags.FLAGS.process_id)
  if config.distributed or any(v is not None for v in multi):
    initialize_distributed(*multi)
  prepare_data(config, flags.FLAGS.workdir)
  try:
    train_and_evaluate(config, flags.FLAGS.workdir)
  except TrainingInterrupted as e:
    sys.exit(e.exit_code)


def run_main() -> None:
  """The program (`python -m mottr.train`, console script `mottr-train`)."""
  _define_flags()
  if not getattr(sys.modules["__main__"], "__doc__", None):
    sys.modules["__main__"].__doc__ = __doc__  # --help of the console script
  app.run(run_cli(main), flags_parser=parse_flags)


if __name__ == "__main__":
  run_main()
