"""What the command-line entry points share (and only they use): their flags, defined when a CLI
runs and never at import, `--config.a.b=v` overrides, the model and tracker settings they load,
and the lines they print at the end of a run.

Each CLI defines exactly the flags it reads (`define`), so `--help` lists those and nothing of
another CLI. The tracker thresholds are the `tracker` section of the model's config
(`--config.tracker.birth_threshold=0.8`), one override syntax for every key.
"""
import dataclasses
import os
import signal
import sys
from typing import Any

from absl import app
from absl import flags
from absl import logging

from mottr import config as config_lib
from mottr import config_overrides
from mottr import tracker as tracker_lib
from mottr.errors import parse_flags
from mottr.runner import WARMUP_FRAMES, OutputsNotWritten, Result
from mottr.schema import UserError, run_cli
from mottr.sources import FrameSource, open_source

FLAGS = flags.FLAGS

_DEFINITIONS = {
    "video": lambda: flags.DEFINE_string(
        "video", None, "Video file, webcam index, stream URL or frames directory."),
    "fps": lambda: flags.DEFINE_float(
        "fps", None, "Frame rate of the video timeline; default: the container's (30 for frames)."),
    "checkpoint": lambda: flags.DEFINE_string(
        "checkpoint", None, "Exported model or training workdir; default: the shipped model."),
    "output_dir": lambda: flags.DEFINE_string(
        "output_dir", None, "Output directory (see the command's doc for its default). Our files "
        "are added to it; other files in it are never touched."),
    "no_video": lambda: flags.DEFINE_bool("no_video", False, "Do not write annotated.mp4."),
    "overwrite": lambda: flags.DEFINE_bool(
        "overwrite", False, "Replace the outputs of an earlier run in the output folder (only the "
        "files this command writes; other files are never touched). Without it such a folder is "
        "refused."),
}


def run_program(main: Any, doc: str | None, parser: Any = None) -> None:
  """Runs a CLI's `main` under absl (one-line UserErrors, exit 2) with `flags_parser` (or
  `parser`); a console script (mottr-infer, ...) shows the CLI module's doc in --help."""
  main_module = sys.modules["__main__"]
  if not getattr(main_module, "__doc__", None):
    main_module.__doc__ = doc
  app.run(run_cli(main), flags_parser=parser or flags_parser)


def main_module_name() -> str:
  """The module name absl lists the --help flags of: the program that runs."""
  return sys.argv[0]


def define(*names: str) -> None:
  """Defines the shared flags `names` (see _DEFINITIONS) unless they already are, as key flags
  of the program that runs, so that its --help lists them."""
  for name in names:
    if name not in FLAGS:
      _DEFINITIONS[name]()
    FLAGS.register_key_flag_for_module(main_module_name(), FLAGS[name])


_OVERRIDES: dict[str, Any] = {}


def flags_parser(argv: list[str]) -> list[str]:
  """absl flags parser that also takes `--config.a.b=v` overrides of the model's config (checked
  against the config schema, `mottr.config`): a bad one is one line and exit 2."""
  rest, overrides = config_overrides.parse_overrides(argv)
  try:
    config_overrides.check(config_lib.get_config(), overrides)
  except UserError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  _OVERRIDES.clear()
  _OVERRIDES.update(overrides)
  return parse_flags(rest)


def overrides() -> dict[str, Any]:
  """The `--config.a.b=v` overrides of this command line."""
  return dict(_OVERRIDES)


def _is_tracker_key(key: str) -> bool:
  return key.startswith("tracker.")


def load_predictor() -> Any:
  """The predictor of --checkpoint with the --config.model.* (etc.) overrides; the tracker ones
  go to `tracker_settings`. JAX loads only here."""
  from mottr import predictor as predictor_lib  # pylint: disable=g-import-not-at-top
  model_overrides = {k: v for k, v in overrides().items() if not _is_tracker_key(k)}
  return predictor_lib.load_predictor(FLAGS.checkpoint, model_overrides or None)


def tracker_settings(predictor: Any = None) -> tracker_lib.TrackerSettings:
  """The tracker thresholds: the `tracker` section of the predictor's config (its checkpoint's;
  the defaults where it has none, or without a model), with the --config.tracker.* overrides."""
  settings = tracker_lib.TrackerSettings.from_config(getattr(predictor, "config", None))
  section = config_lib.get_config()
  section.tracker.update(dataclasses.asdict(settings))
  config_overrides.apply(section, {k: v for k, v in overrides().items() if _is_tracker_key(k)})
  return tracker_lib.TrackerSettings.from_config(section)


def quiet_logging() -> None:
  """Hides INFO logs (e.g. JAX probing for a TPU) unless --verbosity was given."""
  if not FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)


def check_no_arguments(argv: list[str]) -> None:
  if len(argv) > 1:
    raise UserError(f"unexpected arguments {argv[1:]}; see --help")


def source_from_flags(argv: list[str]) -> FrameSource:
  """The preamble of the CLIs that track a --video: checks argv, opens --video at --fps."""
  quiet_logging()
  check_no_arguments(argv)
  if not FLAGS.video:
    raise UserError("--video is required: a video file, webcam index, stream URL or frames "
                    "directory")
  return open_source(FLAGS.video, FLAGS.fps)


def counts_line(result: Result) -> str:
  return " ".join(f"{k}={v}" for k, v in result.counts.counts.items())


def report(result: Result, output_dir: str) -> None:
  """Speed and output location on stderr, then the one `bolt=<n> nut=<m>` line on stdout."""
  note = " (interrupted)" if result.interrupted else ""
  if result.truncated:
    print(result.truncation_warning() + '; counts.json says "complete": false', file=sys.stderr)
  print(f"{len(result.frames)} frames in {result.seconds:.1f} s ({result.steady_fps:.1f} FPS "
        f"after {WARMUP_FRAMES} warm-up frames); outputs in {output_dir}{note}", file=sys.stderr)
  print(counts_line(result))


def exit_unwritten(e: OutputsNotWritten) -> None:
  """The end of a run whose outputs could not be written: the `bolt=<n> nut=<m>` line on stdout
  anyway, one error line saying so on stderr, exit 1."""
  print(counts_line(e.result), flush=True)
  print(f"error: {e}", file=sys.stderr)
  sys.exit(1)


def default_output_dir(name: str) -> str:
  return FLAGS.output_dir or os.path.join("outputs", name)


_STOP_SIGNAL: list[int] = []  # the signal that stopped the run, when SIGTERM


def interrupt_on_sigterm() -> None:
  """Makes SIGTERM (timeout, docker stop, systemd) act like Ctrl-C: a KeyboardInterrupt, so that
  tracking stops and the outputs of the frames seen are written. A second SIGTERM is ignored,
  so that it cannot cut the writing short (SIGKILL still ends the process)."""

  def handler(signum: int, frame: Any) -> None:
    del frame
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _STOP_SIGNAL.append(signum)
    raise KeyboardInterrupt

  signal.signal(signal.SIGTERM, handler)


def interrupted_status() -> int:
  """Exit status of an interrupted run: 128 + the signal (130 for Ctrl-C, 143 for SIGTERM)."""
  return 128 + (_STOP_SIGNAL[0] if _STOP_SIGNAL else signal.SIGINT)
