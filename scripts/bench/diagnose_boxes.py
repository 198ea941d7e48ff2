"""Box-convention diagnosis: how the detector's boxes miss the real annotators' boxes.

  python scripts/bench/diagnose_boxes.py --root ../shared/stroma \
      --sets val:../shared/stroma/frames/val,dense:../shared/stroma/dense:3 \
      --checkpoint shipped --synth data/synth --cache_dir /tmp/diagnose_boxes

Each set is `split:frames_dir[:step]` (the split names the annotation file
`ROOT/annotations/instances_{split}.json`; step takes every step-th frame). The per-frame
detector runs as in `scripts/bench/bench_detection.py` (detect queries, empty track set). For the box
statistics each detect query gives one detection (its most probable class, kept when that
probability >= --score, class-wise NMS at --nms); every ground-truth box is matched greedily by
IoU to a detection of the same class (IoU >= 0.5, each used once). Per class, split into boxes
fully inside the frame and boxes touching an edge (within --edge_px), it reports mean/median of
log(pred_w/gt_w), log(pred_h/gt_h), dx/gt_w, dy/gt_h (centre offsets) and the mean IoU.

Then the COCO mAP50-95 (all detections, as bench_detection scores them) with each predicted box
corrected by the per-class median bias (w, h scaled, centre shifted), fitted on the same set and
on each other set (then clipped to the frame again, as bench_detection's boxes are).

`--synth DIR` adds a comparison of the ground-truth conventions themselves: fully visible box
sizes of the real annotations vs the synthetic ones (DIR/annotations/instances_val.json), and
how boxes of objects partly out of frame at the top/bottom edge look (visible height when a
track is first/last boxed; width of edge boxes relative to the track's fully visible width).
"""
import argparse
import collections
import dataclasses
import itertools
import json
import os

import numpy as np

from mottr import schema
from mottr.boxes import clip_xywh

NAMES = {1: "bolt", 2: "nut"}
WIDTH = HEIGHT = 640

# ---------------------------------------------------------------- pure numpy
def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """IoU of COCO xywh boxes a [N, 4] vs b [M, 4] -> [N, M]."""
  a = np.asarray(a, np.float64).reshape(-1, 4)
  b = np.asarray(b, np.float64).reshape(-1, 4)
  ax1, ay1 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]
  bx1, by1 = b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
  iw = np.clip(np.minimum(ax1[:, None], bx1[None]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
  ih = np.clip(np.minimum(ay1[:, None], by1[None]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
  inter = iw * ih
  union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None] - inter
  return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def greedy_match(gt: np.ndarray, pred: np.ndarray, min_iou: float = 0.5) -> list[tuple[int, int, float]]:
  """Pairs (gt index, pred index, IoU), highest IoU first, each box used once, IoU >= min_iou."""
  iou = iou_matrix(gt, pred)
  pairs = []
  if iou.size == 0:
    return pairs
  order = np.argsort(-iou, axis=None, kind="stable")
  used_g, used_p = set(), set()
  for flat in order:
    g, p = divmod(int(flat), iou.shape[1])
    if iou[g, p] < min_iou:
      break
    if g in used_g or p in used_p:
      continue
    used_g.add(g)
    used_p.add(p)
    pairs.append((g, p, float(iou[g, p])))
  return pairs


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
  """Indices kept by greedy non-maximum suppression (highest score first)."""
  order = np.argsort(-np.asarray(scores), kind="stable")
  keep = []
  m = iou_matrix(boxes, boxes)
  for i in order:
    if all(m[i, k] < iou for k in keep):
      keep.append(int(i))
  return np.asarray(keep, np.int64)


def touches_edge(box, width: float = WIDTH, height: float = HEIGHT, tol: float = 2.0) -> bool:
  x, y, w, h = box
  return bool(x <= tol or y <= tol or x + w >= width - tol or y + h >= height - tol)


def box_errors(gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
  """[N, 4]: log(pw/gw), log(ph/gh), (pcx-gcx)/gw, (pcy-gcy)/gh of xywh pairs."""
  gt = np.asarray(gt, np.float64).reshape(-1, 4)
  pred = np.asarray(pred, np.float64).reshape(-1, 4)
  gcx, gcy = gt[:, 0] + gt[:, 2] / 2, gt[:, 1] + gt[:, 3] / 2
  pcx, pcy = pred[:, 0] + pred[:, 2] / 2, pred[:, 1] + pred[:, 3] / 2
  return np.stack([np.log(pred[:, 2] / gt[:, 2]), np.log(pred[:, 3] / gt[:, 3]),
                   (pcx - gcx) / gt[:, 2], (pcy - gcy) / gt[:, 3]], axis=1)


def fit_bias(errors: np.ndarray) -> np.ndarray:
  """Median of each error column (log w, log h, dx, dy); zeros without pairs."""
  errors = np.asarray(errors, np.float64).reshape(-1, 4)
  return np.median(errors, axis=0) if len(errors) else np.zeros(4)


def correct(boxes: np.ndarray, bias: np.ndarray) -> np.ndarray:
  """Undoes a bias (log w, log h, dx, dy) on xywh boxes: w, h divided by exp(bias), the centre
  moved back by the offset in units of the corrected (= estimated true) size."""
  b = np.asarray(boxes, np.float64).reshape(-1, 4)
  w, h = b[:, 2] * np.exp(-bias[0]), b[:, 3] * np.exp(-bias[1])
  cx = b[:, 0] + b[:, 2] / 2 - bias[2] * w
  cy = b[:, 1] + b[:, 3] / 2 - bias[3] * h
  return np.stack([cx - w / 2, cy - h / 2, w, h], axis=1)


@dataclasses.dataclass
class Pair:
  category: int
  edge: bool
  gt: np.ndarray    # xywh
  pred: np.ndarray  # xywh
  iou: float
  image_id: int = 0
  tagged: bool = False  # a burned-in overlay label sits above the box (see overlay_tags)


def match_frames(gt_by_image: dict, det_by_image: dict, min_iou: float = 0.5,
                 edge_px: float = 2.0) -> tuple[list[Pair], dict]:
  """Matches every frame's ground truth to its detections per class.

  gt_by_image / det_by_image: image_id -> list of (category, xywh); detections already thresholded.
  Returns the pairs and per-category counts {"gt": n, "matched": n}.
  """
  pairs, counts = [], collections.defaultdict(lambda: {"gt": 0, "matched": 0})
  for image_id, gts in gt_by_image.items():
    dets = det_by_image.get(image_id, [])
    for c in NAMES:
      g = np.array([b for k, b in gts if k == c], np.float64).reshape(-1, 4)
      d = np.array([b for k, b in dets if k == c], np.float64).reshape(-1, 4)
      counts[c]["gt"] += len(g)
      for gi, di, iou in greedy_match(g, d, min_iou):
        counts[c]["matched"] += 1
        pairs.append(Pair(c, touches_edge(g[gi], tol=edge_px), g[gi], d[di], iou, image_id))
  return pairs, dict(counts)


def summarize(pairs: list[Pair]) -> dict:
  """Per (class, 'inside'/'edge'/'all'): n, mean and median of each error, mean IoU."""
  out = {}
  for c, name in NAMES.items():
    for part in ("inside", "edge", "all"):
      sel = [p for p in pairs if p.category == c and (part == "all" or p.edge == (part == "edge"))]
      if not sel:
        out[(name, part)] = {"n": 0}
        continue
      e = box_errors(np.array([p.gt for p in sel]), np.array([p.pred for p in sel]))
      ious = np.array([p.iou for p in sel])
      out[(name, part)] = {"n": len(sel), "mean": e.mean(0), "median": np.median(e, 0),
                           "std": e.std(0), "iou": float(ious.mean()),
                           "iou75": float(np.mean(ious >= 0.75))}
  return out


def class_bias(pairs: list[Pair]) -> dict[int, np.ndarray]:
  """Per-class median bias (log w, log h, dx, dy) of the pairs."""
  return {c: fit_bias(box_errors(np.array([p.gt for p in pairs if p.category == c]).reshape(-1, 4),
                                 np.array([p.pred for p in pairs if p.category == c]).reshape(-1, 4)))
          for c in NAMES}


def corrected_iou(pairs: list[Pair], bias: dict[int, np.ndarray]) -> float:
  """Mean IoU of the matched pairs once each prediction is corrected by its class's bias."""
  if not pairs:
    return float("nan")
  return float(np.mean([iou_matrix(p.gt, correct(p.pred, bias[p.category]))[0, 0] for p in pairs]))


def overlay_tag_mask(bgr: np.ndarray) -> np.ndarray:
  """Pixels of burned-in detector overlay labels: the filled orange ("bolt 0.70") and pink
  ("nut 0.67") tags another tracker drew into the dense clip's frames (absent from frames/)."""
  import cv2
  hsv = cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV).astype(np.int32)
  h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
  orange = (h >= 15) & (h <= 25) & (s >= 140) & (v >= 200)
  pink = (h >= 160) & (h <= 172) & (s >= 70) & (v >= 95)
  return orange | pink


def tag_above(mask: np.ndarray, box, min_pixels: int = 40) -> bool:
  """Whether an overlay tag sits just above (or on the top of) an xywh box."""
  x, y, w, _ = box
  band = mask[max(int(y) - 22, 0):int(y) + 4, max(int(x) - 8, 0):int(x + w) + 8]
  return int(band.sum()) > min_pixels


def mark_tags(pairs: list[Pair], frames_dir: str) -> int:
  """Sets Pair.tagged from the frames; returns how many frames hold > 60 tag pixels."""
  import cv2
  from mottr import sources
  files = sources.frame_files(frames_dir)
  by_image = collections.defaultdict(list)
  for p in pairs:
    by_image[p.image_id].append(p)
  tagged_frames = 0
  for image_id in sorted(files):
    mask = overlay_tag_mask(cv2.imread(files[image_id]))
    tagged_frames += int(mask.sum() > 60)
    for p in by_image.get(image_id + 1, []):
      p.tagged = tag_above(mask, p.gt)
  return tagged_frames


def draw_sheet(path: str, frames_dir: str, gt_by_image: dict, det_by_image: dict, n: int = 16,
               seed: int = 0) -> None:
  """Contact sheet of n fully visible truth boxes (green) with overlapping detections (red),
  2x nearest-neighbour zoom, for looking at the conventions by eye (keep it out of the repo)."""
  import cv2
  from mottr import sources
  files = sources.frame_files(frames_dir)
  rng = np.random.default_rng(seed)
  boxes = [(i, c, b) for i, gts in gt_by_image.items() for c, b in gts if not touches_edge(b)]
  crops, s = [], 170
  for k in rng.permutation(len(boxes))[:n]:
    i, c, b = boxes[k]
    big = cv2.resize(cv2.imread(files[i - 1]), None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
    for color, items in (((0, 0, 255), [d for _, d in det_by_image.get(i, [])
                                         if iou_matrix(b, d)[0, 0] > 0.3]), ((0, 255, 0), [b])):
      for x, y, w, h in (np.asarray(items).reshape(-1, 4) * 2).astype(int):
        cv2.rectangle(big, (x, y), (x + w, y + h), color, 1)
    cx, cy = int(2 * b[0] + b[2]), int(2 * b[1] + b[3])
    crop = big[max(cy - s, 0):cy + s, max(cx - s, 0):cx + s]
    crop = cv2.copyMakeBorder(crop, 0, 2 * s - crop.shape[0], 0, 2 * s - crop.shape[1],
                              cv2.BORDER_CONSTANT)
    cv2.putText(crop, f"{i} {NAMES[c]}", (5, 20), 0, 0.6, (255, 255, 0), 1)
    crops.append(crop)
  rows = [np.hstack(crops[r:r + 4]) for r in range(0, len(crops) - len(crops) % 4, 4)]
  if rows:
    cv2.imwrite(path, np.vstack(rows))


# ---------------------------------------------------------------- detections
def run_detections(predictor, root: str, split: str, frames_dir: str, step: int) -> tuple[dict, list]:
  import bench_detection
  from mottr import sources
  source = sources.open_source(frames_dir)
  source = dataclasses.replace(source, frames=itertools.islice(source.frames, 0, None, step))
  return bench_detection.detections(predictor, source)


def queries(pred: dict) -> dict:
  """Regroups bench_detection's per-class rows (one per query and class, in order) into
  image_id -> list of (bbox, {category: probability})."""
  out = collections.defaultdict(list)
  rows = pred["annotations"]
  for i in range(0, len(rows), len(NAMES)):
    group = rows[i:i + len(NAMES)]
    out[group[0]["image_id"]].append((group[0]["bbox"], {r["category_id"]: r["score"] for r in group}))
  return out


def thresholded(pred: dict, score: float, nms_iou: float) -> dict:
  """image_id -> list of (category, xywh): each query's most probable class, >= score, NMS."""
  out = {}
  for image_id, qs in queries(pred).items():
    dets = []
    for c in NAMES:
      sel = [(b, p[c]) for b, p in qs if max(p, key=p.get) == c and p[c] >= score]
      if not sel:
        continue
      boxes = np.array([b for b, _ in sel], np.float64)
      keep = nms(boxes, np.array([s for _, s in sel]), nms_iou)
      dets += [(c, boxes[k]) for k in keep]
    out[image_id] = dets
  return out


def transformed(pred: dict, fn) -> dict:
  """pred with every bbox replaced by fn(category, xywh array)."""
  anns = [dict(a, bbox=fn(a["category_id"], np.asarray(a["bbox"], np.float64)).reshape(4).tolist())
          for a in pred["annotations"]]
  return {"annotations": anns}


def oracle_boxes(pred: dict, gt_by_image: dict, min_iou: float = 0.5, below: float = 1.01) -> dict:
  """pred with every box whose best IoU with a same-class ground-truth box is in [min_iou, below)
  replaced by that box: the mAP perfect localisation of those boxes would give (scores unchanged)."""
  anns = []
  for a in pred["annotations"]:
    g = np.array([b for c, b in gt_by_image.get(a["image_id"], []) if c == a["category_id"]]).reshape(-1, 4)
    box = a["bbox"]
    if len(g):
      iou = iou_matrix(np.asarray(box), g)[0]
      if min_iou <= iou.max() < below:
        box = g[int(iou.argmax())].tolist()
    anns.append(dict(a, bbox=box))
  return {"annotations": anns}


def gt_frames(gt: dict, image_ids) -> dict:
  keep = set(image_ids)
  out = collections.defaultdict(list)
  for a in gt["annotations"]:
    if a["image_id"] in keep:
      out[a["image_id"]].append((a["category_id"], np.asarray(a["bbox"], np.float64)))
  for i in keep:
    out.setdefault(i, [])
  return out


# ---------------------------------------------------------------- ground-truth conventions
def convention_stats(coco: dict, edge_px: float = 2.0) -> dict:
  """Per class: fully visible box sizes; first/last visible heights of tracks at top/bottom;
  width of top/bottom edge boxes over the track's median fully visible width, by visible
  fraction of the track's median fully visible height."""
  by_track = collections.defaultdict(list)
  for a in coco["annotations"]:
    by_track[a.get("track_id", a["id"])].append(a)
  out = {}
  for c, name in NAMES.items():
    inside, first_h, last_h, ratios = [], [], [], []
    for anns in by_track.values():
      if anns[0]["category_id"] != c:
        continue
      anns = sorted(anns, key=lambda a: a["image_id"])
      b = np.array([a["bbox"] for a in anns], np.float64)
      full = np.array([not touches_edge(x, tol=edge_px) for x in b])
      inside += list(b[full])
      if b[0][1] <= edge_px:
        first_h.append(b[0][3])
      if b[-1][1] + b[-1][3] >= HEIGHT - edge_px:
        last_h.append(b[-1][3])
      if full.sum() >= 3:
        w_full, h_full = np.median(b[full, 2]), np.median(b[full, 3])
        for x in b[~full]:
          top, bottom = x[1] <= edge_px, x[1] + x[3] >= HEIGHT - edge_px
          side = x[0] <= edge_px or x[0] + x[2] >= WIDTH - edge_px
          if (top or bottom) and not side:
            ratios.append(("top" if top else "bottom", x[3] / h_full, x[2] / w_full))
    inside = np.array(inside).reshape(-1, 4)
    out[name] = {"inside": inside, "first_h": np.array(first_h), "last_h": np.array(last_h),
                 "ratios": ratios}
  return out


def _q(x, qs=(10, 50, 90)) -> str:
  x = np.asarray(x, np.float64)
  return "/".join(f"{v:.0f}" for v in np.percentile(x, qs)) if len(x) else "-"


def convention_report(real: dict, synth: dict, real_name: str, synth_name: str) -> list[str]:
  lines = [f"### Ground-truth conventions: {real_name} vs {synth_name}", "",
           "Fully visible boxes (not within 2 px of an edge), p10/p50/p90 in px; aspect = h/w.", "",
           "| class | set | boxes | width | height | aspect p50 | area p50 |", "|---|---|---:|---|---|---:|---:|"]
  for name in NAMES.values():
    for label, s in ((real_name, real), (synth_name, synth)):
      b = s[name]["inside"]
      lines.append(f"| {name} | {label} | {len(b)} | {_q(b[:, 2])} | {_q(b[:, 3])} | "
                   f"{np.median(b[:, 3] / b[:, 2]):.2f} | {np.median(b[:, 2] * b[:, 3]):.0f} |")
  lines += ["", "Tracks at the edges: visible height (px) of a track's first box (top edge) and last box "
            "(bottom edge), p5/p50/p95; edge boxes' width over the track's median fully visible width, "
            "by visible fraction (edge box height over the track's median fully visible height).", "",
            "| class | set | first h | last h | top: w ratio at h-frac <0.3 / 0.3-0.6 / 0.6-0.9 | "
            "bottom: same |", "|---|---|---|---|---|---|"]
  for name in NAMES.values():
    for label, s in ((real_name, real), (synth_name, synth)):
      cells = []
      for where in ("top", "bottom"):
        r = [(f, w) for k, f, w in s[name]["ratios"] if k == where]
        parts = []
        for lo, hi in ((0, 0.3), (0.3, 0.6), (0.6, 0.9)):
          ws = [w for f, w in r if lo <= f < hi]
          parts.append(f"{np.median(ws):.2f} (n={len(ws)})" if ws else "-")
        cells.append(" / ".join(parts))
      lines.append(f"| {name} | {label} | {_q(s[name]['first_h'], (5, 50, 95))} | "
                   f"{_q(s[name]['last_h'], (5, 50, 95))} | {cells[0]} | {cells[1]} |")
  return lines


# ---------------------------------------------------------------- how tight boxes sit on the image
MARGIN_OUT = 6  # px outside the box where the search for the object's outline starts


def gradient_magnitude(gray: np.ndarray) -> np.ndarray:
  import cv2
  g = cv2.GaussianBlur(np.asarray(gray, np.float32), (3, 3), 0)
  return np.hypot(cv2.Sobel(g, cv2.CV_32F, 1, 0), cv2.Sobel(g, cv2.CV_32F, 0, 1))


def border_margins(mag: np.ndarray, box, out: int = MARGIN_OUT) -> np.ndarray | None:
  """Per side (left, right, top, bottom) of an xywh box: how many px inside the box the first
  strong edge lies (scanning from `out` px outside inwards; negative: outside the box). Strong =
  half the box's 95th-percentile gradient magnitude, taken as the maximum along the side. A tight
  box of a sharp object reads about -1 (the filtered edge starts just outside); padding p adds p.
  None when the box is within `out` + 1 px of the image border."""
  x, y, w, h = [int(round(v)) for v in box]
  H, W = mag.shape
  if w < 4 or h < 4 or x < out + 1 or y < out + 1 or x + w > W - out - 1 or y + h > H - out - 1:
    return None
  thr = 0.5 * np.percentile(mag[y:y + h, x:x + w], 95)
  profiles = (mag[y:y + h, x - out:x + w // 2].max(0),
              mag[y:y + h, x + w - w // 2:x + w + out].max(0)[::-1],
              mag[y - out:y + h // 2, x:x + w].max(1),
              mag[y + h - h // 2:y + h + out, x:x + w].max(1)[::-1])
  res = []
  for prof in profiles:
    idx = np.flatnonzero(prof >= thr)
    res.append((idx[0] if len(idx) else len(prof)) - out)
  return np.asarray(res, np.float64)


def margins_of(frames, boxes_by_image: dict) -> dict[int, np.ndarray]:
  """category -> [N, 4] border margins of the boxes (image_id -> [(category, xywh)]) over
  frames, an iterable of (image_id, gray image)."""
  out = collections.defaultdict(list)
  for image_id, gray in frames:
    items = boxes_by_image.get(image_id, [])
    if not items:
      continue
    mag = gradient_magnitude(gray)
    for c, b in items:
      m = border_margins(mag, b)
      if m is not None:
        out[c].append(m)
  return {c: np.array(v).reshape(-1, 4) for c, v in out.items()}


def _gray_frames(frames_dir: str, image_ids):
  import cv2
  from mottr import sources
  files = sources.frame_files(frames_dir)
  for i in image_ids:
    yield i, cv2.imread(files[i - 1], cv2.IMREAD_GRAYSCALE).astype(np.float32)


def _synth_frames(synth_root: str, step: int, jpeg_like: str | None):
  """Gray frames (image_id, image) of the synthetic val video, every step-th, re-encoded with
  the JPEG tables of `jpeg_like` (a real frame) when given, so both sides are compressed alike."""
  import io
  import cv2
  from PIL import Image
  tables = Image.open(jpeg_like).quantization if jpeg_like else None
  cap = cv2.VideoCapture(schema.video_path(synth_root, "val"))
  index = 0
  while True:
    ok, frame = cap.read()
    if not ok:
      break
    index += 1
    if index % step:
      continue
    gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    if tables:
      buf = io.BytesIO()
      Image.fromarray(gray).save(buf, "JPEG", qtables=tables)
      gray = np.asarray(Image.open(io.BytesIO(buf.getvalue())))
    yield index, gray.astype(np.float32)


def margin_report(rows: dict[str, dict[int, np.ndarray]]) -> list[str]:
  lines = ["### Where the object's outline lies inside the boxes", "",
           "px from each box side inwards to the first strong image edge (median; mean in brackets); a "
           "tight box of a sharp object reads about -1, every px of padding adds 1. Boxes within 7 px of "
           "the frame border are skipped.", "",
           "| boxes | class | n | left | right | top | bottom | all four |", "|---|---|---:|---|---|---|---|---|"]
  for label, by_class in rows.items():
    for c, name in NAMES.items():
      m = by_class.get(c, np.zeros((0, 4)))
      if not len(m):
        continue
      cells = [f"{np.median(m[:, k]):+.0f} ({m[:, k].mean():+.1f})" for k in range(4)]
      lines.append(f"| {label} | {name} | {len(m)} | " + " | ".join(cells) +
                   f" | {np.median(m):+.1f} ({m.mean():+.2f}) |")
  return lines


# ---------------------------------------------------------------- report
def _fmt_stats(s: dict) -> str:
  if not s["n"]:
    return "| 0 | - | - | - | - | - | - |"
  mean, med = s["mean"], s["median"]
  cells = [f"{mean[i]:+.3f} / {med[i]:+.3f}" for i in range(4)]
  return f"| {s['n']} | " + " | ".join(cells) + f" | {s['iou']:.3f} | {s['iou75']:.2f} |"


def _fmt_bias(bias: dict) -> str:
  return "; ".join(f"{NAMES[c]}: w x{np.exp(-b[0]):.3f}, h x{np.exp(-b[1]):.3f}, "
                   f"cx {-b[2]:+.3f} w, cy {-b[3]:+.3f} h" for c, b in bias.items())


def _print_table(pairs: list[Pair]) -> None:
  print("| mean / median | n | log(pw/gw) | log(ph/gh) | dx/gw | dy/gh | mean IoU | IoU >= .75 |")
  print("|---|---:|---|---|---|---|---:|---:|")
  stats = summarize(pairs)
  for (name, part), st in stats.items():
    print(f"| {name} {part} " + _fmt_stats(st))
  print("\nstd (log w, log h, dx, dy): " + "; ".join(
      f"{n} {p}: " + " ".join(f"{x:.3f}" for x in v["std"])
      for (n, p), v in stats.items() if v["n"] and p != "all") + "\n")


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--root", required=True)
  parser.add_argument("--sets", required=True, help="comma-separated split:frames_dir[:step]")
  parser.add_argument("--checkpoint", default="shipped")
  parser.add_argument("--score", type=float, default=0.5, help="class probability to keep a query")
  parser.add_argument("--nms", type=float, default=0.5)
  parser.add_argument("--min_iou", type=float, default=0.5)
  parser.add_argument("--edge_px", type=float, default=2.0)
  parser.add_argument("--synth", default=None, help="synthetic root to compare GT conventions with")
  parser.add_argument("--cache_dir", default=None, help="reuse/save raw detections here")
  parser.add_argument("--draw_dir", default=None,
                      help="write {split}_boxes.jpg contact sheets here (real frames: not in the repo)")
  args = parser.parse_args()

  from mottr import evaluate

  sets, predictor = {}, None
  for spec in args.sets.split(","):
    split, frames_dir, *rest = spec.split(":")
    step = int(rest[0]) if rest else 1
    gt = schema.load_annotations(args.root, split)
    cache = (os.path.join(args.cache_dir, f"{split}_step{step}_{os.path.basename(args.checkpoint)}.json")
             if args.cache_dir else None)
    if cache and os.path.exists(cache):
      with open(cache) as f:
        d = json.load(f)
      pred, image_ids = d["pred"], d["image_ids"]
    else:
      if predictor is None:
        from mottr.predictor import load_predictor
        predictor = load_predictor(None if args.checkpoint == "shipped" else args.checkpoint)
      pred, image_ids = run_detections(predictor, args.root, split, frames_dir, step)
      if cache:
        os.makedirs(args.cache_dir, exist_ok=True)
        with open(cache, "w") as f:
          json.dump({"pred": pred, "image_ids": image_ids}, f)
    dets = thresholded(pred, args.score, args.nms)
    pairs, counts = match_frames(gt_frames(gt, image_ids), dets, args.min_iou, args.edge_px)
    if args.draw_dir:
      os.makedirs(args.draw_dir, exist_ok=True)
      draw_sheet(os.path.join(args.draw_dir, f"{split}_boxes.jpg"), frames_dir,
                 gt_frames(gt, image_ids), dets)
    tagged_frames = mark_tags(pairs, frames_dir)
    sets[split] = dict(gt=gt, pred=pred, image_ids=image_ids, pairs=pairs, counts=counts, step=step,
                       tagged_frames=tagged_frames, frames_dir=frames_dir)

  print(f"# Box diagnosis: checkpoint {args.checkpoint}, queries with class probability >= "
        f"{args.score}, NMS {args.nms}, matched at IoU >= {args.min_iou}; edge = within "
        f"{args.edge_px:g} px of the frame border\n")
  for split, s in sets.items():
    print(f"## {split}: {len(s['image_ids'])} frames (every {s['step']})\n")
    print("matched / ground truth: " + ", ".join(
        f"{NAMES[c]} {v['matched']}/{v['gt']}" for c, v in sorted(s["counts"].items())))
    tagged = [p for p in s["pairs"] if p.tagged]
    print(f"frames of the folder with burned-in overlay tags (> 60 tag pixels): "
          f"{s['tagged_frames']}; matched boxes with a tag above them: {len(tagged)}/{len(s['pairs'])}\n")
    _print_table(s["pairs"])
    if tagged:
      print(f"### {split}: only the boxes with no overlay tag above them\n")
      _print_table([p for p in s["pairs"] if not p.tagged])

  fits = {}
  for split, s in sets.items():
    fits[split] = class_bias(s["pairs"])
    if any(p.tagged for p in s["pairs"]):
      fits[f"{split} untagged"] = class_bias([p for p in s["pairs"] if not p.tagged])
  for k, b in fits.items():
    print(f"- calibration fitted on {k} (multiply / shift predicted boxes): {_fmt_bias(b)}")
  print()
  header = ["raw"] + [f"fit {k}" for k in fits] + ["oracle boxes", "oracle < .75", "oracle >= .75"]
  print("| set | " + " | ".join(header) + " |")
  print("|---|" + "---:|" * len(header))
  for split, s in sets.items():
    by_image = gt_frames(s["gt"], s["image_ids"])
    variants = {"raw": s["pred"], "oracle boxes": oracle_boxes(s["pred"], by_image, args.min_iou),
                "oracle < .75": oracle_boxes(s["pred"], by_image, args.min_iou, 0.75),
                "oracle >= .75": oracle_boxes(s["pred"], by_image, 0.75)}
    for k, b in fits.items():
      variants[f"fit {k}"] = transformed(s["pred"], lambda c, x, b=b: clip_xywh(correct(x, b[c]), WIDTH, HEIGHT))
    cells = []
    for name in header:
      m = evaluate.detection_metrics(s["gt"], variants[name], s["image_ids"])
      cells.append(f"{m['all']['mAP']:.3f} ({m['bolt']['mAP']:.3f}/{m['nut']['mAP']:.3f}; "
                   f"AP50 {m['all']['mAP50']:.3f})")
    print(f"| {split} | " + " | ".join(cells) + " |")
  print("\ncells: mAP50-95 all (bolt/nut; mAP50 all); oracle boxes: every predicted box with IoU >= "
        f"{args.min_iou} to a same-class truth replaced by it (perfect localisation, same scores); "
        "< .75 / >= .75: only the boxes whose best IoU is below / at least 0.75 (gross vs fine errors)\n")
  print("mean IoU of the matched pairs, raw -> after the correction fitted on ...:")
  for split, s in sets.items():
    groups = {split: s["pairs"]}
    if any(p.tagged for p in s["pairs"]):
      groups[f"{split} untagged"] = [p for p in s["pairs"] if not p.tagged]
    for g, ps in groups.items():
      print(f"- {g}: {np.mean([p.iou for p in ps]):.3f} -> " + ", ".join(
          f"{corrected_iou(ps, b):.3f} ({k})" for k, b in fits.items()))

  margins = {}
  for split, s in sets.items():
    frames_dir = s["frames_dir"]
    by_image = gt_frames(s["gt"], s["image_ids"])
    margins[f"real {split}, truth"] = margins_of(_gray_frames(frames_dir, s["image_ids"]), by_image)
    pred_by_image = collections.defaultdict(list)
    for p in s["pairs"]:
      pred_by_image[p.image_id].append((p.category, p.pred))
    margins[f"real {split}, matched detections"] = margins_of(
        _gray_frames(frames_dir, sorted(pred_by_image)), pred_by_image)
  if args.synth:
    synth_gt = gt_frames(schema.load_coco(schema.annotation_path(args.synth, "val")), range(1, 100000))
    first = next(iter(sets.values()))
    from mottr import sources
    like = sources.frame_files(first["frames_dir"])[first["image_ids"][0] - 1]
    margins["synthetic val, truth (every 10th frame)"] = margins_of(_synth_frames(args.synth, 10, None), synth_gt)
    margins[f"synthetic val, truth, re-encoded with the JPEG tables of {os.path.basename(like)} "
            f"({next(iter(sets))})"] = margins_of(_synth_frames(args.synth, 10, like), synth_gt)
  print()
  print("\n".join(margin_report(margins)))

  if args.synth:
    real_gt = next(iter(sets.values()))["gt"]
    real_name = next(iter(sets))
    synth_gt = schema.load_coco(schema.annotation_path(args.synth, "val"))
    print()
    print("\n".join(convention_report(convention_stats(real_gt, args.edge_px),
                                      convention_stats(synth_gt, args.edge_px),
                                      f"real {real_name}", "synthetic val")))
    for split, s in list(sets.items())[1:]:
      print()
      print("\n".join(convention_report(convention_stats(real_gt, args.edge_px),
                                        convention_stats(s["gt"], args.edge_px),
                                        f"real {real_name}", f"real {split}")))


if __name__ == "__main__":
  main()
