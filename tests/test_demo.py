"""The demo end to end on a short clip with a tiny trained model, and its refusals."""
import json
import os
import subprocess
import sys

from absl import flags
import cv2
import pytest

from configs import default, tiny
from data_prep import prepare
from mottr import schema
from mottr import checkpoint as checkpoint_lib
from mottr import counting, demo, train
from mottr.schema import UserError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUM_FRAMES = 60


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
  """A training workdir of the tiny config after two steps."""
  workdir = str(tmp_path_factory.mktemp("tiny"))
  config = tiny.get_config()
  config.curriculum = ((2, 1),)
  prepare.prepare(config, workdir)
  train.train_and_evaluate(config, workdir)
  return workdir


def _cli(*args, cwd):
  return subprocess.run([sys.executable, "-m", "mottr.demo", *args], cwd=cwd,
                        env=dict(os.environ, PYTHONPATH=REPO), capture_output=True, text=True,
                        timeout=300)


def test_demo_prints_counts_and_writes_all_outputs(checkpoint, tmp_path):
  out = tmp_path / "demo"
  proc = _cli("--out_dir", str(out), "--num_frames", str(NUM_FRAMES), "--checkpoint", checkpoint,
              cwd=str(tmp_path))
  assert proc.returncode == 0, proc.stderr
  lines = proc.stdout.splitlines()

  assert sorted(os.listdir(out)) == ["annotations", "eval", "images", "infer"]
  assert sorted(os.listdir(out / "infer")) == ["annotated.mp4", "counts.json", "counts.png",
                                               "tracks.json", "tracks.txt"]
  assert sorted(os.listdir(out / "eval")) == ["counts.png", "metrics.json", "report.md"]
  gt = schema.load_annotations(str(out), demo.SPLIT)
  assert len(gt["images"]) == NUM_FRAMES
  true = counting.count_coco(gt).counts
  assert sum(true.values()) > 0, "the demo clip should hold objects that fall through"
  with open(out / "infer" / "counts.json") as f:
    predicted = json.load(f)["counts"]
  for name in schema.CATEGORY_NAMES.values():
    assert f"{name}: predicted {predicted[name]}, true {true[name]}" in lines
  with open(out / "eval" / "metrics.json") as f:
    metrics = json.load(f)
  assert metrics["frames_evaluated"] == NUM_FRAMES and metrics["counts"]["true"] == true
  scores = metrics["tracking"]["all"]
  assert (f"HOTA {scores['HOTA']:.3f}  IDF1 {scores['IDF1']:.3f}  MOTA {scores['MOTA']:.3f}  "
          "(bolts and nuts)") in lines
  assert f"annotated video: {out / 'infer' / 'annotated.mp4'}" in lines
  assert f"report: {out / 'eval' / 'report.md'}" in lines
  cap = cv2.VideoCapture(str(out / "infer" / "annotated.mp4"))
  assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == NUM_FRAMES
  cap.release()


def test_missing_shipped_model_is_one_clear_error(tmp_path, monkeypatch):
  monkeypatch.setattr(checkpoint_lib, "SHIPPED_CHECKPOINT", str(tmp_path / "shipped"))
  with pytest.raises(UserError, match="shipped model is missing.*--checkpoint"):
    demo.check_model(None)
  demo.check_model(str(tmp_path / "elsewhere"))  # a given checkpoint is loaded (and checked) later
  (tmp_path / "shipped").mkdir()
  (tmp_path / "shipped" / "config.json").write_text("{}")
  demo.check_model(None)


def test_cli_errors_are_one_line_and_leave_nothing(tmp_path):
  (tmp_path / "mine.txt").write_text("keep me\n")
  cases = [("--checkpoint", str(tmp_path / "nope"), "--out_dir", str(tmp_path / "demo")),
           ("--checkpoint", str(tmp_path), "--out_dir", str(tmp_path))]  # not a checkpoint
  if not os.path.isfile(os.path.join(checkpoint_lib.SHIPPED_CHECKPOINT, "config.json")):
    cases.append(("--out_dir", str(tmp_path / "demo")))
  for args in cases:
    proc = _cli(*args, cwd=str(tmp_path))
    assert proc.returncode == 2 and proc.stdout == "", proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert sorted(os.listdir(tmp_path)) == ["mine.txt"]


def test_default_seed_is_not_the_training_seed():
  demo.define_flags()
  assert flags.FLAGS["seed"].default not in (default.get_config().data.synth_seed,
                                    tiny.get_config().data.synth_seed)


def test_cli_refuses_an_earlier_demo_without_overwrite(tmp_path):
  out = tmp_path / "demo"
  (out / "infer").mkdir(parents=True)
  (out / "infer" / "counts.json").write_text("earlier")
  (out / "mine.txt").write_text("keep me")
  proc = _cli("--checkpoint", str(tmp_path / "nope"), "--out_dir", str(out), cwd=str(tmp_path))
  assert proc.returncode == 2 and proc.stdout == "", proc.stderr
  assert "already holds infer " in proc.stderr and "--overwrite" in proc.stderr
  assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
  assert sorted(os.listdir(out)) == ["infer", "mine.txt"]
  assert (out / "infer" / "counts.json").read_text() == "earlier"
