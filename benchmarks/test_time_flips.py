"""Do test-time flips pay back? AP and seconds per image with 1, 2, 4 and 8 network passes, on `train` images.

    python test_time_flips.py --model nuclei --threads 1 --workers 2
    python test_time_flips.py --train-seed 0 --steps 1347 --threads 1 --workers 2 --keep /tmp/s0.pt

The selection set is `--images` fluorescence images of the `train` split outside the K images
of `--train-seed` (spread evenly over object size), so the choice of N is made without `val`.
A new model (no `--model`) is first trained on those K images for `--steps` steps. Every
image is predicted with every N in turn by the same worker (the CLI default `--diameter
auto`), so the time ratio to N=1 is measured under the same load even on a shared machine.
Results: benchmarks/results/NAME.json.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from common import machine, run_training, save
from generalisation import (
    DATA,
    Entry,
    index,
    load,
    pick_selection,
    pick_training,
    score,
)

_WORKER: dict = {}


def _start(model: str, data: str, threads: int) -> None:
    import torch

    from napari_unet.nn.segmenter import Segmenter

    torch.set_num_threads(threads)
    _WORKER.update(segmenter=Segmenter.load(model), data=Path(data), entries={e.id: e for e in index(Path(data))})


def _predict_all(name: str, flips: list[int]) -> list[tuple[np.ndarray, float]]:
    """(instances, seconds) of one image for each number of passes, in turn."""
    segmenter, entry = _WORKER["segmenter"], _WORKER["entries"][name]
    image, _ = load(_WORKER["data"], entry)
    out = []
    for n in flips:
        tick = time.perf_counter()
        labels = segmenter.instances(segmenter.predict(image, diameter="auto", flips=n))
        out.append((labels, time.perf_counter() - tick))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="shipped model name or checkpoint path (default: train a new one)")
    parser.add_argument("--train-seed", type=int, default=0,
                        help="the seed whose K images are held out (and trained on)")
    parser.add_argument("--k", type=int, default=12)
    parser.add_argument("--steps", type=int, default=1347, help="training steps of the new model")
    parser.add_argument("--images", type=int, default=60, help="selection images")
    parser.add_argument("--flips", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (training and each worker)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--keep", type=Path, help="save the new model here")
    parser.add_argument("--name", default="test_time_flips")
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args()
    entries = index(args.data)
    selection = pick_selection(entries, args.train_seed, args.k, args.images)
    with tempfile.TemporaryDirectory() as tmp:
        if args.model:
            from napari_unet.io.pretrained import model_path

            model = args.model if Path(args.model).is_file() else str(model_path(args.model))
        else:
            model = str(args.keep or Path(tmp) / "model.pt")
            train_new(args, entries, model)
        with ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("spawn"), initializer=_start,
                                 initargs=(model, str(args.data), args.threads)) as pool:
            results = list(pool.map(_predict_all, [e.id for e in selection], [args.flips] * len(selection)))
    truths = [load(args.data, e)[1] for e in selection]
    areas = [e.median_area for e in selection]
    rows = []
    for i, n in enumerate(args.flips):
        seconds = [r[i][1] for r in results]
        ratio = [s / r[0][1] for s, r in zip(seconds, results)]
        preds = [r[i][0] for r in results]
        rows.append({"flips": n, "seconds_per_image": float(np.mean(seconds)),
                     "time_ratio_to_first": float(np.median(ratio)), **score(truths, preds, areas)})
        r = rows[-1]
        print(f"flips {n}: AP@0.5 {r['ap50']:.3f}  AP@0.7 {r['ap70']:.3f}  DSB {r['dsb']:.3f}  "
              f"terciles {'/'.join(f'{v:.2f}' for v in r['ap50_small_medium_large'])}  "
              f"{r['seconds_per_image']:.2f} s/image (x{r['time_ratio_to_first']:.2f})", flush=True)
    path = save(args.name, {"command": " ".join(sys.argv), "model": args.model or f"new, seed {args.train_seed}, "
                            f"{args.steps} steps", "images": [e.id for e in selection], "rows": rows})
    print(f"machine: {machine(args.threads)}\nwrote {path}")


def train_new(args, entries: list[Entry], path: str) -> None:
    from napari_unet.functionals.data import TrainingImage
    from napari_unet.nn.training import TrainConfig, Trainer

    items = []
    for entry in pick_training(entries, "fluorescence", args.k, args.train_seed):
        image, labels = load(args.data, entry)
        items.append(TrainingImage.from_instances(image, labels, name=entry.id))
    config = TrainConfig(steps=args.steps, seed=args.train_seed, threads=args.threads)
    segmenter = run_training(Trainer(items, config), log_every=200, label="train: ")
    segmenter.save(path)


if __name__ == "__main__":
    main()
