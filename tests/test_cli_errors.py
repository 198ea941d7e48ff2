"""Bad input to every CLI: exit status 2, one line on stderr, no traceback, no files left behind.

Each case builds its inputs in a fresh folder, runs the CLI there in a subprocess, and checks that
the folder holds exactly what it held before. No case compiles a model.
"""
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from mottr import schema

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = sys.executable


def _video(path, frames=4, size=64):
  writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (size, size))
  for i in range(frames):
    writer.write(np.full((size, size, 3), 40 + 10 * i, np.uint8))
  writer.release()
  return str(path)


def _coco(frames=3, **ann_changes):
  """A valid challenge COCO dict: one bolt (track 1) in every frame; `ann_changes` on the first."""
  anns = [{"id": i, "image_id": i + 1, "category_id": 1, "bbox": [100, 100 + 50 * i, 40, 60],
           "track_id": 1, "score": 0.9} for i in range(frames)]
  anns[0].update(ann_changes)
  return {"images": [{"id": i + 1, "file_name": schema.file_name(i), "width": 640,
                      "height": 640} for i in range(frames)],
          "annotations": anns, "categories": [dict(c) for c in schema.CATEGORIES]}


def _root(tmp, coco_text=None, video=True):
  """A challenge-layout root `root/` with a val split; annotations replaced by `coco_text`."""
  root = os.path.join(tmp, "root")
  os.makedirs(os.path.join(root, "annotations"))
  with open(schema.annotation_path(root, "val"), "w") as f:
    f.write(coco_text if coco_text is not None else json.dumps(_coco()))
  if video:
    schema.write_video(schema.video_path(root, "val"),
                          [np.full((640, 640, 3), 50, np.uint8)] * 3)
  return root


def _predictions(tmp, **ann_changes):
  info = ann_changes.pop("info", None)
  coco = _coco(**ann_changes)
  if info is not None:
    coco["info"] = info
  path = os.path.join(tmp, "pred.json")
  with open(path, "w") as f:
    json.dump(coco, f)
  return ["-m", "mottr.evaluate", f"--root={_root(tmp)}", "--split=val",
          f"--predictions={path}", "--output_dir=out"]


def _checkpoint(tmp, text):
  os.makedirs(os.path.join(tmp, "ckpt"))
  with open(os.path.join(tmp, "ckpt", "config.json"), "w") as f:
    f.write(text)
  return os.path.join(tmp, "ckpt")


def _read_only_dir(tmp):
  path = os.path.join(tmp, "ro")
  os.makedirs(path)
  os.chmod(path, 0o555)
  return path


CASES = {
    # mottr.infer
    "infer_fps_inf": lambda t: ["-m", "mottr.infer", f"--video={_video(t + '/v.mp4')}",
                                "--fps=inf"],
    "infer_fps_nan": lambda t: ["-m", "mottr.infer", f"--video={_video(t + '/v.mp4')}",
                                "--fps=nan"],
    "infer_output_dir_is_a_file": lambda t: [
        "-m", "mottr.infer", f"--video={_video(t + '/v.mp4')}",
        f"--output_dir={open(t + '/f', 'w').close() or t + '/f'}"],
    "infer_camera_absent": lambda t: ["-m", "mottr.infer", "--video=57"],
    "infer_stream_unreachable": lambda t: ["-m", "mottr.infer",
                                           "--video=rtsp://127.0.0.1:9/none"],
    "infer_unknown_override": lambda t: ["-m", "mottr.infer", f"--video={_video(t + '/v.mp4')}",
                                         "--config.model.snap_track=False"],
    "infer_override_wrong_type": lambda t: ["-m", "mottr.infer", f"--video={_video(t + '/v.mp4')}",
                                            "--config.model.d_model=abc"],
    "infer_override_group": lambda t: ["-m", "mottr.infer", f"--video={_video(t + '/v.mp4')}",
                                       "--config.model=3"],
    "infer_truncated_config_json": lambda t: [
        "-m", "mottr.infer", f"--video={_video(t + '/v.mp4')}", "--no_video",
        "--checkpoint=" + _checkpoint(t, '{"model": {"d_mod')],
    "infer_tracker_override_typo": lambda t: [
        "-m", "mottr.infer", f"--video={_video(t + '/v.mp4')}", "--no_video",
        "--config.tracker.birth_treshold=0.8"],
    "infer_config_json_not_a_dict": lambda t: [
        "-m", "mottr.infer", f"--video={_video(t + '/v.mp4')}", "--no_video",
        "--checkpoint=" + _checkpoint(t, "[1, 2]")],
    # mottr.evaluate and mottr.demo take the same overrides
    "evaluate_unknown_override": lambda t: [
        "-m", "mottr.evaluate", f"--root={_root(t, video=False)}", "--split=val",
        "--config.model.snap_trakcs=True"],
    "demo_override_wrong_type": lambda t: ["-m", "mottr.demo", "--config.model.num_slots=1.5"],
    # mottr.export --config.x=v, scripts/bench/bench_train.py --config.x=v
    "export_override_typo": lambda t: [
        "-m", "mottr.export", "--workdir=" + os.path.join(REPO, "mottr", "assets", "shipped"),
        f"--out={t}/exp", "--config.model.snap_trakcs=True"],
    "export_override_wrong_type": lambda t: [
        "-m", "mottr.export", "--workdir=" + os.path.join(REPO, "mottr", "assets", "shipped"),
        f"--out={t}/exp", "--config.model.snap_tracks=3"],
    "export_tracker_override_wrong_type": lambda t: [
        "-m", "mottr.export", "--workdir=" + os.path.join(REPO, "mottr", "assets", "shipped"),
        f"--out={t}/exp", "--config.tracker.birth_threshold=high"],
    "export_without_out": lambda t: [
        "-m", "mottr.export", "--workdir=" + os.path.join(REPO, "mottr", "assets", "shipped")],
    "export_step_of_an_exported_model": lambda t: [
        "-m", "mottr.export", "--workdir=" + os.path.join(REPO, "mottr", "assets", "shipped"),
        f"--out={t}/exp", "--step=1000"],
    "export_empty_workdir": lambda t: [
        "-m", "mottr.export", f"--workdir={os.makedirs(t + '/w') or t + '/w'}",
        f"--out={t}/exp"],
    "bench_train_typo": lambda t: ["scripts/bench/bench_train.py", "--config=configs/tiny.py",
                                   "--config.batch_siz=2"],
    # mottr.train
    "train_missing_config_file": lambda t: ["-m", "mottr.train", f"--config={t}/nope.py",
                                            f"--workdir={t}/w"],
    "train_batch_size_0": lambda t: ["-m", "mottr.train", "--config=configs/tiny.py",
                                     "--config.batch_size=0", f"--workdir={t}/w"],
    "train_override_typo": lambda t: ["-m", "mottr.train", "--config=configs/tiny.py",
                                      "--config.batch_siz=2", f"--workdir={t}/w"],
    "train_unknown_matcher": lambda t: ["-m", "mottr.train", "--config=configs/tiny.py",
                                        "--config.loss.matcher=greedy", f"--workdir={t}/w"],
    "train_read_only_workdir": lambda t: ["-m", "mottr.train", "--config=configs/tiny.py",
                                          f"--workdir={_read_only_dir(t)}/w"],
    "train_workdir_is_a_file": lambda t: ["-m", "mottr.train", "--config=configs/tiny.py",
                                          f"--workdir={open(t + '/f', 'w').close() or t + '/f'}"],
    # mottr.train_refiner, mottr.export --refiner
    "train_refiner_missing_config_file": lambda t: ["-m", "mottr.train_refiner", f"--config={t}/nope.py",
                                                    f"--workdir={t}/w"],
    "train_refiner_without_data": lambda t: ["-m", "mottr.train_refiner", "--config=configs/refiner.py",
                                             "--config.data.real_root=", "--config.data.synth_root=",
                                             f"--workdir={t}/w"],
    "train_refiner_workdir_is_a_file": lambda t: [
        "-m", "mottr.train_refiner", "--config=configs/refiner.py", "--config.data.real_root=",
        f"--config.data.synth_root={_root(t)}", f"--workdir={open(t + '/f', 'w').close() or t + '/f'}"],
    "export_refiner_not_a_workdir": lambda t: [
        "-m", "mottr.export", "--workdir=" + os.path.join(REPO, "mottr", "assets", "shipped"),
        f"--out={t}/exp", f"--refiner={os.makedirs(t + '/r') or t + '/r'}"],
    # mottr.validate
    "validate_deeply_nested_json": lambda t: [
        "-m", "mottr.validate", f"--root={_root(t, '[' * 100000 + ']' * 100000)}"],
    "validate_category_id_list": lambda t: [
        "-m", "mottr.validate", f"--root={_root(t, json.dumps(_coco(category_id=[1])))}"],
    "validate_category_entry_id_list": lambda t: [
        "-m", "mottr.validate",
        f"--root={_root(t, json.dumps(dict(_coco(), categories=[{'id': [1], 'name': 'bolt'}])))}"],
    "validate_track_id_dict": lambda t: [
        "-m", "mottr.validate", f"--root={_root(t, json.dumps(_coco(track_id={'a': 1})))}"],
    # mottr.evaluate --predictions
    "evaluate_string_score": lambda t: _predictions(t, score="high"),
    "evaluate_huge_track_id": lambda t: _predictions(t, track_id=2**70),
    "evaluate_info_not_a_dict": lambda t: _predictions(t, info=[1]),
    "evaluate_info_fps_string": lambda t: _predictions(t, info={"fps": "fast"}),
    "evaluate_info_frame_step_float": lambda t: _predictions(t, info={"frame_step": 2.5}),
    "evaluate_info_frame_step_negative": lambda t: _predictions(t, info={"frame_step": -1}),
}


def _listing(folder):
  return sorted(os.path.relpath(os.path.join(d, f), folder)
                for d, dirs, files in os.walk(folder) for f in files + dirs)


def run_bad_input(args, folder):
  """Runs `python ARGS` in `folder`; asserts exit 2, one stderr line, no traceback, no new files."""
  before = _listing(folder)
  env = dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS="cpu")
  args = [os.path.join(REPO, a) if a.startswith("scripts/") else a for a in args]
  args = [a.replace("configs/", os.path.join(REPO, "configs") + "/", 1)
          if a.startswith("--config=configs/") else a for a in args]
  out = subprocess.run([PY, *args], cwd=folder, env=env, capture_output=True, text=True,
                       timeout=120, check=False)
  lines = out.stderr.strip().splitlines()
  assert "Traceback" not in out.stderr, out.stderr[-3000:]
  assert out.returncode == 2, (out.returncode, out.stderr[-3000:])
  assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
  assert _listing(folder) == before
  return lines[0]


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_one_line_and_exit_2(case, tmp_path):
  if case == "train_read_only_workdir" and os.geteuid() == 0:
    pytest.skip("root writes into read-only folders")
  folder = str(tmp_path)
  args = CASES[case](folder)
  try:
    line = run_bad_input(args, folder)
  finally:
    if os.path.isdir(os.path.join(folder, "ro")):
      os.chmod(os.path.join(folder, "ro"), 0o755)
  if "override" in case or "set_" in case or "typo" in case:
    assert "config override" in line
  if case == "infer_camera_absent":
    assert line.startswith("error: camera 57: cannot open it; check that it is connected")
  if case == "infer_stream_unreachable":
    assert "check the URL" in line and "re-encode" not in line


def test_overrides_are_checked_against_the_config():
  from configs import default
  from mottr import config_overrides
  from mottr.schema import UserError
  config = default.get_config()
  with pytest.raises(UserError, match="did you mean model.snap_tracks"):
    config_overrides.apply(config, {"model.snap_track": False})
  for key, value in [("model.d_model", "abc"), ("model.d_model", 2.5), ("model.d_model", True),
                     ("model.snap_tracks", 1)]:
    with pytest.raises(UserError, match="must be"):
      config_overrides.apply(config, {key: value})
  config_overrides.apply(config, {"model.snap_tracks": True, "model.d_model": 64,
                                  "optim.lr": 1})
  assert config.model.snap_tracks is True and config.model.d_model == 64
  assert isinstance(config.optim.lr, float) and "snap_track" not in config.model
