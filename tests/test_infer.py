"""End-to-end inference on a tiny video with a scripted predictor, and the CLI's bad inputs."""
import errno
import fcntl
import json
import os
import signal
import subprocess
import sys
import time

from absl import flags
import cv2
import numpy as np
import pytest

from mottr import cli
from mottr import config_overrides
from mottr import infer
from mottr import outputs
from mottr import runner
from mottr import schema
from mottr import sources
from mottr import tracker as tracker_lib
from mottr.schema import UserError

infer.define_flags()  # as `python -m mottr.infer` does: the tests parse its flags in-process
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUM_FRAMES = 40
SIZE = schema.WIDTH  # 640x640 so that tracks.json passes the challenge validator


def fall(start, x, label, v0=0.02, accel=0.0016, size=0.1):
  """Normalised (cx, cy, w, h, score, label) per frame of an object entering at the top."""
  out = {}
  for f in range(start, NUM_FRAMES):
    i = f - start
    cy = -size / 2 + v0 * i + accel * i * i / 2
    if cy - size / 2 >= 1:
      break
    if cy + size / 2 > 0:
      out[f] = (x, cy, size, size, 0.9, label)
  return out


# Object 1 (bolt) and 2 (nut) fall through; 3 (bolt) is still in view at the end.
SCRIPT = [fall(0, 0.3, 0), fall(8, 0.6, 1), fall(28, 0.5, 0)]


class FakePredictor:
  """Replays SCRIPT: detect queries see every visible object; track slots follow carried ones."""

  def __init__(self, num_slots=3, num_detect=4, input_size=32, interrupt_at=None, fail_at=None):
    self.num_slots, self.num_detect, self.input_size = num_slots, num_detect, input_size
    self.interrupt_at, self.fail_at = interrupt_at, fail_at
    self.reset()

  def reset(self, frame_gap=1.0):
    self.frame_gap = frame_gap
    self.t = 0
    self.slot_obj = [None] * self.num_slots
    self.query_obj = []

  def encode(self, frame_rgb):
    assert frame_rgb.shape == (self.input_size, self.input_size, 3) and frame_rgb.dtype == np.uint8
    return frame_rgb

  def step(self, frame_rgb):
    assert frame_rgb.shape == (self.input_size, self.input_size, 3) and frame_rgb.dtype == np.uint8
    if self.t == self.interrupt_at:
      raise KeyboardInterrupt
    if self.t == self.fail_at:
      raise RuntimeError("scripted failure")
    visible = {k: obj[self.t] for k, obj in enumerate(SCRIPT) if self.t in obj}
    n = self.num_slots + self.num_detect
    scores, labels = np.zeros(n, np.float32), np.zeros(n, np.int32)
    boxes = np.tile(np.float32([0.5, 0.5, 0.1, 0.1]), (n, 1))
    self.query_obj = list(self.slot_obj) + [None] * self.num_detect
    for j, k in enumerate(sorted(visible)):
      self.query_obj[self.num_slots + j] = k
    for q, k in enumerate(self.query_obj):
      if k is not None and k in visible:
        boxes[q], scores[q], labels[q] = visible[k][:4], visible[k][4], visible[k][5]
    self.t += 1
    return _Out(scores, labels, boxes, self.num_slots,
                np.array([k is not None for k in self.slot_obj]))

  def refine(self, frame_bgr, out):
    del frame_bgr  # no crop refiner
    return out

  def carry(self, next_slots):
    self.slot_obj = [self.query_obj[i] if i >= 0 else None for i in next_slots]


class _Out:
  def __init__(self, scores, labels, boxes, num_slots, slot_valid):
    self.scores, self.labels, self.boxes = scores, labels, boxes
    self.num_slots, self.slot_valid = num_slots, slot_valid


def write_video(path, num_frames=NUM_FRAMES, size=SIZE):
  writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), 30, (size, size))
  for i in range(num_frames):
    writer.write(np.full((size, size, 3), 40 + i, np.uint8))
  writer.release()
  return path


@pytest.fixture(scope="module")
def video(tmp_path_factory):
  return write_video(str(tmp_path_factory.mktemp("video") / "tiny.mp4"))


def test_end_to_end_writes_five_consistent_files(video, tmp_path):
  out = str(tmp_path / "out")
  result = infer.run(sources.open_source(video), FakePredictor, out, tracker_lib.TrackerSettings(),
                     progress=False)
  assert sorted(os.listdir(out)) == ["annotated.mp4", "counts.json", "counts.png", "tracks.json",
                                     "tracks.txt"]
  assert result.counts.counts == {"bolt": 1, "nut": 1}
  assert [t.track_id for t in result.tracks] == [1, 2, 3]

  with open(os.path.join(out, "counts.json")) as f:
    counts = json.load(f)
  assert counts["frames"] == NUM_FRAMES and counts["fps"] == 30 and counts["video"] == "tiny"
  assert counts["interrupted"] is False
  assert counts["counts"] == {"bolt": 1, "nut": 1}
  assert [(e["track_id"], e["category"]) for e in counts["events"]] == [(1, "bolt"), (2, "nut")]
  for e in counts["events"]:
    last = max(SCRIPT[e["track_id"] - 1])
    assert e["frame"] == last + 1 and e["time_s"] == pytest.approx(last / 30, abs=1e-3)

  with open(os.path.join(out, "tracks.json")) as f:
    coco = json.load(f)
  schema.validate_annotations(coco, "tracks.json", num_frames=NUM_FRAMES)
  anns = coco["annotations"]
  assert len(anns) == sum(len(o) for o in SCRIPT)  # every visible box tracked, no duplicates
  assert {a["track_id"]: a["category_id"] for a in anns} == {1: 1, 2: 2, 3: 1}
  assert all(0 < a["score"] <= 1 for a in anns)
  with open(os.path.join(out, "tracks.txt")) as f:
    rows = [line.strip().split(",") for line in f]
  assert len(rows) == len(anns)
  for row, a in zip(rows, anns):
    assert int(row[0]) == a["image_id"] and int(row[1]) == a["track_id"]
    np.testing.assert_allclose([float(v) for v in row[2:6]], a["bbox"], atol=0.01)
    assert row[7:] == ["-1", "-1", "-1"]

  cap = cv2.VideoCapture(os.path.join(out, "annotated.mp4"))
  assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == NUM_FRAMES
  cap.release()
  with open(os.path.join(out, "counts.png"), "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_the_next_frame_is_encoded_while_the_host_tracks_this_one(video):
  """ModelTracking starts the upcoming frame's encoder as soon as this frame's outputs are read,
  before the tracker and the carry; every frame is encoded once and decoded from its own memory."""
  log = []

  class Logged(FakePredictor):
    def encode(self, frame_rgb):
      log.append(("encode", len(log)))
      return log[-1][1], super().encode(frame_rgb)

    def step(self, frame_rgb):
      encoded, frame = frame_rgb
      log.append(("step", encoded, float(frame.mean())))
      return super().step(frame)

    def carry(self, next_slots):
      log.append(("carry",))
      super().carry(next_slots)

  result = runner.track_source(sources.open_source(video), Logged(), tracker_lib.TrackerSettings(),
                               progress=False)
  assert result.counts.counts == {"bolt": 1, "nut": 1}
  kinds = [e[0] for e in log]
  assert kinds == ["encode"] + ["step", "encode", "carry"] * (NUM_FRAMES - 1) + ["step", "carry"]
  encoded = [i for i, e in enumerate(log) if e[0] == "encode"]
  steps = [e for e in log if e[0] == "step"]
  assert [e[1] for e in steps] == encoded
  brightness = [bgr.mean() for _, bgr in sources.open_source(video).frames]  # 40 + i, mp4v-coded
  np.testing.assert_allclose([e[2] for e in steps], brightness, atol=0.5)


def test_cli_prints_one_count_line(video, tmp_path, monkeypatch, capsys):
  monkeypatch.setattr(infer, "load_predictor_from_flags", FakePredictor)
  out = str(tmp_path / "cli")
  flags.FLAGS(["infer", f"--video={video}", f"--output_dir={out}", "--no_video"])
  try:
    infer.main(["infer"])
  finally:
    flags.FLAGS.unparse_flags()
  assert capsys.readouterr().out == "bolt=1 nut=1\n"
  assert "annotated.mp4" not in os.listdir(out) and "counts.json" in os.listdir(out)


def test_interrupt_keeps_the_frames_seen(video, tmp_path):
  out = str(tmp_path / "out")
  result = infer.run(sources.open_source(video), lambda: FakePredictor(interrupt_at=20), out,
                     tracker_lib.TrackerSettings(), write_video=False, progress=False)
  assert result.interrupted and result.frames == list(range(20))
  with open(os.path.join(out, "counts.json")) as f:
    counts = json.load(f)
  assert counts["frames"] == 20 and counts["interrupted"] is True
  with open(os.path.join(out, "tracks.json")) as f:
    coco = json.load(f)
  assert len(coco["images"]) == 20 and max(a["image_id"] for a in coco["annotations"]) <= 20


def test_failure_mid_run_leaves_no_output(video, tmp_path):
  out = tmp_path / "out"
  with pytest.raises(RuntimeError):
    infer.run(sources.open_source(video), lambda: FakePredictor(fail_at=5), str(out),
              tracker_lib.TrackerSettings(), progress=False)
  assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("existing", [False, True])
def test_disk_full_at_the_end_prints_the_counts_and_leaves_nothing(
    video, tmp_path, monkeypatch, capsys, existing):
  """Writing the outputs fails (ENOSPC) after the whole video was tracked: the counts line is
  printed anyway, then one error line, exit 1; no half-written file, staging folder or lock."""
  out = tmp_path / "out"
  if existing:
    out.mkdir()
    (out / "notes.txt").write_text("mine")
  monkeypatch.setattr(infer, "load_predictor_from_flags", FakePredictor)

  def full(path, coco):  # a torn tracks.txt, as a full disk leaves it
    with open(path, "w") as f:
      f.write("1,1,")
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)

  monkeypatch.setattr(outputs, "write_mot_txt", full)
  with pytest.raises(SystemExit) as e:
    _main([f"--video={video}", f"--output_dir={out}"])
  assert e.value.code == 1
  captured = capsys.readouterr()
  assert captured.out == "bolt=1 nut=1\n"
  assert captured.err.strip().splitlines()[-1] == (
      f"error: could not write outputs to {out} (No space left on device): the counts are above")
  assert "Traceback" not in captured.err
  if existing:
    assert os.listdir(out) == ["notes.txt"] and (out / "notes.txt").read_text() == "mine"
  else:
    assert os.listdir(tmp_path) == []


def test_frames_directory_source(tmp_path):
  for image_id in (11, 21, 31, 51):
    cv2.imwrite(str(tmp_path / f"{image_id:04d}.jpg"), np.zeros((48, 64, 3), np.uint8))
  source = sources.open_source(str(tmp_path))
  assert (source.frame_step, source.width, source.height, source.fps) == (10, 64, 48, 30)
  assert [i for i, _ in source.frames] == [10, 20, 30, 50]


def write_truncated_video(path, num_frames=NUM_FRAMES, size=64):
  """An MJPG AVI whose header announces num_frames, cut to about the first half of them."""
  writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (size, size))
  rng = np.random.default_rng(0)
  for _ in range(num_frames):
    writer.write(rng.integers(0, 255, (size, size, 3), np.uint8))
  writer.release()
  with open(path, "rb") as f:
    data = f.read()
  with open(path, "wb") as f:
    f.write(data[:len(data) // 2])
  return str(path)


def test_truncated_video_is_recorded_incomplete_with_a_warning(tmp_path, capsys, monkeypatch):
  video = write_truncated_video(tmp_path / "cut.avi")
  out = str(tmp_path / "out")
  monkeypatch.setattr(infer, "load_predictor_from_flags", FakePredictor)
  _main([f"--video={video}", f"--output_dir={out}", "--no_video"])
  err = capsys.readouterr().err
  with open(os.path.join(out, "counts.json")) as f:
    counts = json.load(f)
  assert counts["complete"] is False and counts["frames_expected"] == NUM_FRAMES
  assert 0 < counts["frames"] < NUM_FRAMES and not counts["interrupted"]
  assert [l for l in err.splitlines() if "warning" in l] == [
      f"warning: cut: the video ended after {counts['frames']} of the {NUM_FRAMES} frames its "
      "header announces (a truncated or damaged file); the counts cover the frames decoded; "
      'counts.json says "complete": false']
  with open(os.path.join(out, "tracks.json")) as f:
    assert json.load(f)["info"]["complete"] is False


def test_frames_directory_numbered_from_0000_keeps_frame_0(tmp_path):
  """0000.jpg cannot be an image_id (they start at 1): such a folder is 0-based (the challenge's
  file_name), and its first frame is processed, not dropped."""
  for index in (0, 10, 20):
    cv2.imwrite(str(tmp_path / f"{index:04d}.jpg"), np.full((48, 64, 3), index, np.uint8))
  assert sorted(sources.frame_files(str(tmp_path))) == [0, 10, 20]
  source = sources.open_source(str(tmp_path))
  assert source.total == 3 and source.frame_step == 10
  assert [i for i, _ in source.frames] == [0, 10, 20]
  cv2.imwrite(str(tmp_path / "0010.png"), np.zeros((48, 64, 3), np.uint8))
  with pytest.raises(UserError, match="same frame"):
    sources.frame_files(str(tmp_path))


@pytest.mark.parametrize("start", [0, 5, NUM_FRAMES - 1])
def test_a_source_started_at_a_frame_gives_the_same_frames_from_there(video, tmp_path, start):
  """`open_source(..., start=k)` skips the frames before k (a video by grabbing them in order, a
  folder by not reading them) and yields exactly what a whole read yields from frame k on."""
  whole = list(sources.open_source(video).frames)
  for i, bgr in whole:
    cv2.imwrite(str(tmp_path / f"{i + 1:04d}.png"), bgr)  # by image_id
  for spec in (video, str(tmp_path)):
    source = sources.open_source(spec, start=start)
    tail = list(source.frames)
    assert source.total == len(tail) and [i for i, _ in tail] == [i for i, _ in whole[start:]]
    for (_, got), (_, want) in zip(tail, whole[start:]):
      np.testing.assert_array_equal(got, want)
    with pytest.raises(UserError, match=f"cannot start at frame {NUM_FRAMES}"):
      sources.open_source(spec, start=NUM_FRAMES)


def test_sparse_sources_use_the_sparse_birth_threshold(video, tmp_path):
  for t in range(NUM_FRAMES):  # every 10th frame of the same timeline: image_id 1, 11, ...
    cv2.imwrite(str(tmp_path / f"{10 * t + 1:04d}.jpg"), np.zeros((32, 32, 3), np.uint8))
  sparse = sources.open_source(str(tmp_path))
  assert sparse.fps / sparse.frame_step < tracker_lib.SPARSE_FPS <= 30
  # The fake replays the script per processed frame, so on the every-10th-frame timeline its
  # objects barely move: the motion-plausibility rule is off here, this is about births only.
  strict_dense = tracker_lib.TrackerSettings(birth_threshold=0.95, sparse_birth_threshold=0.5,
                                       min_descent=0)
  strict_sparse = tracker_lib.TrackerSettings(birth_threshold=0.5, sparse_birth_threshold=0.95,
                                        min_descent=0)
  births = lambda source, settings: len(
      runner.track_source(source, FakePredictor(), settings, progress=False).tracks)
  assert births(sources.open_source(video), strict_dense) == 0  # scripted scores are 0.9
  assert births(sources.open_source(str(tmp_path)), strict_dense) == 3
  assert births(sources.open_source(video), strict_sparse) == 3
  assert births(sources.open_source(str(tmp_path)), strict_sparse) == 0


def test_config_overrides_are_parsed():
  rest, overrides = config_overrides.parse_overrides(
      ["prog", "--config.model.num_slots=8", "--config.name=abc", "--video=x"])
  assert rest == ["prog", "--video=x"] and overrides == {"model.num_slots": 8, "name": "abc"}


def _cli(args, cwd):
  env = dict(os.environ, PYTHONPATH=REPO)
  return subprocess.run([sys.executable, "-m", "mottr.infer", *args], cwd=cwd, env=env,
                        capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("case", ["missing", "not_a_video", "zero_frames", "unwritable"])
def test_bad_input_exits_with_one_line_and_no_output(case, tmp_path, video):
  out = tmp_path / "result"
  if case == "missing":
    args = ["--video", str(tmp_path / "nope.mp4")]
  elif case == "not_a_video":
    (tmp_path / "notes.mp4").write_text("not a video\n")
    args = ["--video", str(tmp_path / "notes.mp4")]
  elif case == "zero_frames":
    args = ["--video", write_video(str(tmp_path / "empty.mp4"), num_frames=0)]
  else:
    (tmp_path / "file").write_text("")
    out = tmp_path / "file" / "result"
    args = ["--video", video]
  before = sorted(os.listdir(tmp_path))
  proc = _cli([*args, "--output_dir", str(out)], cwd=str(tmp_path))
  assert proc.returncode != 0
  assert proc.stdout == ""
  assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr, proc.stderr
  assert not out.exists() and sorted(os.listdir(tmp_path)) == before


def _main(args):
  flags.FLAGS(["infer", *args])
  try:
    infer.main(["infer"])
  finally:
    flags.FLAGS.unparse_flags()


def test_default_output_dir_refuses_an_earlier_run_and_keeps_other_files(
    video, tmp_path, monkeypatch, capsys):
  """Two videos named tiny.mp4 share the default outputs/tiny: the second run must not silently
  replace the first one's results, nor ever touch the user's files."""
  monkeypatch.setattr(infer, "load_predictor_from_flags", FakePredictor)
  monkeypatch.chdir(tmp_path)
  out = tmp_path / "outputs" / "tiny"
  _main([f"--video={video}"])
  assert sorted(os.listdir(out)) == sorted(runner.OUTPUT_NAMES)
  (out / "notes.txt").write_text("mine")
  (out / "counts.json").write_text("earlier")
  monkeypatch.setattr(infer, "load_predictor_from_flags", lambda: pytest.fail("model loaded"))
  with pytest.raises(UserError, match=r"outputs/tiny: already holds annotated.mp4, counts.json, "
                                      r".*pass --overwrite .*or choose another --output_dir"):
    _main([f"--video={video}"])
  assert (out / "counts.json").read_text() == "earlier"
  monkeypatch.setattr(infer, "load_predictor_from_flags", FakePredictor)
  capsys.readouterr()
  _main([f"--video={video}", "--overwrite", "--no_video"])
  assert capsys.readouterr().out == "bolt=1 nut=1\n"
  assert sorted(os.listdir(out)) == ["counts.json", "counts.png", "notes.txt", "tracks.json",
                                     "tracks.txt"]  # the earlier run's annotated.mp4 is gone
  assert (out / "notes.txt").read_text() == "mine"
  assert json.loads((out / "counts.json").read_text())["counts"] == {"bolt": 1, "nut": 1}


def test_cli_refuses_an_output_dir_another_run_is_writing(video, tmp_path):
  out = tmp_path / "out"
  out.mkdir()
  with open(out / outputs.LOCK_NAME, "w") as held:  # as a running mottr.infer holds it
    fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
    proc = _cli(["--video", video, "--output_dir", str(out)], cwd=str(tmp_path))
  assert proc.returncode == 2 and proc.stdout == ""
  assert proc.stderr.startswith("error: ") and "another mottr run is writing into it" in proc.stderr
  assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
  assert os.listdir(out) == [outputs.LOCK_NAME]


# mottr.infer's CLI with a FakePredictor that takes 0.1 s a frame and says when frame 5 started.
_SLOW_CLI = """
import os, time
import test_infer
from mottr import infer

class Slow(test_infer.FakePredictor):
  def step(self, frame_rgb):
    if self.t == 5:
      open(os.environ["READY"], "w").close()
    time.sleep(0.1)
    return super().step(frame_rgb)

infer.load_predictor_from_flags = Slow
infer.run_main()
"""


def _signal_when_ready(script: str, video: str, tmp_path, signum: int) -> tuple[int, str, str, object]:
  """Runs `script` (mottr.infer's CLI with a fake model that touches $READY) on `video` into
  tmp_path/out, sends `signum` once $READY exists; returns (exit code, stdout, stderr, out dir)."""
  out, ready = tmp_path / "out", tmp_path / "ready"
  env = dict(os.environ, PYTHONPATH=os.pathsep.join([REPO, os.path.join(REPO, "tests")]),
             READY=str(ready))
  proc = subprocess.Popen([sys.executable, "-c", script, "--video", video, "--output_dir", str(out),
                           "--no_video"], cwd=str(tmp_path), env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
  try:
    deadline = time.monotonic() + 120
    while not ready.exists() and proc.poll() is None and time.monotonic() < deadline:
      time.sleep(0.02)
    assert ready.exists(), proc.communicate(timeout=10)
    proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=60)
  finally:
    if proc.poll() is None:
      proc.kill()
  return proc.returncode, stdout, stderr, out


def test_sigterm_writes_the_counts_so_far_and_exits_nonzero(video, tmp_path):
  returncode, stdout, stderr, out = _signal_when_ready(_SLOW_CLI, video, tmp_path, signal.SIGTERM)
  assert returncode == 128 + signal.SIGTERM, stderr
  assert "Traceback" not in stderr and "(interrupted)" in stderr
  assert stdout.startswith("bolt=")
  with open(out / "counts.json") as f:
    counts = json.load(f)
  assert counts["interrupted"] is True and 5 <= counts["frames"] < NUM_FRAMES
  assert sorted(os.listdir(out)) == ["counts.json", "counts.png", "tracks.json", "tracks.txt"]


# mottr.infer's CLI whose model "loads and compiles" for 1 s (it says when it started).
_SLOW_LOAD_CLI = """
import os, time
import test_infer
from mottr import infer

def load():
  open(os.environ["READY"], "w").close()
  time.sleep(1.0)
  return test_infer.FakePredictor()

infer.load_predictor_from_flags = load
infer.run_main()
"""


def test_ctrl_c_while_the_model_loads_takes_effect_after_warmup(video, tmp_path):
  """SIGINT while JAX loads and compiles the model is held until the warm-up steps returned
  (raised into JAX it crashed the interpreter at exit): exit 130, the frames seen written."""
  returncode, stdout, stderr, out = _signal_when_ready(_SLOW_LOAD_CLI, video, tmp_path, signal.SIGINT)
  assert returncode == 130, stderr
  assert "Traceback" not in stderr and "(interrupted)" in stderr, stderr
  assert stdout.startswith("bolt=")
  with open(out / "counts.json") as f:
    counts = json.load(f)
  assert counts["interrupted"] is True and counts["frames"] == runner.WARMUP_FRAMES - 1
