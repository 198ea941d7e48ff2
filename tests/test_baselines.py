"""Baselines: SORT association on scripted detections, the model detector without track
queries, the classical pipeline on a tiny synthetic video, and the benchmark table."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from mottr import schema
from data_prep import synth
from mottr import evaluate
from mottr import infer
from mottr import tracker as tracker_lib
from mottr.baselines import classical
from mottr.baselines import sort
from mottr import boxes
from mottr import sources

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
W, H = schema.WIDTH, schema.HEIGHT
NUM_FRAMES = 70


def fall(x: float, start: int, size: float = 50.0, rest_bottom: float = sort.REST_BOTTOM):
  """{frame: clipped xywh box} of an object falling from rest (bottom at rest_bottom)."""
  out = {}
  for f in range(start, NUM_FRAMES):
    bottom = rest_bottom + 0.5 * sort.GRAVITY * (f - start) ** 2
    box = boxes.clip_xywh(np.array([x, bottom - size, size, size]), W, H)
    if box[1] >= H:
      break
    if box[3] >= 20:  # shows once 20 px are visible
      out[f] = box
  return out


def detections(objects: list[tuple[dict, int]], frame: int, skip=()) -> sort.Detections:
  """Detections of the scripted objects (boxes, class) in a frame, except those in `skip`."""
  rows = [(obj[frame], label) for k, (obj, label) in enumerate(objects)
          if frame in obj and k not in skip]
  return sort.Detections.create([b for b, _ in rows], [0.9] * len(rows), [l for _, l in rows])


def run_tracker(objects, skip_at=None, extra=None, settings=None):
  """Runs SortTracker over the scripted objects; returns all confirmed tracks by id."""
  tracker = sort.SortTracker(settings or sort.SortSettings())
  for f in range(NUM_FRAMES):
    det = detections(objects, f, skip=(skip_at or {}).get(f, ()))
    if extra and f in extra:
      det = sort.Detections.create(np.vstack([det.boxes, extra[f]]), np.r_[det.scores, 0.9],
                                   np.r_[det.labels, 0])
    tracker.update(det, f)
  return tracker.finish()


def test_sort_keeps_ids_through_a_missed_frame():
  a, b = fall(100, 0), fall(400, 5, size=40)
  tracks = run_tracker([(a, 0), (b, 1)], skip_at={20: {0}})
  assert [t.track_id for t in tracks] == [1, 2]
  assert tracks[0].frames == [f for f in sorted(a) if f != 20]
  assert tracks[1].frames == sorted(b)
  assert (tracks[0].category_id, tracks[1].category_id) == (1, 2)
  np.testing.assert_allclose(tracks[0].boxes[-1], a[max(a)])


def test_sort_far_detection_starts_a_new_track():
  a = fall(100, 0)
  far = {f: np.array([450.0, 300.0, 40.0, 40.0]) for f in (30, 31, 32)}
  tracks = run_tracker([(a, 0)], extra=far)
  assert [t.track_id for t in tracks] == [1, 2]
  assert tracks[0].frames == sorted(a)
  assert tracks[1].frames == [30, 31, 32]


def test_sort_drops_unconfirmed_and_ends_missing_tracks():
  a = fall(100, 0)
  once = {10: np.array([450.0, 300.0, 40.0, 40.0])}  # one hit: never confirmed
  settings = sort.SortSettings(miss_tolerance=3)
  tracker = sort.SortTracker(settings)
  ended_at = None
  for f in range(NUM_FRAMES):
    det = detections([(a, 0)], f) if f < 25 else detections([], f)  # a vanishes mid-frame
    if f in once:
      det = sort.Detections.create(np.vstack([det.boxes, once[f]]), np.r_[det.scores, 0.9],
                                   np.r_[det.labels, 0])
    tracker.update(det, f)
    if tracker.pop_finished():
      ended_at = f
  assert ended_at == 24 + settings.miss_tolerance + 1
  assert tracker.finish() == []


def test_sort_without_fall_prior_needs_overlap_and_with_it_bridges_sparse_frames():
  a = fall(100, 0)
  frames = sorted(a)[::6]
  for prior, expect in ((None, False), (sort.REST_BOTTOM, True)):
    tracker = sort.SortTracker(sort.SortSettings(rest_bottom=prior), frame_step=6)
    for f in frames:
      tracker.update(detections([(a, 0)], f), f)
    tracks = tracker.finish()
    assert (len(tracks) == 1 and tracks[0].frames == frames) == expect


def test_associate_maximises_total_iou_and_respects_min_iou():
  predicted = np.array([[0, 0, 10, 10], [6, 0, 10, 10]], float)
  detected = np.array([[4, 0, 10, 10], [10, 0, 10, 10], [100, 100, 10, 10]], float)
  matches, missed, unmatched = sort.associate(predicted, detected, 0.3)
  assert matches == [(0, 0), (1, 1)]  # greedy would give 1 -> 0 (IoU .67) and leave track 0
  assert missed == [] and unmatched == [2]
  matches, missed, unmatched = sort.associate(predicted, detected, 0.5)  # only 1 -> 0 counts
  assert matches == [(1, 0)] and missed == [0] and unmatched == [1, 2]


def test_nms_keeps_the_stronger_of_overlapping_boxes():
  boxes = np.array([[0, 0, 10, 10], [1, 0, 10, 10], [50, 50, 10, 10]], float)
  np.testing.assert_array_equal(sort.nms(boxes, np.array([0.5, 0.9, 0.7]), 0.5), [1, 2])


class FakePredictor:
  """Track slots full of garbage, detect queries with two boxes and one duplicate."""
  num_slots, input_size = 2, 32

  def __init__(self):
    self.resets = self.steps = 0

  def reset(self):
    self.resets += 1

  def step(self, frame_rgb):
    assert frame_rgb.shape == (32, 32, 3)
    self.steps += 1
    assert self.resets == self.steps  # a fresh track set before every frame
    return infer_output(
        scores=[0.99, 0.99, 0.9, 0.8, 0.3, 0.85],
        labels=[0, 0, 1, 1, 0, 0],
        boxes=[[0.5, 0.5, 0.1, 0.1]] * 2 + [[0.2, 0.2, 0.1, 0.1], [0.21, 0.2, 0.1, 0.1],
                                           [0.7, 0.7, 0.1, 0.1], [0.5, 1.2, 0.1, 0.1]])

  def refine(self, frame_bgr, out):
    del frame_bgr  # no crop refiner
    return out


def infer_output(scores, labels, boxes):
  from mottr.predictor import FrameOutput  # pylint: disable=g-import-not-at-top
  return FrameOutput(np.float32(scores), np.int32(labels), np.float32(boxes), 2,
                     np.zeros(2, bool))


def test_model_detector_uses_detect_queries_only():
  predictor = FakePredictor()
  detector = sort.ModelDetector(predictor, (W, H), score_threshold=0.5, nms_iou=0.5)
  for f in range(2):
    det = detector(f, np.zeros((H, W, 3), np.uint8))
  # slots ignored; the duplicate suppressed; the low score and the off-frame box dropped
  np.testing.assert_allclose(det.boxes, [[0.15 * W, 0.15 * H, 0.1 * W, 0.1 * H]], atol=1e-3)
  np.testing.assert_array_equal(det.labels, [1])


def test_track_detections_counts_what_fell_through():
  a, b = fall(100, 0), fall(400, 5, size=40)
  objects = [(a, 0), (b, 1)]
  source = sources.FrameSource("scripted", schema.FPS, 1, W, H, NUM_FRAMES,
                             ((f, None) for f in range(NUM_FRAMES)))
  result = sort.track_detections(source, lambda f, _: detections(objects, f),
                                 sort.SortSettings(), progress=False)
  assert result.counts.counts == {"bolt": 1, "nut": 1}
  assert [t.track_id for t in result.tracks] == [1, 2]
  assert result.frames == list(range(NUM_FRAMES))


def test_merge_boxes_and_shape_rule():
  merged = classical.merge_boxes([np.array([0, 0, 10, 10]), np.array([14, 0, 10, 10]),
                                  np.array([100, 0, 5, 5])], gap=6)
  np.testing.assert_allclose(sorted(map(list, merged)), [[0, 0, 24, 10], [100, 0, 5, 5]])
  s = classical.ClassicalSettings()
  assert classical.shape_class(45, 43, s) == classical.NUT
  assert classical.shape_class(30, 90, s) == classical.BOLT  # elongated
  assert classical.shape_class(80, 75, s) == classical.BOLT  # large
  assert classical.shape_class(30, 30, s) == classical.BOLT  # smaller than any nut


def test_classical_finisher_drops_still_tracks_and_sets_the_track_class():
  s = classical.ClassicalSettings()
  finish = classical.finisher(s, H)
  still = schema.Track(1)
  for f in range(10):
    still.add(f, [300, 300, 45, 45], 0.9, 1)
  assert finish(still) is None
  falling = schema.Track(2)
  for f, box in sorted(fall(100, 0, size=45).items()):
    falling.add(f, box, 0.9, 0)  # clipped boxes entering look like bolts frame by frame
  assert finish(falling).labels == [classical.NUT] * len(falling.frames)


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
  root = str(tmp_path_factory.mktemp("synth"))
  synth.generate_split(root, "val", 90, 3, progress=False)
  return root


def test_classical_finds_the_objects_of_a_tiny_video_and_writes_valid_files(tiny_root, tmp_path):
  source = sources.open_source(schema.video_path(tiny_root, "val"))
  out = str(tmp_path / "out")
  result = classical.run(source, out, classical.ClassicalSettings(), sort.SortSettings(),
                         write_video=False, progress=False)
  assert sorted(os.listdir(out)) == ["counts.json", "counts.png", "tracks.json", "tracks.txt"]
  with open(os.path.join(out, "tracks.json")) as f:
    coco = json.load(f)
  schema.validate_annotations(coco, "tracks.json")
  assert coco["annotations"] and all("score" in a for a in coco["annotations"])
  with open(os.path.join(out, "counts.json")) as f:
    assert json.load(f)["counts"] == result.counts.counts
  gt = schema.load_annotations(tiny_root, "val")
  metrics, _ = evaluate.evaluate(gt, coco, [f + 1 for f in result.frames], 1)
  assert metrics["counts"]["abs_error"] <= 1
  assert metrics["tracking"]["all"]["HOTA"] > 0.4


def test_bench_table_has_one_row_per_method():
  import bench_baselines  # pylint: disable=g-import-not-at-top
  counts = {"true": {"bolt": 3, "nut": 1}, "predicted": {"bolt": 4, "nut": 1},
            "error": {"bolt": 1, "nut": 0}}
  tracking = {"all": {"HOTA": 0.5, "IDF1": 0.75, "IDSW": 2}}
  text = bench_baselines.table([("classical", {"counts": counts, "tracking": tracking}, 20.0)])
  lines = text.splitlines()
  assert lines[0].startswith("| method | bolt count error | nut count error | HOTA")
  assert lines[2] == "| classical | +1 (4/3) | +0 (1/1) | 0.500 | 0.750 | 2 | 20.0 |"


def test_classical_cli_requires_a_video():
  proc = subprocess.run([sys.executable, "-m", "mottr.baselines.classical"], cwd=REPO,
                        capture_output=True, text=True, timeout=120)
  assert proc.returncode == 2
  assert proc.stderr.strip().splitlines() == [
      "error: --video is required: a video file, webcam index, stream URL or frames directory"]
