"""Tests for mottr.input: clip sampling, slot alignment, host augmentation, frame cache, mixing, TFDS reading."""
import os

import cv2
import numpy as np
import pytest

from data_prep import synth
from data_prep.stroma_clips import build
from mottr import input as inp
from mottr.schema import UserError

SIZE = 32


def make_records(tracks: dict[int, tuple[int, int, int]], num_frames: int, *, video: bytes = b"v",
                 stride: int = 1, skip: tuple[int, ...] = (), seed: int = 0) -> list[dict]:
  """Records of one video: track id -> (label, first frame, last frame). Each object is a
  white square on black at cx = 0.04 * track id, falling; objects listed in random order."""
  rng = np.random.default_rng(seed)
  records = []
  for f in range(num_frames):
    if f in skip:
      continue
    image = np.zeros((SIZE, SIZE, 3), np.uint8)
    objs = []
    for tid, (label, first, last) in tracks.items():
      if first <= f <= last:
        box = [0.04 * tid, 0.1 + 0.05 * (f - first), 0.06, 0.06]
        x0, y0 = int((box[0] - 0.03) * SIZE), int((box[1] - 0.03) * SIZE)
        image[max(y0, 0):y0 + 2, max(x0, 0):x0 + 2] = 255
        objs.append((box, label, tid))
    objs = [objs[i] for i in rng.permutation(len(objs))]
    records.append({"video": video, "frame": f * stride, "stride": stride, "image": image,
                    "objects": {"bbox": [np.array(o[0], np.float32) for o in objs],
                                "label": [o[1] for o in objs], "track_id": [o[2] for o in objs],
                                "touches_edge": [o[0][1] < 0.12 for o in objs]}})
  return records


TRACKS = {tid: (tid % 2, 2 * tid - 2, 2 * tid + 6) for tid in range(1, 15)}


def _dataset(records, **kw):
  args = dict(clip_len=4, strides=(1, 2), batch_size=4, max_objects=6, seed=0, augment=False,
              image_size=SIZE)
  args.update(kw)
  batch_size = args.pop("batch_size")
  return inp.mix_clip_datasets([inp.make_clips(records, **args)], [1.0], batch_size)


def test_batch_shapes_and_dtypes():
  batch = _dataset(make_records(TRACKS, 40), batch_size=3, image_size=16)[0]
  expected = {"image": ((3, 4, 16, 16, 3), np.uint8), "boxes": ((3, 4, 6, 4), np.float32),
              "labels": ((3, 4, 6), np.int32), "mask": ((3, 4, 6), np.bool_),
              "touches_edge": ((3, 4, 6), np.bool_), "gap": ((3,), np.float32)}
  assert {k: (v.shape, v.dtype) for k, v in batch.items()} == expected
  gaps = np.concatenate([_dataset(make_records(TRACKS, 40))[step]["gap"] for step in range(6)])
  assert set(gaps.tolist()) == {1.0, 2.0}  # the clip's frame stride, in frames


def test_slots_follow_one_object_through_the_clip():
  ds = _dataset(make_records(TRACKS, 35), max_objects=12)  # some object in every frame
  for step in range(6):
    batch = ds[step]
    for b in range(4):
      mask, boxes = batch["mask"][b], batch["boxes"][b]
      assert mask.any()
      first_seen = []
      for m in range(12):
        if not mask[:, m].any():
          assert not mask[:, m:].any()  # slots are filled in order
          break
        cx = boxes[mask[:, m], m, 0]
        np.testing.assert_allclose(cx, cx[0], atol=1e-6)  # the same object in every frame
        tid = int(round(cx[0] / 0.04))
        assert (batch["labels"][b][mask[:, m], m] == tid % 2).all()
        cy = boxes[mask[:, m], m, 1]
        assert (np.diff(cy) > 0).all()  # falling: frames in temporal order
        first_seen.append(int(np.argmax(mask[:, m])))
      assert first_seen == sorted(first_seen)  # order of first appearance
      assert not boxes[~mask].any()


def test_clip_strides_and_gaps():
  idx = inp.RecordIndex.of(make_records(TRACKS, 12, skip=(5,)) + make_records(TRACKS, 4, video=b"w"))
  # Records 0..10: frames 0-4, 6-11 of video v; records 11..14: frames 0-3 of video w.
  assert idx.clip_starts(3, 1).tolist() == [0, 1, 2, 5, 6, 7, 8, 11, 12]
  assert idx.clip_starts(3, 2).tolist() == [0, 5, 6]  # frames 0, 2, 4 / 6, 8, 10 / 7, 9, 11
  assert idx.clip_starts(2, 3).tolist() == [0, 1, 5, 6, 7, 11]
  sparse = inp.RecordIndex.of(make_records(TRACKS, 6, stride=10, skip=(3,)))
  assert sparse.frame.tolist() == [0, 10, 20, 40, 50]
  assert sparse.clip_starts(2, 1).tolist() == [0, 1, 3]
  assert sparse.clip_starts(2, 2).tolist() == [0]  # frames 0, 20 (gap 2 * 10)
  ds = _dataset(make_records(TRACKS, 12, stride=10), strides=(3,), clip_len=3, batch_size=1)
  cy = ds[0]["boxes"][0, :, :, 1]
  seen = ds[0]["mask"][0].all(axis=0)
  np.testing.assert_allclose(np.diff(cy[:, seen], axis=0), 0.15, atol=1e-6)  # 3 records apart


def test_objects_beyond_max_are_dropped_and_counted():
  crowded = {tid: (0, 0, 30) for tid in range(1, 16)}
  slots, dropped = inp.assign_slots([np.arange(1, 16), np.arange(15, 0, -1)], 12)
  assert dropped == 3
  assert slots[0].tolist() == list(range(12)) + [-1, -1, -1]
  assert slots[1].tolist() == [-1, -1, -1] + list(range(11, -1, -1))
  ds = _dataset(make_records(crowded, 20), max_objects=12)
  drops = 0
  for step in range(4):
    mask = ds[step]["mask"]
    assert mask.all()  # 15 objects in every frame: 12 kept, in every frame
    drops += mask.shape[0]
  assert drops == 16  # every clip dropped objects (3 each)
  assert inp.assign_slots([np.arange(1, 5)], 12)[1] == 0


def test_augmentation_flips_whole_clips_and_is_deterministic():
  records = make_records(TRACKS, 40)
  plain = _dataset(records, max_objects=12)
  aug = _dataset(records, max_objects=12, augment=True)
  flipped = kept = 0
  for step in range(5):
    p, a = plain[step], aug[step]
    np.testing.assert_array_equal(p["mask"], a["mask"])
    for b in range(4):
      m = p["mask"][b]
      if np.allclose(a["boxes"][b][m], p["boxes"][b][m]):
        kept += 1
      else:
        flipped += 1
        np.testing.assert_allclose(a["boxes"][b][m][:, 0], 1 - p["boxes"][b][m][:, 0], atol=1e-6)
        np.testing.assert_allclose(a["boxes"][b][m][:, 1:], p["boxes"][b][m][:, 1:])
        # The white squares moved with the boxes: mirroring back restores the plain image.
        corr = lambda x: np.corrcoef(x.astype(float).ravel(), p["image"][b].astype(float).ravel())[0, 1]
        assert corr(a["image"][b][:, :, ::-1]) > 0.8 > corr(a["image"][b]) + 0.3
  assert flipped and kept
  again = _dataset(records, max_objects=12, augment=True)
  for step in range(3):
    for k in aug[step]:
      np.testing.assert_array_equal(aug[step][k], again[step][k])
  other = _dataset(records, max_objects=12, augment=True, seed=1)
  assert not np.array_equal(aug[0]["image"], other[0]["image"])
  assert not np.array_equal(aug[0]["image"], plain[0]["image"])


def test_flip_and_jpeg_is_one_draw_per_clip():
  frame = np.random.default_rng(0).integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8)
  clip = {"image": np.stack([frame] * 4), "boxes": np.zeros((4, 2, 4), np.float32),
          "mask": np.zeros((4, 2), bool)}
  kinds = set()
  for seed in range(12):
    out = inp.flip_and_jpeg(clip, np.random.default_rng(seed))["image"]
    assert out.dtype == np.uint8 and out.shape == clip["image"].shape
    for t in range(1, 4):
      np.testing.assert_array_equal(out[t], out[0])  # same flip and quality in every frame
    flipped = np.abs(out[0].astype(int) - frame[:, ::-1]).mean() < np.abs(out[0].astype(int) - frame).mean()
    kinds.add((flipped, not np.array_equal(out[0], frame[:, ::-1] if flipped else frame)))
  assert len(kinds) == 4  # flip and JPEG each on and off


def test_frame_cache_gathers_the_decoded_frames():
  records = make_records(TRACKS, 12)
  cache = inp.FrameCache(records, 16, chunk=5)
  assert len(cache) == 12 and cache.frames.shape == (12, 16, 16, 3) and cache.nbytes == 12 * 16 * 16 * 3
  for i in (0, 7, 11):
    np.testing.assert_array_equal(cache[i]["image"], inp._resize(records[i]["image"], 16))
    assert cache[i]["frame"] == records[i]["frame"] and cache[i]["objects"] is records[i]["objects"]
  import pickle
  copy = pickle.loads(pickle.dumps(cache))  # a worker's copy: no frames pickled, filled on first use
  assert copy._frames is None and len(copy) == 12
  np.testing.assert_array_equal(copy[7]["image"], cache[7]["image"])
  plain, cached = _dataset(records, clip_len=3, image_size=16), _dataset(cache, clip_len=3, image_size=16)
  for step in range(3):
    for k in plain[step]:
      np.testing.assert_array_equal(plain[step][k], cached[step][k])


def test_mixing_sources_by_weight():
  a = inp.make_clips(make_records(TRACKS, 40), clip_len=2, strides=(1,), max_objects=12, seed=0,
                     augment=False, image_size=SIZE)
  b_tracks = {tid: (1, first, last) for tid, (_, first, last) in TRACKS.items()}
  b = inp.make_clips(make_records(b_tracks, 40, stride=10), clip_len=2, strides=(1,),
                     max_objects=12, seed=0, augment=False, image_size=SIZE)
  mixed = inp.mix_clip_datasets([a, b], [3, 1], batch_size=4)
  labels_b = 0
  for step in range(6):
    batch = mixed[step]
    assert batch["image"].shape == (4, 2, SIZE, SIZE, 3)
    for i in range(4):
      lab, m = batch["labels"][i], batch["mask"][i]
      labels_b += bool((lab[m] == 1).all() and (lab[m] == 1).sum() > 2)
  assert 0 < labels_b < 12


def _clip(boxes: list[list[float] | None], label: int, m: int = 3, size: int = 64, value: int = 0) -> dict:
  """A 2-frame clip whose slot j holds boxes[j] (cxcywh) in both frames, None = empty; a flat image."""
  clip = {"image": np.full((2, size, size, 3), value, np.uint8), "boxes": np.zeros((2, m, 4), np.float32),
          "labels": np.zeros((2, m), np.int32), "mask": np.zeros((2, m), bool),
          "touches_edge": np.zeros((2, m), bool), "gap": np.float32(10.0)}
  for j, box in enumerate(boxes):
    if box is not None:
      clip["boxes"][:, j], clip["labels"][:, j], clip["mask"][:, j] = box, label, True
  return clip


def test_compose_columns_cuts_images_and_boxes_at_the_seam():
  left = _clip([[0.2, 0.3, 0.1, 0.1], [0.48, 0.5, 0.1, 0.1], [0.55, 0.7, 0.2, 0.1]], label=0, value=10)
  right = _clip([[0.8, 0.2, 0.1, 0.1]], label=1, value=200)
  out = inp.compose_columns(left, right, seam=0.5)
  assert (out["image"][:, :, :32] == 10).all() and (out["image"][:, :, 32:] == 200).all()
  assert out["gap"] == 10.0
  np.testing.assert_allclose(out["boxes"][:, 0], [[0.2, 0.3, 0.1, 0.1]] * 2, atol=1e-6)
  np.testing.assert_allclose(out["boxes"][:, 1], [[0.465, 0.5, 0.07, 0.1]] * 2, atol=1e-6)  # x 0.43-0.50
  np.testing.assert_allclose(out["boxes"][:, 2], [[0.475, 0.7, 0.05, 0.1]] * 2, atol=1e-6)  # x 0.45-0.50
  assert out["mask"].all() and (out["labels"] == 0).all()  # all 3 slots are left's: right's object is dropped


def test_compose_columns_drops_slivers_and_gives_the_right_half_the_free_slots():
  left = _clip([[0.2, 0.3, 0.1, 0.1], [0.52, 0.5, 0.1, 0.1]], label=0, m=5)  # slot 1 keeps x 0.47-0.50
  right = _clip([[0.8, 0.2, 0.1, 0.1], [0.48, 0.6, 0.1, 0.1], [0.6, 0.4, 0.04, 0.04]], label=1, m=5)
  out = inp.compose_columns(left, right, seam=0.5)  # right slot 1 keeps x 0.50-0.53
  assert 0.03 < inp.MIN_VISIBLE
  assert out["mask"][0].tolist() == [True, False, True, False, True]
  assert out["labels"][0].tolist() == [0, 0, 1, 0, 1]
  assert not out["boxes"][:, [1, 3]].any()
  np.testing.assert_allclose(out["boxes"][0, 4], [0.6, 0.4, 0.04, 0.04], atol=1e-6)


def test_overlays_draw_boxes_and_tags_around_objects_and_leave_labels_alone():
  clip = _clip([[0.25, 0.5, 0.2, 0.2], [0.7, 0.6, 0.25, 0.2]], label=1, m=3, size=640, value=40)
  out = inp.draw_overlays(clip, np.random.default_rng(3), "random")
  for k in ("boxes", "labels", "mask", "touches_edge"):
    np.testing.assert_array_equal(out[k], clip[k])
  assert (clip["image"] == 40).all()  # the input clip is not drawn on
  changed = (out["image"] != 40).any(-1)
  assert changed[:, 200:420, 40:250].mean() > 0.02 and changed[:, 250:460, 370:530].mean() > 0.02
  assert not changed[:, 5:150, 5:300].any() and not changed[:, 300:360, 140:200].any()  # far off, inside
  np.testing.assert_array_equal(inp.draw_overlays(clip, np.random.default_rng(3), "random")["image"], out["image"])
  palette = {tuple(c) for c in inp.draw_overlays(clip, np.random.default_rng(3))["image"].reshape(-1, 3)}
  assert palette & set(inp.OVERLAY_PALETTE) and not {tuple(c) for c in out["image"].reshape(-1, 3)} & set(
      inp.OVERLAY_PALETTE)  # filled tags in the shipped recipe's colours; random ones elsewhere


def _overlay_tops(style: str) -> np.ndarray:
  """The drawn box's top edge (row), clip x frame, over 40 clips of one 128-px box (drawn ones)."""
  clip = _clip([[0.5, 0.5, 0.2, 0.2]], label=0, m=1, size=640, value=40)
  tops = []
  for seed in range(40):
    changed = (inp.draw_overlays(clip, np.random.default_rng(seed), style)["image"] != 40).any(-1)[:, :, 300:340]
    rows = [np.flatnonzero(c.any(1)) for c in changed]
    if all(len(r) for r in rows):  # drawn (85 % of objects): the top line is the row before the widest gap
      tops.append([r[np.argmax(np.diff(r))] for r in rows])
  assert len(tops) > 25
  return np.array(tops, float)


def test_random_overlay_boxes_miss_the_object_by_a_share_of_its_size_held_over_the_clip():
  tops = _overlay_tops("random")  # std over clips 0.08 * 128 = 10 px; 3 px of jitter a frame
  assert tops.mean(1).std() > 6 and np.abs(tops[:, 0] - tops[:, 1]).mean() < 8
  assert _overlay_tops("palette").mean(1).std() < 4  # the shipped recipe's: on the truth, 3 px of jitter


def test_unknown_overlay_style_is_a_user_error():
  with pytest.raises(UserError, match="overlay style 'pink'"):
    inp.make_clips(make_records(TRACKS, 10), clip_len=2, strides=(1,), max_objects=4, seed=0, augment=False,
                   image_size=SIZE, overlay_prob=0.5, overlay_style="pink")


def test_overlay_colours_span_hues_and_include_dark_ones():
  rgb = np.array(inp.overlay_colours(np.random.default_rng(0), 2000))
  hsv = cv2.cvtColor(rgb.astype(np.uint8)[None], cv2.COLOR_RGB2HSV)[0].astype(int)
  assert np.histogram(hsv[:, 0], bins=6, range=(0, 180))[0].min() > 200  # every hue sextant
  assert (rgb.max(1) < 110).mean() > 0.1  # dark tags like the dense clip's maroon (99, 47, 78)
  assert (hsv[:, 1] >= inp.OVERLAY_SATURATION[0] - 2).all() and (hsv[:, 2] >= inp.OVERLAY_VALUE[0] - 1).all()


def test_composite_clips_join_clips_of_one_frame_gap_and_are_deterministic():
  records = make_records(TRACKS, 40)
  plain, mixed = (_dataset(records, composite_prob=p, max_objects=12) for p in (0.0, 1.0))
  again = _dataset(records, composite_prob=1.0, max_objects=12)
  differs = 0
  for step in range(4):
    batch = mixed[step]
    for key, value in again[step].items():
      np.testing.assert_array_equal(batch[key], value)
    differs += int(not np.array_equal(batch["image"], plain[step]["image"]))
    # every object falls 0.05 per record: 0.05 * gap between clip frames in both halves
    both = batch["mask"][:, 1:] & batch["mask"][:, :-1]
    dy = np.diff(batch["boxes"][..., 1], axis=1)
    gap = np.broadcast_to(batch["gap"][:, None, None], dy.shape)
    np.testing.assert_allclose(dy[both], 0.05 * gap[both], atol=1e-5)
  assert differs >= 3  # in these tiny frames both right halves can be plain background


def test_no_clip_is_a_user_error():
  with pytest.raises(UserError, match="no clip of 8 records"):
    _dataset(make_records(TRACKS, 5), clip_len=8)


def test_reads_a_built_tfds_dataset(tmp_path):
  split_dir = tmp_path / "root" / "frames" / "train"
  split_dir.mkdir(parents=True)
  for image_id in range(10, 80, 10):
    img = np.zeros((640, 640, 3), np.uint8)
    img[:, :320] = (200, 30, 30)  # left half red (RGB)
    cv2.imwrite(str(split_dir / ("%04d.jpg" % image_id)), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    (split_dir / ("%04d.txt" % image_id)).write_text(f"0 0.3 {image_id / 100} 0.05 0.05\n")
  data_dir = str(tmp_path / "tfds")
  path = build(str(tmp_path / "root"), data_dir, "r192")
  with pytest.raises(UserError, match="no prepared stroma_clips/r256"):
    inp.open_data_source(data_dir, "train")
  with pytest.raises(UserError, match="no split 'val'"):
    inp.open_data_source(path, "val")
  for source in (inp.open_data_source(data_dir, "train", config="r192"),
                 inp.open_data_source(path, "train")):
    index = inp.RecordIndex.of(source)
    assert index.frame.tolist() == list(range(9, 79, 10)) and set(index.stride.tolist()) == {10}
    batch = inp.mix_clip_datasets([inp.make_clips(source, clip_len=3, strides=(1, 2), max_objects=4,
                                                  seed=0, augment=False, image_size=96)], [1.0], 2)[0]
    assert batch["image"].shape == (2, 3, 96, 96, 3)
    red, blue = batch["image"][..., 0, :48, 0].mean(), batch["image"][..., 0, :48, 2].mean()
    assert red > blue + 100  # RGB
    assert batch["mask"][:, :, 0].all() and not batch["mask"][:, :, 1:].any()
    assert (np.diff(batch["boxes"][:, :, 0, 1], axis=1) > 0.09).all()


def test_synthetic_video_clips_keep_objects_in_their_slots(tmp_path):
  synth.generate_split(str(tmp_path / "root"), "val", num_frames=60, seed=0, progress=False)
  path = build(str(tmp_path / "root"), str(tmp_path / "tfds"), "r192")
  ds = inp.mix_clip_datasets([inp.make_clips(inp.open_data_source(path, "val"), clip_len=4,
                                             strides=(1, 3), max_objects=6, seed=0, augment=True,
                                             image_size=96)], [1.0], 4)
  checked = 0
  for step in range(8):
    batch = ds[step]
    assert batch["image"].shape == (4, 4, 96, 96, 3)
    for b in range(4):
      for m in range(6):
        seen = batch["mask"][b, :, m]
        if seen.sum() < 2:
          continue
        boxes = batch["boxes"][b, seen, m]
        left, right = boxes[:, 0] - boxes[:, 2] / 2, boxes[:, 0] + boxes[:, 2] / 2
        assert (np.maximum(left[1:], left[:-1]) < np.minimum(right[1:], right[:-1])).all()  # same lane
        assert np.diff(boxes[:, 1]).min() > -0.005  # falling
        assert len(set(batch["labels"][b, seen, m].tolist())) == 1
        checked += 1
  assert checked >= 5
