"""Training: a real step on tiny generated data, overfitting, resume equality, multi-device and multi-host
equality, interruption (exception, SIGTERM) and corrupt checkpoints."""
import gc
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time

import jax
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

from configs import tiny
from data_prep import prepare
from mottr import checkpoint, data, train
from mottr.model.motr import build_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def synth_workdir(tmp_path_factory):
  """A workdir whose generated tiny root and prepared TFDS data later runs share (copied by path)."""
  workdir = tmp_path_factory.mktemp("prepared")
  config = tiny.get_config()
  _loader(config, str(workdir))
  return str(workdir / "data" / "synth")


def _loader(config, workdir: str) -> data.TrainData:
  prepare.prepare(config, workdir)
  return data.TrainData(config, workdir)


def _train(config, workdir: str, **kwargs):
  """As `python -m mottr.train` does: prepare the data, then train (the library only opens it)."""
  prepare.prepare(config, workdir)
  return train.train_and_evaluate(config, workdir, **kwargs)


def _config(synth_root, **curriculum):
  config = tiny.get_config()
  config.data.synth_root = synth_root
  config.curriculum = ((4, 2),)
  config.checkpoint_every = 2
  return config


def _flags_without_device_count() -> str:
  return re.sub(r"--xla_force_host_platform_device_count=\S+", "", os.environ.get("XLA_FLAGS", "")).strip()


def _shared(make):
  """`make(config, *args)` memoised on the config's values and the other (hashable) arguments."""
  made = {}

  def shared(config, *args):
    key = (config.to_json(sort_keys=True), *args)
    if key not in made:
      made[key] = make(config, *args)
    return made[key]
  return shared


_SHARED = {name: _shared(getattr(train, name)) for name in ("build_model", "make_optimizer", "make_train_step")}


@pytest.fixture(autouse=True)
def _one_compiled_step_per_config(monkeypatch):
  """Training runs of one config in this module share one model, optimizer and jitted update step.
  The step's host callback (the matching) keeps it out of JAX's persistent cache, and a new model or
  optimizer changes the train state's static fields, so each run would compile it again."""
  for name, shared in _SHARED.items():
    monkeypatch.setattr(train, name, shared)


def _placed_step(config):
  """(update step, fresh state, batch sharding) on one device, placed as train_and_evaluate places
  them: the step compiles once, and runs of the same config share it."""
  mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("data",))
  model = train.build_model(config)
  state = jax.device_put(train.create_state(config, model), NamedSharding(mesh, P()))
  return train.make_train_step(config, model, mesh), state, NamedSharding(mesh, P("data"))


def _leaves(state):
  return [np.asarray(x) for x in jax.tree.leaves(state.params)]


def test_overfits_one_clip(synth_workdir, tmp_path):
  config = _config(synth_workdir)
  config.data.augment = False
  config.optim.update(lr=3e-3, warmup_steps=5, min_lr_ratio=1.0)
  config.curriculum = ((80, 2),)
  step, state, split = _placed_step(config)
  batch = _loader(config, str(tmp_path)).batch(0)
  assert batch["mask"].any(), "the tiny clip should hold objects"
  batch = jax.device_put(batch, split)
  losses = []
  for i in range(80):
    state, metrics = step(state, batch, train.step_rng(config, 0))
    losses.append(float(metrics["loss"]))
  assert np.mean(losses[-10:]) < np.mean(losses[:5]) / 5, (losses[:5], losses[-10:])  # 13 -> about 1


def test_resume_equals_uninterrupted(synth_workdir, tmp_path):
  """With a moving average of the weights: resuming keeps parameters and average bit-exact, and
  loading (by step too) and warm starts read the average, not the raw parameters."""
  config = _config(synth_workdir)
  config.optim.ema_decay = 0.9
  full = _train(config, str(tmp_path / "full"))
  half = _train(config, str(tmp_path / "resumed"), stop_at=2)
  resumed = _train(config, str(tmp_path / "resumed"))
  assert int(full.step) == int(resumed.step) == 4
  both = lambda state: jax.tree.leaves((state.params, state.ema_params))
  for a, b in zip(both(full), both(resumed)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  assert os.path.isdir(tmp_path / "full" / "checkpoints" / "4")
  # A workdir's earlier checkpoint loads by step (mottr.export --step); the default is the latest.
  for step, state in [(2, half), (None, full)]:
    _, params = checkpoint.load(str(tmp_path / "full"), step=step)
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(state.ema_params)):
      np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  with pytest.raises(train.UserError, match="no checkpoint of step 3; it holds steps 2, 4"):
    checkpoint.load(str(tmp_path / "full"), step=3)
  stage2 = _config(synth_workdir)
  stage2.optim.ema_decay = 0.9
  stage2.init_from = str(tmp_path / "full")
  started = train.warm_start(train.create_state(stage2, build_model(stage2)), stage2.init_from)
  for a, b, c in zip(jax.tree.leaves(started.params), jax.tree.leaves(started.ema_params),
                     jax.tree.leaves(full.ema_params)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(c))
    np.testing.assert_array_equal(np.asarray(b), np.asarray(c))
  assert float(train.ema_decay_at(stage2, 0)) == pytest.approx(0.9)  # warm started: full decay at once
  # A fresh and a restored state have one signature: the three runs compiled one update step.
  mesh = jax.sharding.Mesh(np.array(jax.devices()), ("data",))
  assert train.make_train_step(config, train.build_model(config), mesh)._cache_size() == 1


def test_warm_start_copies_matching_parameters(synth_workdir, tmp_path):
  config = _config(synth_workdir)
  trained = _train(config, str(tmp_path / "stage1"))
  stage2 = _config(synth_workdir)
  stage2.model.ffn_dim = 48  # FFN kernels change shape; everything else carries over
  fresh = train.create_state(stage2, build_model(stage2))
  started = train.warm_start(fresh, str(tmp_path / "stage1"))
  flat = lambda s: jax.tree_util.tree_leaves_with_path(s.params)
  copied = 0
  for (path, got), (_, was), (_, init) in zip(flat(started), flat(trained), flat(fresh)):
    if np.shape(was) == np.shape(got):
      np.testing.assert_array_equal(np.asarray(got), np.asarray(was), err_msg=jax.tree_util.keystr(path))
      copied += 1
    else:
      np.testing.assert_array_equal(np.asarray(got), np.asarray(init))
  assert 0 < copied < len(flat(started))
  assert int(started.step) == 0
  with pytest.raises(train.UserError, match="no checkpoint"):
    train.warm_start(fresh, str(tmp_path / "nothing"))
  with pytest.raises(train.UserError, match="no checkpoint of step 999"):
    train.warm_start(fresh, str(tmp_path / "stage1"), step=999)


def test_ema_averages_the_parameters(synth_workdir, tmp_path):
  config = _config(synth_workdir)
  config.optim.ema_decay = 0.9
  step, state, split = _placed_step(config)  # test_resume_equals_uninterrupted's step, compiled there
  batch = jax.device_put(_loader(config, str(tmp_path / "prep")).batch(0), split)
  ema = [np.asarray(x) for x in jax.tree.leaves(state.params)]
  for i in range(3):  # from scratch: weight min(0.9, (1 + i) / (10 + i)) on the old average
    state, _ = step(state, batch, train.step_rng(config, i))
    d = min(0.9, (1 + i) / (10 + i))
    ema = [d * e + (1 - d) * p for e, p in zip(ema, _leaves(state))]
  for got, want, raw in zip(jax.tree.leaves(state.ema_params), ema, _leaves(state)):
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-7)
  assert any(not np.allclose(e, p) for e, p in zip(ema, _leaves(state)))
  # Resuming, loading and warm starts with the average: test_resume_equals_uninterrupted.


def test_two_devices_equal_one(synth_workdir):
  script = textwrap.dedent(f"""
      import jax, numpy as np
      from jax.sharding import Mesh
      from configs import tiny
      from mottr import checkpoint, data, train
      from mottr.model.motr import build_model
      assert len(jax.devices()) == 2
      config = tiny.get_config()
      config.data.synth_root = {synth_workdir!r}
      config.curriculum = ((4, 2),)
      batch = data.TrainData(config, {os.path.dirname(os.path.dirname(synth_workdir))!r}).batch(0)
      model = build_model(config)
      results = []
      for devices in (jax.devices()[:1], jax.devices()):
        step = train.make_train_step(config, model, Mesh(np.array(devices), ("data",)))
        state, metrics = step(train.create_state(config, model), batch, train.step_rng(config, 0))
        results.append((jax.tree.leaves(state.params), float(metrics["loss"])))
      (p1, l1), (p2, l2) = results
      assert abs(l1 - l2) < 1e-5 * max(1, abs(l1)), (l1, l2)
      for a, b in zip(p1, p2):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5, rtol=1e-5)
      print("OK")
  """)
  env = dict(os.environ, XLA_FLAGS=f"{_flags_without_device_count()} --xla_force_host_platform_device_count=2",
             PYTHONPATH=ROOT)
  proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, cwd=ROOT)
  assert proc.returncode == 0 and "OK" in proc.stdout, proc.stderr[-3000:]


def test_two_processes_equal_one(synth_workdir, tmp_path):
  """Multi-host for real: two processes, one CPU device each, join through jax.distributed (gloo
  collectives) with the documented command, share one workdir, and train as one process does."""
  with socket.socket() as s:  # a free port for the coordinator
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
  cmd = [sys.executable, "-m", "mottr.train", "--config=configs/tiny.py", f"--workdir={tmp_path / 'multi'}",
         f"--config.data.synth_root={synth_workdir}", "--config.curriculum=((2, 1),)", "--config.checkpoint_every=2",
         f"--coordinator_address=127.0.0.1:{port}", "--num_processes=2"]
  env = dict(os.environ, XLA_FLAGS=_flags_without_device_count())  # one CPU device per process
  procs = [subprocess.Popen(cmd + [f"--process_id={i}"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True) for i in range(2)]
  try:
    outs = [p.communicate(timeout=240)[0] for p in procs]
  finally:
    for p in procs:
      p.kill()
  for p, out in zip(procs, outs):
    assert p.returncode == 0, out[-3000:]
  assert "step 2/2" in outs[0] and "step 2/2" not in outs[1]  # process 0 logs
  config = _config(synth_workdir)
  config.curriculum = ((2, 1),)
  single = _train(config, str(tmp_path / "single"))
  fresh = train.create_state(config, build_model(config))
  multi = train.restore_checkpoint(train.checkpoint_manager(str(tmp_path / "multi"), config), fresh)
  assert int(multi.step) == int(single.step) == 2
  for a, b in zip(_leaves(single), _leaves(multi)):
    np.testing.assert_allclose(b, a, atol=1e-5, rtol=1e-5)


def test_unknown_config_key_fails_cleanly(tmp_path):
  proc = subprocess.run([sys.executable, "-m", "mottr.train", "--config=configs/tiny.py", "--config.no_such_key=1",
                         f"--workdir={tmp_path}"], capture_output=True, text=True, cwd=ROOT)
  assert proc.returncode != 0
  assert "no_such_key" in proc.stderr and "Traceback" not in proc.stderr
  assert not os.listdir(tmp_path)


def test_worker_batches_equal_in_process_batches(synth_workdir, tmp_path):
  """grain worker processes make the same batches, in step order across a stage change, as `batch(step)`."""
  config = _config(synth_workdir)
  config.curriculum = ((3, 1), (3, 2))
  loader = _loader(config, str(tmp_path))
  want = [loader.batch(s) for s in range(1, 6)]
  for workers in (0, 2):
    got = list(loader.batches(1, 6, workers))
    assert len(got) == len(want)
    for g, w in zip(got, want):
      assert g.keys() == w.keys()
      for k in w:
        np.testing.assert_array_equal(g[k], w[k])


# Interruption and corruption (issue 14 items 3 and 4).

def _checkpoints(workdir) -> list[str]:
  return sorted(os.listdir(os.path.join(workdir, "checkpoints")))


def test_exception_mid_run_keeps_the_checkpoint_being_written(synth_workdir, tmp_path, monkeypatch):
  """An exception right after a save leaves that checkpoint complete (the manager is waited for)."""
  config = _config(synth_workdir)  # 4 steps, a checkpoint every 2
  step_rng = train.step_rng

  def failing(config, step):
    if step == 2:  # the step after the save of checkpoint 2, while Orbax writes it in the background
      raise RuntimeError("boom")
    return step_rng(config, step)

  monkeypatch.setattr(train, "step_rng", failing)
  with pytest.raises(RuntimeError, match="boom"):
    _train(config, str(tmp_path))
  assert _checkpoints(tmp_path) == ["2"]  # no N.orbax-checkpoint-tmp folder
  assert train.checkpoint_manager(str(tmp_path), config).latest_step() == 2


def test_ctrl_c_finishes_the_step_and_saves(synth_workdir, tmp_path, monkeypatch, capsys):
  config = _config(synth_workdir)  # 4 steps, a checkpoint every 2
  step_rng = train.step_rng

  def interrupting(config, step):
    if step == 2:  # Ctrl-C while step 3 runs
      os.kill(os.getpid(), signal.SIGINT)
    return step_rng(config, step)

  monkeypatch.setattr(train, "step_rng", interrupting)
  handler = signal.getsignal(signal.SIGINT)
  with pytest.raises(train.TrainingInterrupted) as e:
    _train(config, str(tmp_path))
  assert (e.value.step, e.value.exit_code) == (3, 130)
  assert _checkpoints(tmp_path) == ["2", "3"]
  lines = [l for l in capsys.readouterr().err.splitlines() if "SIGINT" in l]
  assert len(lines) == 1 and "stopped at step 3 of 4" in lines[0], lines
  assert signal.getsignal(signal.SIGINT) is handler


def test_sigterm_saves_a_checkpoint_and_exits_143(synth_workdir, tmp_path):
  cmd = [sys.executable, "-m", "mottr.train", "--config=configs/tiny.py", f"--workdir={tmp_path}",
         f"--config.data.synth_root={synth_workdir}", "--config.curriculum=((100000, 1),)",
         "--config.log_every=1", "--config.checkpoint_every=100000"]
  proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  try:
    for line in proc.stdout:  # signalled once training runs
      if line.startswith("step 2/"):
        break
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
  finally:
    proc.kill()
  assert proc.returncode == 143, err[-3000:]
  lines = [l for l in err.splitlines() if "SIGTERM" in l]
  assert len(lines) == 1 and "Traceback" not in err, err[-3000:]
  step = int(re.search(r"stopped at step (\d+)", lines[0]).group(1))
  assert step >= 2 and f"checkpoints/{step} saved" in lines[0]
  assert _checkpoints(tmp_path) == [str(step)]
  assert train.checkpoint_manager(str(tmp_path), tiny.get_config()).latest_step() == step


def test_corrupt_newest_checkpoint_falls_back_with_one_warning(synth_workdir, tmp_path, capfd, caplog):
  config = _config(synth_workdir)  # checkpoints 2 and 4
  full = _train(config, str(tmp_path))
  for folder, _, files in os.walk(tmp_path / "checkpoints" / "4"):
    for name in files:  # a torn write: every file of the newest checkpoint cut in half
      path = os.path.join(folder, name)
      os.truncate(path, os.path.getsize(path) // 2)
  capfd.readouterr()
  resumed = _train(config, str(tmp_path))
  out, err = capfd.readouterr()
  warnings = [l for l in err.splitlines() if "checkpoint" in l]
  assert len(warnings) == 1 and "checkpoint 4" in warnings[0] and "resuming from checkpoint 2" in warnings[0], err
  assert "Traceback" not in err and "ERROR" not in err, err
  assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]  # Orbax's own log lines
  assert "resumed from step 2" in out
  assert os.path.isdir(tmp_path / "corrupt_checkpoints" / "4")
  assert _checkpoints(tmp_path) == ["2", "4"]  # 4 written anew from 2, as an uninterrupted run would
  for a, b in zip(_leaves(full), _leaves(resumed)):
    np.testing.assert_array_equal(a, b)

  # Bit rot in the new checkpoint 4's array data: TensorStore's read fails (DATA_LOSS), the same
  # one-line fallback; the reads still in flight may not print `Event loop is closed` tracebacks.
  for folder, _, files in os.walk(tmp_path / "checkpoints" / "4"):
    for name in files:
      if os.path.basename(folder) == "d":
        path = os.path.join(folder, name)
        with open(path, "r+b") as f:
          f.seek(os.path.getsize(path) // 3)
          f.write(b"\xff" * 64)
  seen = []
  unraisablehook = sys.unraisablehook
  sys.unraisablehook = seen.append
  try:
    mngr = train.checkpoint_manager(str(tmp_path), config)
    caplog.clear()
    state = train.restore_checkpoint(mngr, resumed)
    mngr.close()
    time.sleep(0.5)  # TensorStore's late completions
    gc.collect()  # Orbax's orphaned read tasks are logged by asyncio when collected
  finally:
    sys.unraisablehook = unraisablehook
  err = capfd.readouterr().err
  assert int(state.step) == 2 and len(err.strip().splitlines()) == 1, err
  assert "checkpoint 4" in err and "DATA_LOSS" in err and "resuming from checkpoint 2" in err
  assert not seen, [repr(u.exc_value) for u in seen]
  assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def test_closed_event_loop_callbacks_are_silenced(monkeypatch):
  """What TensorStore does after a failed restore closed Orbax's loop: call_soon_threadsafe on the
  closed loop from a callback whose error goes to sys.unraisablehook. Only that error is dropped."""
  import asyncio  # pylint: disable=g-import-not-at-top
  seen = []
  monkeypatch.setattr(sys, "unraisablehook", seen.append)
  train._silence_failed_restore_leftovers()  # pylint: disable=protected-access
  train._silence_failed_restore_leftovers()  # pylint: disable=protected-access  # installed once
  loop = asyncio.new_event_loop()
  loop.close()

  class Callback:
    def __init__(self, action):
      self.action = action

    def __del__(self):
      self.action()

  Callback(lambda: loop.call_soon_threadsafe(print))  # dropped at once: RuntimeError, unraisable
  assert not seen
  Callback(lambda: 1 / 0)
  assert [type(u.exc_value) for u in seen] == [ZeroDivisionError]

  def logged(message, error):  # what asyncio's default exception handler logs
    return logging.LogRecord("asyncio", logging.ERROR, __file__, 1, message, None,
                             (type(error), error, None))

  orphan = train._OrbaxOrphanFilter()  # pylint: disable=protected-access
  assert not orphan.filter(logged("Future exception was never retrieved\nfuture: <Future>",
                                  ValueError('DATA_LOSS: Error opening "zarr" driver')))
  assert not orphan.filter(logged("Task exception was never retrieved\nfuture: <Task coro=<"
                                  "ArrayHandler.deserialize() at .../orbax/checkpoint/x.py>",
                                  RuntimeError("Event loop is closed")))
  assert orphan.filter(logged("Task exception was never retrieved\nfuture: <Task coro=<mine()>",
                              ValueError("mine")))


def test_missing_val_split_fails_before_training(synth_workdir, tmp_path):
  root = tmp_path / "root"
  os.makedirs(root / "annotations")
  os.symlink(os.path.join(synth_workdir, "annotations", "instances_train.json"),
             root / "annotations" / "instances_train.json")
  config = _config(str(root))
  config.eval_every = 2
  with pytest.raises(train.UserError, match="instances_val.json: missing.*eval_every") as e:
    train.train_and_evaluate(config, str(tmp_path / "work"))
  assert "\n" not in str(e.value)
  assert not os.path.exists(tmp_path / "work" / "checkpoints")
