"""Evaluate tracks and counts against a split's ground truth.

  python -m mottr.evaluate --root DIR --split S [--checkpoint DIR | --predictions tracks.json]
                           [--frames_dir DIR] [--output_dir DIR] [--overwrite]
                           [--config.tracker.x=v ...] [--config.model.x=v ...]
  (or: mottr-evaluate ...)

Runs inference on `images/{S}/{S}.mp4` (or on --frames_dir, frames named NNNN.jpg by image_id,
e.g. ../shared/stroma/frames/val, every 10th frame), or takes another tracker's --predictions in
the challenge schema (with a `score` per box for AP; 1.0 where missing), and compares them with
`annotations/instances_{S}.json`:
- counts: objects that fell through per class, predicted vs true, by the one rule of
  `mottr.counting` (true counts from the whole annotation file);
- tracking: HOTA / DetA / AssA (TrackEval), MOTA, MOTP, IDF1, ID switches per class and
  combined (detection-weighted), IoU similarity, on the evaluated frames only;
- detection: COCO mAP and mAP50 (pycocotools) of the per-frame boxes.
Writes report.md, metrics.json and counts.png (+ tracks.json when it ran inference) into
--output_dir (default outputs/eval_<split>/), all or nothing. Other files in that folder are never
touched (e.g. mottr.infer's annotated.mp4, or the --predictions file); a folder that already
holds any of the files this run writes (an earlier run, or mottr.infer's counts.png) is refused
before any work unless --overwrite, which replaces exactly those. A concurrent writer into the
folder is refused. A video that decodes to a different number of frames than the split has images
(a truncated file), and --predictions whose info says "complete": false, are refused.
"""
import contextlib
import dataclasses
import io
import itertools
import os
from typing import Any, Sequence

from absl import flags
import numpy as np
from pycocotools import coco as coco_api
from pycocotools import cocoeval

from mottr import cli
from mottr import counting
from mottr import outputs
from mottr import runner
from mottr import schema
from mottr import sources
from mottr import tracker as tracker_lib
from mottr.boxes import iou_xywh
from mottr.schema import UserError

with contextlib.redirect_stdout(io.StringIO()):  # it prints a note about an optional dataset
  import trackeval  # pylint: disable=g-import-not-at-top

OUTPUT_NAMES = ("report.md", "metrics.json", "counts.png")  # + tracks.json when it runs a model
TRACKING_FIELDS = ("HOTA", "DetA", "AssA", "MOTA", "MOTP", "IDF1", "IDSW", "FP", "FN")


def _per_frame(coco: dict, category_id: int, image_ids: Sequence[int]):
  """{image_id: (track ids [n], xywh boxes [n, 4])} of one category on the given images."""
  keep = set(image_ids)
  rows = {i: ([], []) for i in image_ids}
  for a in coco["annotations"]:
    if a["category_id"] == category_id and a["image_id"] in keep:
      rows[a["image_id"]][0].append(a["track_id"])
      rows[a["image_id"]][1].append(a["bbox"])
  return {i: (np.asarray(ids, np.int64), np.asarray(b, np.float64).reshape(-1, 4))
          for i, (ids, b) in rows.items()}


def _trackeval_data(gt: dict, pred: dict, category_id: int, image_ids: Sequence[int]) -> dict:
  """The per-sequence input TrackEval's metrics expect, ids remapped to 0..n-1."""
  g, p = _per_frame(gt, category_id, image_ids), _per_frame(pred, category_id, image_ids)
  gt_ids = np.unique(np.concatenate([g[i][0] for i in image_ids] + [np.zeros(0, np.int64)]))
  pr_ids = np.unique(np.concatenate([p[i][0] for i in image_ids] + [np.zeros(0, np.int64)]))
  return {
      "num_timesteps": len(image_ids),
      "num_gt_ids": len(gt_ids),
      "num_tracker_ids": len(pr_ids),
      "num_gt_dets": sum(len(g[i][0]) for i in image_ids),
      "num_tracker_dets": sum(len(p[i][0]) for i in image_ids),
      "gt_ids": [np.searchsorted(gt_ids, g[i][0]) for i in image_ids],
      "tracker_ids": [np.searchsorted(pr_ids, p[i][0]) for i in image_ids],
      "similarity_scores": [iou_xywh(g[i][1], p[i][1]) for i in image_ids],
  }


def tracking_metrics(gt: dict, pred: dict, image_ids: Sequence[int]) -> dict[str, dict[str, float]]:
  """HOTA/DetA/AssA, MOTA/MOTP/IDSW/FP/FN and IDF1 per category name and "all" (summed dets)."""
  metrics = (trackeval.metrics.HOTA(), trackeval.metrics.CLEAR({"PRINT_CONFIG": False}),
             trackeval.metrics.Identity({"PRINT_CONFIG": False}))
  raw = {m.get_name(): {} for m in metrics}
  for category_id, name in schema.CATEGORY_NAMES.items():
    data = _trackeval_data(gt, pred, category_id, image_ids)
    for m in metrics:
      raw[m.get_name()][name] = m.eval_sequence(data)
  for m in metrics:
    raw[m.get_name()]["all"] = m.combine_classes_det_averaged(dict(raw[m.get_name()]))
  summary = {}
  for name in list(schema.CATEGORY_NAMES.values()) + ["all"]:
    hota, clear, identity = (raw[m.get_name()][name] for m in metrics)
    summary[name] = {
        "HOTA": float(np.mean(hota["HOTA"])), "DetA": float(np.mean(hota["DetA"])),
        "AssA": float(np.mean(hota["AssA"])), "MOTA": float(clear["MOTA"]),
        "MOTP": float(clear["MOTP"]), "IDF1": float(identity["IDF1"]), "IDSW": int(clear["IDSW"]),
        "FP": int(clear["CLR_FP"]), "FN": int(clear["CLR_FN"])}
  return summary


def detection_metrics(gt: dict, pred: dict,
                      image_ids: Sequence[int]) -> dict[str, dict[str, float]]:
  """COCO mAP (IoU .50:.95) and mAP50 per category name and over both ("all")."""
  keep = set(image_ids)
  # pycocotools takes annotation id 0 for "unmatched": renumber from 1 (the challenge starts at 0).
  gt_anns = [dict(a, id=i, area=a.get("area", a["bbox"][2] * a["bbox"][3]),
                  iscrowd=a.get("iscrowd", 0))
             for i, a in enumerate((a for a in gt["annotations"] if a["image_id"] in keep), 1)]
  dets = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": list(a["bbox"]),
           "score": float(a.get("score", 1.0))}
          for a in pred["annotations"] if a["image_id"] in keep]
  names = dict(schema.CATEGORY_NAMES, all="all")
  if not dets:
    return {name: {"mAP": 0.0, "mAP50": 0.0} for name in names.values()}
  with contextlib.redirect_stdout(io.StringIO()):
    coco_gt = coco_api.COCO()
    coco_gt.dataset = {"images": [{"id": i} for i in sorted(keep)], "annotations": gt_anns,
                       "categories": [dict(c) for c in schema.CATEGORIES]}
    coco_gt.createIndex()
    coco_dt = coco_gt.loadRes(dets)
    result = {}
    for key, name in names.items():
      ev = cocoeval.COCOeval(coco_gt, coco_dt, "bbox")
      if key != "all":
        ev.params.catIds = [key]
      ev.evaluate()
      ev.accumulate()
      ev.summarize()
      result[name] = {"mAP": max(0.0, float(ev.stats[0])), "mAP50": max(0.0, float(ev.stats[1]))}
  return result


def count_metrics(true: counting.Counts, predicted: counting.Counts) -> dict[str, Any]:
  names = list(schema.CATEGORY_NAMES.values())
  return {
      "true": dict(true.counts), "predicted": dict(predicted.counts),
      "error": {n: predicted.counts[n] - true.counts[n] for n in names},
      "abs_error": sum(abs(predicted.counts[n] - true.counts[n]) for n in names)}


def exit_counts(gt: dict, pred: dict, pred_frame_step: int, *, fps: float | None = None,
                edge_tolerance: float = counting.EDGE_TOLERANCE) -> tuple[counting.Counts, counting.Counts]:
  """(true, predicted) counts by the one exit rule: the truth from every box of `gt`, the prediction
  with its own frame step; both treat gt's last annotated frame as the end of the video and the
  video's frame rate `fps` (default: the ground truth's, `schema.coco_fps`)."""
  height = gt["images"][0].get("height", schema.HEIGHT) if gt["images"] else schema.HEIGHT
  final = max((im["id"] for im in gt["images"]), default=0) - 1  # the last annotated frame
  fps = fps or schema.coco_fps(gt)
  true = counting.count_tracks(schema.tracks_from_coco(gt), height=height, final_frame=final,
                               frame_step=1, fps=fps, edge_tolerance=edge_tolerance)
  predicted = counting.count_tracks(schema.tracks_from_coco(pred), height=height,
                                    final_frame=final, frame_step=pred_frame_step, fps=fps,
                                    edge_tolerance=edge_tolerance)
  return true, predicted


def evaluate(gt: dict, pred: dict, image_ids: Sequence[int], pred_frame_step: int, *,
             fps: float | None = None,
             edge_tolerance: float = counting.EDGE_TOLERANCE) -> tuple[dict, dict[str, list]]:
  """All metrics of predictions vs ground truth on the given images (image_ids).

  Counts use every box of both files (`exit_counts`).
  Returns (metrics, {"true": events, "predicted": events}).
  """
  image_ids = sorted(set(image_ids))
  true, predicted = exit_counts(gt, pred, pred_frame_step, fps=fps, edge_tolerance=edge_tolerance)
  metrics = {
      "frames_evaluated": len(image_ids),
      "frame_step": counting.frame_step_of(image_ids),
      "counts": count_metrics(true, predicted),
      "tracking": tracking_metrics(gt, pred, image_ids),
      "detection": detection_metrics(gt, pred, image_ids),
  }
  return metrics, {"true": true.events, "predicted": predicted.events}


def track_split(predictor: Any, root: str, split: str, *, max_frames: int | None = None,
                image_ids: tuple[int, int] | None = None, frames_dir: str | None = None,
                settings: tracker_lib.TrackerSettings | None = None
                ) -> tuple[dict, sources.FrameSource, runner.Result]:
  """Tracks a split's video (or `frames_dir`, NNNN.jpg by image_id) on the frames whose image_id
  lies in `image_ids` (first, last), or in (1, max_frames); default all. Returns its annotations
  restricted to those frames, the source and the tracking result. Default settings: the model's
  (the `tracker` section of its config, as `mottr.infer` uses)."""
  gt = schema.load_annotations(root, split)
  if max_frames is not None:
    image_ids = (1, max_frames)
  first, last = image_ids or (1, None)
  source = sources.open_source(frames_dir or schema.video_path(root, split), start=first - 1)
  if image_ids is not None:
    source = dataclasses.replace(source, frames=itertools.takewhile(lambda item: item[0] < last, source.frames),
                                 total=None)
    gt = dict(gt, images=[im for im in gt["images"] if first <= im["id"] <= last],
              annotations=[a for a in gt["annotations"] if first <= a["image_id"] <= last])
  settings = settings or tracker_lib.TrackerSettings.from_config(getattr(predictor, "config", None))
  result = runner.track_source(source, predictor, settings, progress=False)
  return gt, source, result


def evaluate_predictor(predictor: Any, root: str, split: str, **window_and_settings) -> dict:
  """Metrics of `track_split` (same arguments) against the annotations of the frames processed."""
  gt, source, result = track_split(predictor, root, split, **window_and_settings)
  metrics, _ = evaluate(gt, runner.result_coco(result), [f + 1 for f in result.frames],
                        source.frame_step, fps=source.fps)
  return metrics


def report_markdown(title: str, metrics: dict) -> str:
  """report.md: one table, columns per category and all."""
  names = list(schema.CATEGORY_NAMES.values())
  c, t, d = metrics["counts"], metrics["tracking"], metrics["detection"]
  fmt = lambda v: f"{v:.3f}" if isinstance(v, float) else str(v)
  rows = [("true count", [c["true"][n] for n in names] + [sum(c["true"].values())]),
          ("predicted count", [c["predicted"][n] for n in names] + [sum(c["predicted"].values())]),
          ("count error", [f"{c['error'][n]:+d}" for n in names] + [f"|{c['abs_error']}|"])]
  rows += [(f, [t[n][f] for n in names + ["all"]]) for f in TRACKING_FIELDS]
  rows += [(f, [d[n][f] for n in names + ["all"]]) for f in ("mAP", "mAP50")]
  lines = [f"# {title}", "", f"Frames evaluated: {metrics['frames_evaluated']} "
           f"(step {metrics['frame_step']}).", "", "| metric | " + " | ".join(names) + " | all |",
           "|---|" + "---:|" * (len(names) + 1)]
  lines += [f"| {name} | " + " | ".join(fmt(v) for v in values) + " |" for name, values in rows]
  if metrics.get("inference"):
    lines += [""] + [f"- {key}: {value}" for key, value in metrics["inference"].items()]
  return "\n".join(lines) + "\n"


def _load_predictions(path: str) -> dict:
  if not os.path.isfile(path):
    raise UserError(f"{path}: no such file; pass --predictions a tracks.json in the challenge "
                    "schema")
  pred = schema.load_coco(path)
  info = pred.get("info", {})
  if not isinstance(info, dict):
    raise UserError(f"{path}: info is not a JSON object")
  fps, step = info.get("fps"), info.get("frame_step")
  if fps is not None and not (isinstance(fps, (int, float)) and not isinstance(fps, bool)
                              and 0 < fps <= sources.MAX_FPS):
    raise UserError(f"{path}: info.fps {fps!r} is not a frame rate (a number above 0 and at "
                    f"most {sources.MAX_FPS:g})")
  if step is not None and not (isinstance(step, int) and not isinstance(step, bool)
                               and step >= 1):
    raise UserError(f"{path}: info.frame_step {step!r} is not a whole number of frames of at "
                    "least 1")
  return pred


def write_report(directory: str, title: str, metrics: dict, events: dict[str, list],
                 num_frames: int, fps: float) -> None:
  """The one report writer: metrics.json, report.md and counts.png (predicted vs true counts over
  time) into an existing directory."""
  outputs.write_json(os.path.join(directory, "metrics.json"), metrics)
  with open(os.path.join(directory, "report.md"), "w") as f:
    f.write(report_markdown(title, metrics))
  outputs.plot_cumulative_counts(os.path.join(directory, "counts.png"), events, num_frames, fps)


def inference_notes(result: runner.Result) -> dict[str, Any]:
  """The inference lines of a report: speed and births lost."""
  return {"inference speed": f"{result.steady_fps:.1f} FPS after {runner.WARMUP_FRAMES} warm-up "
                             f"frames of {result.warmup_seconds:.1f} s (compilation)",
          "births dropped (no free slot)": result.dropped_births}


FLAGS = flags.FLAGS
FLAG_NAMES = ("checkpoint", "output_dir", "overwrite")  # shared with other CLIs (mottr.cli)


def define_flags() -> None:
  """The flags of this CLI, defined only when it runs (`run_main`, tests)."""
  if "root" not in FLAGS:
    flags.DEFINE_string("root", None, "Challenge-layout root with annotations/ (and images/).")
    flags.DEFINE_string("split", "val", "Split to evaluate.")
    flags.DEFINE_string("predictions", None, "tracks.json to evaluate instead of running the model.")
    flags.DEFINE_string(
        "frames_dir", None, "Evaluate on these frames only (NNNN.jpg by image_id, or by 0-based "
        "frame index when the folder holds 0000.jpg), not the video.")
  cli.define(*FLAG_NAMES)
  for name in ("root", "split", "predictions", "frames_dir"):
    flags.declare_key_flag(name)


def load_predictor_from_flags() -> Any:
  """The predictor of --checkpoint with the --config.* overrides."""
  return cli.load_predictor()


def main(argv: list[str]) -> None:
  cli.quiet_logging()
  cli.check_no_arguments(argv)
  root, split, predictions, frames_dir = FLAGS.root, FLAGS.split, FLAGS.predictions, FLAGS.frames_dir
  if not root:
    raise UserError("--root is required: a challenge-layout root with "
                    "annotations/instances_{split}.json")
  if predictions and FLAGS.checkpoint:
    raise UserError("pass either --predictions (evaluate a file) or --checkpoint (run a model), "
                    "not both")
  gt = schema.load_annotations(root, split)
  if frames_dir and not os.path.isdir(frames_dir):
    raise UserError(f"{frames_dir}: not a directory; pass --frames_dir a folder of NNNN.jpg frames")
  output_dir = FLAGS.output_dir or os.path.join("outputs", f"eval_{split}")
  gt_ids = sorted(im["id"] for im in gt["images"])
  names = OUTPUT_NAMES if predictions else OUTPUT_NAMES + ("tracks.json",)
  with outputs.output_dir(output_dir, names, overwrite=FLAGS.overwrite) as tmp:
    inference = {}
    if predictions:
      pred = _load_predictions(predictions)
      if pred.get("info", {}).get("complete") is False:
        raise UserError(f"{predictions}: info.complete is false (the run that wrote it "
                        "was stopped or its video was truncated); its frames do not cover the "
                        "split")
      image_ids = [f + 1 for f in sources.frame_files(frames_dir)] if frames_dir else gt_ids
      pred_step = pred.get("info", {}).get("frame_step") or counting.frame_step_of(image_ids)
      fps = pred.get("info", {}).get("fps") or schema.coco_fps(gt)
      title = f"{predictions} on {split}"
      settings = cli.tracker_settings()
    else:
      source = sources.open_source(frames_dir or schema.video_path(root, split))
      predictor = load_predictor_from_flags()
      settings = cli.tracker_settings(predictor)
      result = runner.track_source(source, predictor, settings)
      if result.interrupted:
        raise UserError("interrupted; nothing written")
      if not frames_dir and len(result.frames) != len(gt_ids):
        raise UserError(f"{source.name}: {len(result.frames)} frames decoded but "
                        f"{schema.annotation_path(root, split)} has {len(gt_ids)} images "
                        "(a truncated video, or not the video of these annotations); nothing "
                        "written")
      pred = runner.result_coco(result)
      outputs.write_json(os.path.join(tmp, "tracks.json"), pred)
      image_ids = [f + 1 for f in result.frames]
      pred_step = source.frame_step
      fps = source.fps
      title = f"{FLAGS.checkpoint or 'shipped model'} on {split}"
      inference = {"frames processed": len(result.frames), **inference_notes(result)}
    image_ids = sorted(set(gt_ids).intersection(image_ids))
    if not image_ids:
      raise UserError(f"no evaluated frame is in {schema.annotation_path(root, split)}; "
                      "check --split and --frames_dir")
    metrics, events = evaluate(gt, pred, image_ids, int(pred_step), fps=fps,
                               edge_tolerance=settings.edge_tolerance)
    metrics["inference"] = inference
    write_report(tmp, title, metrics, events, len(gt["images"]), fps)
  all_t, c = metrics["tracking"]["all"], metrics["counts"]
  print(f"HOTA={all_t['HOTA']:.3f} MOTA={all_t['MOTA']:.3f} IDF1={all_t['IDF1']:.3f} "
        f"count_error={c['error']} -> {output_dir}")


def run_main() -> None:
  """The program (`python -m mottr.evaluate`, console script `mottr-evaluate`)."""
  define_flags()
  cli.run_program(main, __doc__)


if __name__ == "__main__":
  run_main()
