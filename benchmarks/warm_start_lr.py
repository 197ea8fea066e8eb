"""Choose the warm-start learning rate on `train` images only, with a start model that has not seen them.

    python benchmarks/warm_start_lr.py --start-steps 3000 --rates 3e-3 1e-3 3e-4 --seeds 0 --threads 1

The shipped `nuclei` model learnt from every fluorescence `train` image, so fine-tuning it and
scoring on other `train` images would score images it knows. Instead the fluorescence `train`
split is cut in two halves (fixed shuffle): a "nuclei-like" start model learns half A
(`--start-steps`, the default recipe; saved to `--start` and reused when that file exists);
from half B, `--select` images spread over object size are the selection set and each seed
draws K = 12 fine-tuning images from the rest. Each rate fine-tunes for `--steps` and is scored
like generalisation.py (AP@0.5/0.7/0.9, DSB score, terciles, `--diameter auto`). `val` is never used.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from common import machine, run_training, save
from generalisation import DATA, Entry, _line, index, load, score, train_and_predict


def halves(entries: list[Entry]) -> tuple[list[Entry], list[Entry]]:
    """Fluorescence `train` images in two fixed halves: A for the start model, B for fine-tuning and selection."""
    pool = [e for e in entries if e.split == "train" and e.modality == "fluorescence"]
    order = np.random.default_rng(20261126).permutation(len(pool))
    half = len(pool) // 2
    return [pool[i] for i in order[:half]], [pool[i] for i in order[half:]]


def spread(pool: list[Entry], n: int) -> list[Entry]:
    """`n` images spread evenly over object size (as generalisation.py picks a val subset)."""
    ranked = sorted(pool, key=lambda e: e.median_area)
    picks = np.unique(np.linspace(0, len(ranked) - 1, n).round().astype(int))
    return [ranked[i] for i in picks]


def train_start(data: Path, entries: list[Entry], steps: int, threads: int | None, out: Path) -> None:
    from napari_unet.functionals.data import TrainingImage
    from napari_unet.nn.training import TrainConfig, Trainer

    items = [TrainingImage.from_instances(*load(data, e), name=e.id) for e in entries]
    config = TrainConfig(steps=steps, seed=0, threads=threads, validation_fraction=0.0)
    tick = time.perf_counter()
    segmenter = run_training(Trainer(items, config, class_names=["background", "nucleus"]), 500, "start model: ")
    out.parent.mkdir(parents=True, exist_ok=True)
    segmenter.save(out)
    print(f"start model: {steps} steps on {len(items)} images in {time.perf_counter() - tick:.0f} s -> {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", type=Path, default=Path("results/warm_start_half_a.pt"),
                        help="start model checkpoint (trained on half A when missing)")
    parser.add_argument("--start-steps", type=int, default=3000)
    parser.add_argument("--rates", type=float, nargs="+", default=[3e-3, 1e-3, 3e-4])
    parser.add_argument("--no-baseline", action="store_true", help="skip the start model's own (0 steps) row")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--steps", type=int, default=1347, help="fine-tuning steps (120 quiet seconds)")
    parser.add_argument("--k", type=int, default=12)
    parser.add_argument("--select", type=int, default=30, help="selection images from half B")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--name", default="warm_start_lr")
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args()
    entries = index(args.data)
    half_a, half_b = halves(entries)
    if not args.start.is_file():
        train_start(args.data, half_a, args.start_steps, args.threads, args.start)
    selection = spread(half_b, args.select)
    chosen = {e.id for e in selection}
    pool = [e for e in half_b if e.id not in chosen]
    truths = [load(args.data, e)[1] for e in selection]
    areas = [e.median_area for e in selection]
    common = {"data": str(args.data), "val": [e.id for e in selection], "threads": args.threads,
              "diameters": ["auto"], "start": str(args.start)}
    header = {"command": " ".join(sys.argv), "start": str(args.start), "half_a": len(half_a),
              "selection_images": len(selection), "machine": machine(args.threads)}
    rows = []
    jobs = [] if args.no_baseline else [("start model, no fine-tuning", 0, None, {"train": [], "steps": 0, "seed": 0})]
    for seed in args.seeds:
        rng = np.random.default_rng(seed)
        train = [pool[i].id for i in rng.choice(len(pool), size=args.k, replace=False)]
        for rate in args.rates:
            jobs.append((f"fine-tuned, lr {rate:g}", seed, rate,
                         {"train": train, "steps": args.steps, "seed": seed, "learning_rate": rate}))
    for label, seed, rate, job in jobs:
        result = train_and_predict({**common, **job})
        preds = result.pop("preds")["auto"]
        row = {"method": label, "learning_rate": rate, "budget_steps": job["steps"], "seed": seed, **result,
               **score(truths, preds, areas)}
        rows.append(row)
        print(_line(row), flush=True)
        path = save(args.name, {**header, "rows": rows})
    print(f"machine: {header['machine']}\nwrote {path}")


if __name__ == "__main__":
    main()
