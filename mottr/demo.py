"""The main job end to end: render a short clip, count its bolts and nuts, score the count.

  python -m mottr.demo [--out_dir outputs/demo] [--seed 2026] [--num_frames 450] [--checkpoint DIR]
                       [--overwrite] [--config.tracker.x=v ...] [--config.model.x=v ...]
  (or: mottr-demo ...)

Renders a synthetic clip with its ground truth (`data_prep.synth`, split "test"; the default seed
is used neither for training nor for tuning), tracks and counts the objects that fall through
with the shipped model (`mottr/assets/shipped/`, or --checkpoint: a training workdir or an
exported model), and scores the result against the truth. Writes into --out_dir, all or nothing
(other files there are never touched; an --out_dir that already holds any of these four entries,
e.g. an earlier demo, is refused unless --overwrite, which replaces exactly these four):
  annotations/instances_test.json, images/test/test.mp4   the clip and its ground truth
  infer/  counts.json, tracks.txt, tracks.json, annotated.mp4, counts.png   (as mottr.infer)
  eval/   report.md, metrics.json, counts.png (predicted vs true)          (as mottr.evaluate)
and prints predicted vs true counts per class, HOTA and IDF1, and where the video and report
are. The model config's tracker thresholds apply (`--config.tracker.x=v` changes one). The clip is
rendered by `data_prep.synth` (imported by this CLI only: the library never generates data).
"""
import dataclasses
import os
import sys
import time
from typing import Any

from absl import flags

from mottr import cli
from mottr import evaluate
from mottr import infer
from mottr import outputs
from mottr import runner
from mottr import schema
from mottr import sources
from mottr import tracker as tracker_lib
from mottr.schema import UserError

FLAGS = flags.FLAGS

SPLIT = "test"
OUTPUT_ENTRIES = ("annotations", "images", "infer", "eval")  # what a demo writes into out_dir


@dataclasses.dataclass
class Demo:
  """What one demo run produced."""
  out_dir: str
  seed: int
  render_seconds: float
  result: runner.Result
  metrics: dict[str, Any]  # of mottr.evaluate.evaluate

  @property
  def video(self) -> str:
    return os.path.join(self.out_dir, "infer", "annotated.mp4")

  @property
  def report(self) -> str:
    return os.path.join(self.out_dir, "eval", "report.md")


def _check_out_dir(out_dir: str, overwrite: bool) -> None:
  """Refuses (before any work) an out_dir that already holds a demo's entries, unless overwrite."""
  outputs.check_output_dir(out_dir, OUTPUT_ENTRIES, overwrite=overwrite, flag="--out_dir")


def run_demo(out_dir: str, seed: int, num_frames: int, predictor: Any,
             settings: tracker_lib.TrackerSettings | None = None, *, title: str = "model",
             progress: bool = True, overwrite: bool = False) -> Demo:
  """Renders a clip into out_dir, tracks it with the predictor and evaluates the result.

  Args:
    out_dir: receives OUTPUT_ENTRIES, only when everything succeeded; other files there are
      kept; earlier OUTPUT_ENTRIES there are refused (UserError) unless `overwrite`.
    seed: seed of the synthetic clip.
    num_frames: length of the clip at 30 FPS.
    predictor: a loaded `mottr.predictor.Predictor`.
    settings: tracker and counting thresholds; None: those of the predictor's config.
    title: names the model in report.md.
    progress: print mottr.infer's progress line on stderr.
    overwrite: replace the entries of an earlier demo in out_dir.
  """
  with outputs.output_dir(out_dir, OUTPUT_ENTRIES, overwrite=overwrite,
                          flag="--out_dir") as tmp:
    from data_prep import synth  # pylint: disable=g-import-not-at-top  (data generation: CLIs only)
    settings = settings or cli.tracker_settings(predictor)
    start = time.perf_counter()
    synth.generate_split(tmp, SPLIT, num_frames, seed, progress=False)
    render_seconds = time.perf_counter() - start
    source = sources.open_source(schema.video_path(tmp, SPLIT))
    result = infer.run(source, lambda: predictor, os.path.join(tmp, "infer"), settings,
                       progress=progress)
    if result.interrupted:
      raise UserError("interrupted; nothing written")
    gt = schema.load_annotations(tmp, SPLIT)
    metrics, events = evaluate.evaluate(gt, runner.result_coco(result),
                                        [f + 1 for f in result.frames], source.frame_step,
                                        edge_tolerance=settings.edge_tolerance)
    metrics["inference"] = {"clip": f"{num_frames} synthetic frames, seed {seed}",
                            **evaluate.inference_notes(result)}
    eval_dir = os.path.join(tmp, "eval")
    os.mkdir(eval_dir)
    evaluate.write_report(eval_dir, f"{title} on the demo clip", metrics, events,
                          len(gt["images"]), schema.FPS)
  return Demo(out_dir, seed, render_seconds, result, metrics)


def summary(demo: Demo) -> str:
  """The lines the CLI prints: counts per class, tracking scores, where the outputs are."""
  r, counts = demo.result, demo.metrics["counts"]
  frames = len(r.frames)
  lines = [f"clip: {frames} frames ({frames / schema.FPS:.1f} s, seed {demo.seed}), rendered "
           f"in {demo.render_seconds:.1f} s",
           f"tracking: {r.steady_fps:.1f} FPS (after {runner.WARMUP_FRAMES} warm-up frames, "
           f"{r.warmup_seconds:.1f} s of compilation)"]
  lines += [f"{name}: predicted {counts['predicted'][name]}, true {counts['true'][name]}"
            for name in schema.CATEGORY_NAMES.values()]
  tracking = demo.metrics["tracking"]["all"]
  lines.append(f"HOTA {tracking['HOTA']:.3f}  IDF1 {tracking['IDF1']:.3f}  "
               f"MOTA {tracking['MOTA']:.3f}  (bolts and nuts)")
  lines.append(f"annotated video: {demo.video}")
  lines.append(f"report: {demo.report}")
  return "\n".join(lines)


def check_model(checkpoint: str | None) -> None:
  """Without a checkpoint, the shipped model must be there: else one clear error."""
  from mottr import checkpoint as checkpoint_lib  # pylint: disable=g-import-not-at-top
  shipped = os.path.join(checkpoint_lib.SHIPPED_CHECKPOINT, "config.json")
  if not checkpoint and not os.path.isfile(shipped):
    raise UserError(f"{shipped}: the shipped model is missing; get it with the repository, or "
                    "pass --checkpoint DIR (a training workdir, e.g. of python -m mottr.train "
                    "--config=configs/tiny.py --workdir=/tmp/tiny)")


def define_flags() -> None:
  """The flags of this CLI, defined only when it runs (`run_main`, tests)."""
  if "out_dir" not in FLAGS:
    flags.DEFINE_string("out_dir", os.path.join("outputs", "demo"),
                        "Where the clip and all outputs go (annotations/, images/, infer/, eval/; "
                        "other files there are never touched).")
    flags.DEFINE_integer("seed", 2026, "Seed of the synthetic clip (the training data uses 1).")
    flags.DEFINE_integer("num_frames", 450, "Length of the clip in frames (30 FPS).")
  cli.define("checkpoint", "overwrite")
  for name in ("out_dir", "seed", "num_frames"):
    flags.declare_key_flag(name)


def main(argv: list[str]) -> None:
  cli.quiet_logging()
  cli.check_no_arguments(argv)
  check_model(FLAGS.checkpoint)
  _check_out_dir(FLAGS.out_dir, FLAGS.overwrite)
  predictor = cli.load_predictor()  # before rendering: a bad model fails fast
  demo = run_demo(FLAGS.out_dir, FLAGS.seed, FLAGS.num_frames, predictor,
                  title=FLAGS.checkpoint or "shipped model", overwrite=FLAGS.overwrite)
  sys.stderr.flush()
  print(summary(demo), flush=True)


def run_main() -> None:
  """The program (`python -m mottr.demo`, console script `mottr-demo`)."""
  define_flags()
  cli.run_program(main, __doc__)


if __name__ == "__main__":
  run_main()
