"""Backbone stride 16 vs 32 at the model's input size: what each costs and what each can resolve.

  python scripts/bench/bench_stride.py [--config=configs/cpu.py] [--coco FILE ...] [--repeats 20]

For each stride (16: the config's backbone; 32: one more stride-2 stage of width 256) it prints
the feature grid, the size of the smallest objects in feature cells, the model's parameters,
compiled FLOPs and measured time per frame (encode + decode, batch 1), and, for every COCO file
given (challenge annotations, e.g. the real val split), the share of boxes whose centre cell also
holds another box's centre. Encoder proposals assign one object per centre cell
(`criterion.proposal_targets`), so that share bounds the proposals' recall from above.
"""
import argparse
import importlib
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from mottr import schema
from mottr.model.motr import MOTR, build_model, empty_tracks

STRIDE32_EXTRA_WIDTH = 256


def collisions(coco: dict, image_size: int, stride: int) -> dict[str, float]:
  """Share of boxes (per class name and 'all') sharing their centre cell with another box."""
  grid = image_size // stride
  cell = schema.WIDTH / grid  # px of the 640 frame per feature cell
  by_image: dict[int, list[tuple[int, int, int]]] = {}
  for a in coco["annotations"]:
    x, y, w, h = a["bbox"]
    key = (int(min((x + w / 2) // cell, grid - 1)), int(min((y + h / 2) // cell, grid - 1)))
    by_image.setdefault(a["image_id"], []).append((*key, a["category_id"]))
  shared, total = {}, {}
  for boxes in by_image.values():
    cells = [b[:2] for b in boxes]
    for b in boxes:
      name = schema.CATEGORY_NAMES[b[2]]
      for k in (name, "all"):
        total[k] = total.get(k, 0) + 1
        shared[k] = shared.get(k, 0) + (cells.count(b[:2]) > 1)
  return {k: shared[k] / total[k] for k in total}


def cost(config, repeats: int) -> dict[str, float]:
  """Parameters, compiled FLOPs and seconds per frame of encode + decode at batch 1."""
  model = build_model(config)
  size, mc = config.model.image_size, config.model
  image = jnp.zeros((1, size, size, 3), jnp.uint8)
  tracks = empty_tracks(1, mc.num_slots, mc.d_model)
  params = model.init(jax.random.key(0), image, tracks)

  def forward(params, image):
    memory = model.apply(params, image, method=MOTR.encode)
    return model.apply(params, memory, tracks, jnp.ones(1), method=MOTR.decode)

  compiled = jax.jit(forward).lower(params, image).compile()
  analysis = compiled.cost_analysis()
  analysis = analysis[0] if isinstance(analysis, list) else analysis
  jax.block_until_ready(compiled(params, image))
  start = time.perf_counter()
  for _ in range(repeats):
    jax.block_until_ready(compiled(params, image))
  return {"params": sum(x.size for x in jax.tree.leaves(params)), "gflops": analysis["flops"] / 1e9,
          "ms": 1e3 * (time.perf_counter() - start) / repeats}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--config", default="configs/cpu.py")
  parser.add_argument("--coco", nargs="*", default=[], help="challenge COCO files to check")
  parser.add_argument("--repeats", type=int, default=20)
  args = parser.parse_args()
  module = importlib.import_module(args.config.removesuffix(".py").replace("/", "."))
  base = module.get_config()
  size = base.model.image_size
  cocos = {path: schema.load_coco(path) for path in args.coco}
  print(f"| stride | grid | nut (45 px) in cells | params | GFLOP/frame | ms/frame | "
        + " | ".join(f"centre cell shared: {os.path.basename(p)} (bolt/nut/all)" for p in cocos) + " |")
  print("|---:|---:|---:|---:|---:|---:|" + "---:|" * len(cocos))
  for stride in (16, 32):
    config = module.get_config()
    if stride == 32:
      config.model.backbone_widths = tuple(base.model.backbone_widths) + (STRIDE32_EXTRA_WIDTH,)
      config.model.backbone_blocks = tuple(base.model.backbone_blocks) + (1,)
    assert 2**len(config.model.backbone_widths) == stride
    c = cost(config, args.repeats)
    nut_cells = 45 * size / schema.WIDTH / stride
    shares = [collisions(coco, size, stride) for coco in cocos.values()]
    print(f"| {stride} | {size // stride}x{size // stride} | {nut_cells:.2f} | {c['params'] / 1e6:.2f} M | "
          f"{c['gflops']:.2f} | {c['ms']:.1f} | "
          + " | ".join(f"{s.get('bolt', 0):.3f}/{s.get('nut', 0):.3f}/{s['all']:.3f}" for s in shares)
          + " |", flush=True)


if __name__ == "__main__":
  main()
