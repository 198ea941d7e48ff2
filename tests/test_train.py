"""Training: a real step on tiny generated data, overfitting, resume equality, multi-device equality."""
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from configs import tiny
from mottr import data, train
from mottr.model.motr import build_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def synth_workdir(tmp_path_factory):
  """A workdir whose generated tiny root and prepared TFDS data later runs share (copied by path)."""
  workdir = tmp_path_factory.mktemp("prepared")
  config = tiny.get_config()
  data.TrainData(config, str(workdir))
  return str(workdir / "data" / "synth")


def _config(synth_root, **curriculum):
  config = tiny.get_config()
  config.data.synth_root = synth_root
  config.curriculum = ((4, 2),)
  config.checkpoint_every = 2
  return config


def _leaves(state):
  return [np.asarray(x) for x in jax.tree.leaves(state.params)]


def test_overfits_one_clip(synth_workdir, tmp_path):
  config = _config(synth_workdir)
  config.data.augment = False
  config.optim.update(lr=3e-3, warmup_steps=5, min_lr_ratio=1.0)
  config.curriculum = ((150, 2),)
  batch = data.TrainData(config, str(tmp_path)).batch(0)
  assert batch["mask"].any(), "the tiny clip should hold objects"
  model = build_model(config)
  state = train.create_state(config, model)
  step = train.make_train_step(config, model, jax.sharding.Mesh(np.array(jax.devices()[:1]), ("data",)))
  losses = []
  for i in range(150):
    state, metrics = step(state, batch, train.step_rng(config, 0))
    losses.append(float(metrics["loss"]))
  assert np.mean(losses[-10:]) < np.mean(losses[:5]) / 3, (losses[:5], losses[-10:])


def test_resume_equals_uninterrupted(synth_workdir, tmp_path):
  config = _config(synth_workdir)
  full = train.train_and_evaluate(config, str(tmp_path / "full"))
  train.train_and_evaluate(config, str(tmp_path / "resumed"), stop_at=2)
  resumed = train.train_and_evaluate(config, str(tmp_path / "resumed"))
  assert int(full.step) == int(resumed.step) == 4
  for a, b in zip(_leaves(full), _leaves(resumed)):
    np.testing.assert_array_equal(a, b)
  assert os.path.isdir(tmp_path / "full" / "checkpoints" / "4")


def test_warm_start_copies_matching_parameters(synth_workdir, tmp_path):
  config = _config(synth_workdir)
  trained = train.train_and_evaluate(config, str(tmp_path / "stage1"))
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


def test_two_devices_equal_one(synth_workdir):
  script = textwrap.dedent(f"""
      import jax, numpy as np
      from jax.sharding import Mesh
      from configs import tiny
      from mottr import data, train
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
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2", PYTHONPATH=ROOT)
  proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, cwd=ROOT)
  assert proc.returncode == 0 and "OK" in proc.stdout, proc.stderr[-3000:]


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
  loader = data.TrainData(config, str(tmp_path))
  want = [loader.batch(s) for s in range(1, 6)]
  for workers in (0, 2):
    got = list(loader.batches(1, 6, workers))
    assert len(got) == len(want)
    for g, w in zip(got, want):
      assert g.keys() == w.keys()
      for k in w:
        np.testing.assert_array_equal(g[k], w[k])
