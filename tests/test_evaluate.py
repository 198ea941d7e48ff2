"""Evaluation: perfect scores on ground truth, known losses on corrupted copies, the CLI."""
import copy
import json
import os

from absl import flags
import numpy as np
import pytest

from mottr import cli
from mottr import evaluate
from mottr import schema
from mottr.schema import UserError
from mottr.boxes import clip_xywh
# The scripted predictor and tiny video of test_infer (pytest puts tests/ on sys.path).
from test_infer import NUM_FRAMES, SCRIPT, FakePredictor, write_video

STROMA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "stroma")


def script_coco():
  """Ground truth of test_infer's scripted objects: bolt and nut fall through, a bolt stays."""
  anns = []
  for f in range(NUM_FRAMES):
    for k, obj in enumerate(SCRIPT):
      if f in obj:
        cx, cy, w, h, _, label = obj[f]
        box = clip_xywh(np.array([cx - w / 2, cy - h / 2, w, h]) * schema.WIDTH,
                        schema.WIDTH, schema.HEIGHT)
        anns.append({"id": len(anns), "image_id": f + 1, "category_id": label + 1,
                     "segmentation": [], "bbox": [round(float(v), 2) for v in box],
                     "area": float(box[2] * box[3]), "iscrowd": 0, "track_id": k + 1})
  return {"images": [{"id": f + 1, "file_name": schema.file_name(f), "width": schema.WIDTH,
                      "height": schema.HEIGHT} for f in range(NUM_FRAMES)],
          "annotations": anns, "categories": [dict(c) for c in schema.CATEGORIES]}


def run_eval(gt, pred):
  ids = [im["id"] for im in gt["images"]]
  return evaluate.evaluate(gt, pred, ids, 1)[0]


def test_ground_truth_as_predictions_scores_perfectly():
  gt = script_coco()
  m = run_eval(gt, gt)
  assert m["counts"]["true"] == {"bolt": 1, "nut": 1} and m["counts"]["abs_error"] == 0
  for name in ("bolt", "nut", "all"):
    t = m["tracking"][name]
    assert t["HOTA"] == pytest.approx(1) and t["MOTA"] == 1 and t["IDF1"] == 1 and t["IDSW"] == 0
    assert m["detection"][name]["mAP"] == pytest.approx(1)


def test_swapped_ids_lower_idf1_and_count_id_switches():
  gt = script_coco()
  pred = copy.deepcopy(gt)
  for a in pred["annotations"]:  # the bolt and the nut trade ids from frame 15 on
    if a["image_id"] > 15 and a["track_id"] in (1, 2):
      a["track_id"] = 3 - a["track_id"]
  m = run_eval(gt, pred)
  for name in ("bolt", "nut"):
    t = m["tracking"][name]
    assert t["IDSW"] >= 1 and t["IDF1"] < 1 and t["AssA"] < 1 and t["HOTA"] < 1 and t["MOTA"] < 1
    assert t["DetA"] == pytest.approx(1) and t["FP"] == t["FN"] == 0
  t = m["tracking"]["all"]
  assert t["IDSW"] == m["tracking"]["bolt"]["IDSW"] + m["tracking"]["nut"]["IDSW"] and t["IDF1"] < 1


def test_dropped_boxes_lower_mota_by_their_share():
  gt = script_coco()
  pred = copy.deepcopy(gt)
  pred["annotations"] = pred["annotations"][::2]
  dropped = len(gt["annotations"]) - len(pred["annotations"])
  t = run_eval(gt, pred)["tracking"]["all"]
  assert t["FN"] == dropped and t["FP"] == 0
  assert t["MOTA"] == pytest.approx(1 - dropped / len(gt["annotations"]))


def test_missed_exit_is_a_count_error():
  gt = script_coco()
  pred = copy.deepcopy(gt)
  pred["annotations"] = [a for a in pred["annotations"]
                         if not (a["track_id"] == 2 and a["image_id"] > 25)]  # nut lost early
  c = run_eval(gt, pred)["counts"]
  assert c["predicted"] == {"bolt": 1, "nut": 0} and c["error"] == {"bolt": 0, "nut": -1}


def test_evaluate_predictor_on_a_window_of_image_ids(tmp_path):
  root = str(tmp_path)
  os.makedirs(os.path.join(root, "annotations"))
  os.makedirs(os.path.join(root, "images", "val"))
  with open(schema.annotation_path(root, "val"), "w") as f:
    json.dump(script_coco(), f)
  write_video(schema.video_path(root, "val"))
  whole = evaluate.evaluate_predictor(FakePredictor(), root, "val")
  window = evaluate.evaluate_predictor(FakePredictor(), root, "val", image_ids=(1, 30))
  assert whole["frames_evaluated"] == NUM_FRAMES and window["frames_evaluated"] == 30
  assert whole["counts"]["true"] == whole["counts"]["predicted"] == {"bolt": 1, "nut": 1}
  # The nut is still falling at image_id 30: in this window only the first bolt fell through.
  assert window["counts"]["true"] == window["counts"]["predicted"] == {"bolt": 1, "nut": 0}


def _main(args):
  evaluate.define_flags()
  flags.FLAGS(["evaluate", *args])
  try:
    evaluate.main(["evaluate"])
  finally:
    flags.FLAGS.unparse_flags()


def _gt_root(tmp_path):
  """A challenge-layout root holding the scripted val ground truth (annotations only)."""
  root = tmp_path / "root"
  os.makedirs(root / "annotations")
  with open(schema.annotation_path(str(root), "val"), "w") as f:
    json.dump(script_coco(), f)
  return root


def test_cli_runs_inference_and_writes_report(tmp_path, monkeypatch):
  root = _gt_root(tmp_path)
  os.makedirs(root / "images" / "val")
  write_video(schema.video_path(str(root), "val"))
  monkeypatch.setattr(evaluate, "load_predictor_from_flags", FakePredictor)
  out = tmp_path / "eval"
  # The scripted boxes are exact; box smoothing (tests/test_smoothing.py) would shift them by its bias
  # under the script's acceleration (2 x 1 px/frame² = 2 px), and the nut cap would shrink the scripted
  # nut, larger than a real one, so both are off here.
  monkeypatch.setattr(cli, "_OVERRIDES", {"tracker.smooth_window": 0.0,  # as --config.tracker.smooth_window=0
                                          "tracker.nut_max_size": 0.0})
  _main([f"--root={root}", "--split=val", f"--output_dir={out}"])
  assert sorted(os.listdir(out)) == ["counts.png", "metrics.json", "report.md", "tracks.json"]
  with open(out / "metrics.json") as f:
    m = json.load(f)
  assert m["counts"]["abs_error"] == 0 and m["frames_evaluated"] == NUM_FRAMES
  assert m["tracking"]["all"]["IDF1"] == 1 and m["tracking"]["all"]["MOTA"] == 1
  report = (out / "report.md").read_text()
  assert "| HOTA | 1.000 | 1.000 | 1.000 |" in report
  # The written tracks.json evaluates the same as a --predictions file.
  _main([f"--root={root}", "--split=val", f"--predictions={out / 'tracks.json'}",
         f"--output_dir={tmp_path / 'again'}"])
  with open(tmp_path / "again" / "metrics.json") as f:
    assert json.load(f)["tracking"] == m["tracking"]


def test_cli_refuses_a_truncated_video_and_incomplete_predictions(tmp_path, monkeypatch):
  from test_infer import write_truncated_video  # pylint: disable=g-import-not-at-top
  root = _gt_root(tmp_path)
  os.makedirs(root / "images" / "val")
  os.rename(write_truncated_video(tmp_path / "cut.avi"), schema.video_path(str(root), "val"))
  monkeypatch.setattr(evaluate, "load_predictor_from_flags", FakePredictor)
  with pytest.raises(UserError, match=f"frames decoded but .* has {NUM_FRAMES} images"):
    _main([f"--root={root}", "--split=val", f"--output_dir={tmp_path / 'eval'}"])
  assert not (tmp_path / "eval").exists()
  pred = dict(script_coco(), info={"fps": 30.0, "frame_step": 1, "complete": False})
  with open(tmp_path / "pred.json", "w") as f:
    json.dump(pred, f)
  with pytest.raises(UserError, match="info.complete is false"):
    _main([f"--root={root}", "--split=val", f"--predictions={tmp_path / 'pred.json'}",
           f"--output_dir={tmp_path / 'eval'}"])
  assert not (tmp_path / "eval").exists()


def test_cli_predictions_file_good_and_bad(tmp_path):
  root = _gt_root(tmp_path)
  gt_path = schema.annotation_path(str(root), "val")
  _main([f"--root={root}", f"--predictions={gt_path}", f"--output_dir={tmp_path / 'gt'}"])
  with open(tmp_path / "gt" / "metrics.json") as f:
    m = json.load(f)
  assert m["tracking"]["all"]["IDF1"] == 1 and m["counts"]["abs_error"] == 0
  (tmp_path / "bad.json").write_text("{")
  with pytest.raises(UserError, match="not valid JSON"):
    _main([f"--root={root}", f"--predictions={tmp_path / 'bad.json'}",
           f"--output_dir={tmp_path / 'o'}"])
  assert not (tmp_path / "o").exists()


def test_real_val_sparse_frames_ground_truth_is_perfect(tmp_path):
  if not os.path.isdir(os.path.join(STROMA, "frames", "val")):
    pytest.skip(f"{STROMA} absent: the real Stroma reference data is not on this machine")
  gt_path = schema.annotation_path(STROMA, "val")
  out = tmp_path / "eval"
  _main([f"--root={STROMA}", "--split=val", f"--predictions={gt_path}",
         f"--frames_dir={os.path.join(STROMA, 'frames', 'val')}", f"--output_dir={out}"])
  with open(out / "metrics.json") as f:
    m = json.load(f)
  assert m["frames_evaluated"] == 159 and m["frame_step"] == 10
  assert m["counts"]["true"] == {"bolt": 72, "nut": 19} and m["counts"]["abs_error"] == 0
  assert m["tracking"]["all"]["HOTA"] == pytest.approx(1)
  assert m["detection"]["all"]["mAP"] == pytest.approx(1)


def test_cli_keeps_inference_outputs_and_refuses_to_replace_silently(tmp_path):
  """evaluate --output_dir outputs/val after mottr.infer wrote there: infer's annotated.mp4, the
  --predictions file and the user's files survive; the shared counts.png needs --overwrite."""
  root = _gt_root(tmp_path)
  out = tmp_path / "outputs" / "val"
  os.makedirs(out)
  for name in ("annotated.mp4", "counts.png", "notes.txt"):
    (out / name).write_text(name)
  with open(out / "tracks.json", "w") as f:
    json.dump(script_coco(), f)
  args = [f"--root={root}", f"--predictions={out / 'tracks.json'}", f"--output_dir={out}"]
  with pytest.raises(UserError, match="already holds counts.png .*--overwrite"):
    _main(args)
  assert (out / "counts.png").read_text() == "counts.png" and not (out / "report.md").exists()
  _main(args + ["--overwrite"])
  assert sorted(os.listdir(out)) == ["annotated.mp4", "counts.png", "metrics.json", "notes.txt",
                                     "report.md", "tracks.json"]
  assert (out / "annotated.mp4").read_text() == "annotated.mp4"
  assert (out / "notes.txt").read_text() == "notes.txt"
  assert open(out / "counts.png", "rb").read(4) == b"\x89PNG"
  with open(out / "tracks.json") as f:
    assert json.load(f) == script_coco()
