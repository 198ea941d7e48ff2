"""MOTR on GPU/TPU: the full recipe at 256 px, larger batch, longer schedule.

Run:  scripts/train.sh --workdir=workdirs/default --config.data.synth_root=data/synth
      (any JAX accelerators; the batch is split across all devices; multi-host with --config.distributed=True).
      Set --config.data.workers=N (grain processes) on a machine with spare cores.
Time: this config's whole curriculum is not measured on an accelerator; configs/gpu_finetune.py (same model,
      batch 48 five-frame clips, 12 workers) trained at about 2400 frames/s on one H200 (docs/h200_session.md).
"""
import ml_collections


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.init_from = ""  # a workdir whose latest checkpoint's parameters start this run (stage 2 of a recipe)
  c.distributed = False  # call jax.distributed.initialize() (multi-host GPU clusters / TPU pods)

  c.model = ml_collections.ConfigDict(dict(
      num_classes=2, image_size=256, d_model=128, num_heads=8, ffn_dim=512, enc_layers=2, dec_layers=3,
      num_queries=16, num_slots=12, backbone_widths=(32, 48, 96, 192), backbone_blocks=(1, 1, 1),
      anchor_size=0.1,
      velocity_prior=True,    # carried tracks move their reference by velocity x gap (train and inference)
      denoise=False,          # DN-DETR denoising queries in training (mottr/denoising.py)
      detached_births=False,  # inference: detect queries decoded without the track queries (mottr/predictor.py)
      snap_tracks=False))     # inference: track boxes snapped to the detections of that decode (mottr/predictor.py)

  c.loss = ml_collections.ConfigDict(dict(
      focal_alpha=0.25, focal_gamma=2.0, cost_class=2.0, cost_l1=5.0, cost_giou=2.0,
      w_class=2.0, w_l1=5.0, w_giou=2.0, track_drop_prob=0.1, fp_insert_prob=0.3,
      dn_box_noise=0.4, dn_label_noise=0.2))

  c.data = ml_collections.ConfigDict(dict(
      synth_root="",           # challenge-layout root of synthetic data; "" = generate one into the workdir
      synth_frames=7200,       # frames of the generated train split when synth_root is ""
      synth_seed=1,            # seed of the generated data (tests/benchmarks use other seeds)
      real_root="",            # e.g. ../shared/stroma: real sparse frames (stride 10), train split only
      real_weight=0.25,        # sampling weight of real clips vs synthetic ones
      max_objects=12,
      strides=(1, 2, 3),       # random frame stride of synthetic clips
      augment=True,            # flip + JPEG on the host (input.flip_and_jpeg), the photometric rest in the step (mottr/augment.py)
      synth_box_pad_px=(0, 0),  # px per side (at 640 px) added to synthetic bolt / nut boxes: the real convention
      overlay_prob=0.0,        # share of clips with burned-in detector overlays drawn in (input.draw_overlays)
      workers=0))              # grain worker processes making batches ahead of the step (0: in the loop; each
                               # worker fills its own frame cache: 1.4 GB per 7200 frames at 256 px)

  # (steps, clip length): single-frame detection pre-training, then a clip-length curriculum.
  c.curriculum = ((20000, 1), (10000, 2), (10000, 3), (20000, 5))
  c.batch_size = 32

  c.optim = ml_collections.ConfigDict(dict(
      lr=4e-4, warmup_steps=1000, weight_decay=1e-4, clip_norm=0.1, min_lr_ratio=0.05))

  c.log_every = 50
  c.checkpoint_every = 2000
  c.keep_checkpoints = 3
  c.eval_every = 5000
  c.eval_frames = 600      # frames of the val split used by the periodic validation
  return c
