"""Fine-tuning a pretrained model on a user's own images: images the pretrained model never saw.

    python benchmarks/adaptation.py --pretrained nuclei --k 12 --steps 1347 --seeds 0 1 2 --threads 1

`generalisation.py --pretrained nuclei --steps 1347` fine-tunes on 12 `train` images, which the shipped
models were trained on: it measures drift, not adaptation. Here the user's K images are drawn (per seed)
from the `val` split, which the shipped models never saw, and the model is scored on the other `val`
images of the modality, before and after fine-tuning, on the same images. Prints a table, writes
benchmarks/results/NAME.json after every seed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from common import machine, overrides, save
from generalisation import DATA, index, load, pick_validation, score, train_and_predict


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pretrained", default="nuclei", help="shipped model name or checkpoint path")
    parser.add_argument("--modality", default="fluorescence", choices=["fluorescence", "colour"])
    parser.add_argument("--k", type=int, default=12, help="the user's images, drawn from val")
    parser.add_argument("--steps", type=int, default=1347)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("--workers", type=int, default=1, help="prediction processes")
    parser.add_argument("--val", type=int, help="use this many val images, spread over object size (a smoke run)")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                        help="TrainConfig fields for the fine-tuning, e.g. tune_instances=0 learning_rate=3e-4")
    parser.add_argument("--name", default="adaptation")
    parser.add_argument("--data", default=str(DATA))
    args = parser.parse_args()

    from napari_unet.io.pretrained import model_path

    data = Path(args.data)
    start = args.pretrained if Path(args.pretrained).is_file() else str(model_path(args.pretrained))
    val = pick_validation(index(data), args.modality, args.val)
    truths = {e.id: load(data, e)[1] for e in val}
    common = {"data": str(data), "threads": args.threads, "diameters": ["auto"], "workers": args.workers,
              "start": start, "config": overrides(args.set)}
    before = train_and_predict({**common, "train": [], "val": [e.id for e in val], "steps": 0, "seed": 0})
    before = dict(zip((e.id for e in val), before["preds"]["auto"]))
    rows = []
    for seed in args.seeds:
        rng = np.random.default_rng(seed)
        own = {val[i].id for i in rng.choice(len(val), size=args.k, replace=False)}
        scored = [e for e in val if e.id not in own]
        areas = [e.median_area for e in scored]
        after = train_and_predict({**common, "train": sorted(own), "val": [e.id for e in scored],
                                   "steps": args.steps, "seed": seed})
        gt = [truths[e.id] for e in scored]
        row = {"seed": seed, "own_images": sorted(own), "scored_images": len(scored),
               "train_seconds": after["train_seconds"],
               "before": score(gt, [before[e.id] for e in scored], areas),
               "after": score(gt, after["preds"]["auto"], areas)}
        rows.append(row)
        print(f"seed {seed}: {len(scored)} val images, AP@0.5 {row['before']['ap50']:.3f} -> {row['after']['ap50']:.3f}"
              f"  DSB {row['before']['dsb']:.3f} -> {row['after']['dsb']:.3f}"
              f"  ({args.steps} steps on {args.k} of the val images, {after['train_seconds']:.0f} s)", flush=True)
        path = save(args.name, {"command": " ".join(sys.argv), "pretrained": args.pretrained, "k": args.k,
                                "steps": args.steps, "rows": rows})
    gains = [r["after"]["ap50"] - r["before"]["ap50"] for r in rows]
    print(f"mean AP@0.5 {np.mean([r['before']['ap50'] for r in rows]):.3f} -> "
          f"{np.mean([r['after']['ap50'] for r in rows]):.3f} (gain {min(gains):+.3f} to {max(gains):+.3f})")
    print(f"machine: {machine(args.threads)}\nwrote {path}")


if __name__ == "__main__":
    main()
