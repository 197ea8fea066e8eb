"""Scribbles + N training steps from a start model, scored (AP@0.5) on the scribbled image itself.

    python benchmarks/scribble_start.py --start nuclei --steps 341 --seeds 0 [--set learning_rate=0.0003 ...]

Images: the shipped nuclei sample with its scribbles, and DSB2018 fluorescence `val` images
scribbled by the recipe that drew the sample's (resources/make_scribbles.nuclei_scribbles), used
to choose the Trainer's warm-start behaviour without tuning on the sample. `--set KEY=VALUE`
overrides a TrainConfig field (numbers; 0/1 for switches); `--steps 0` scores the start model.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import tifffile

sys.path.insert(0, str(Path(__file__).resolve().parent))

import annotation_effort as ae
from common import machine, save, shared_data
from effort_samples import gray

from napari_unet.functionals.metrics import average_precision
from napari_unet.io.resources import (
    NUCLEI_IMAGE,
    NUCLEI_INSTANCES,
    NUCLEI_SCRIBBLES,
    resource_path,
)
from napari_unet.nn.training import TrainConfig
from resources.make_scribbles import nuclei_scribbles

# DSB2018 fluorescence val images with nuclei of the sample's size range (not the sample's own image)
TUNING = ["0287e7ee5b007c91", "3b3f516ebc9a16cf", "4327d27591871e9c"]


def load(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image (1, H, W), true instances, scribbles) of the sample or of a DSB2018 image."""
    if name == "sample":
        return (tifffile.imread(resource_path(NUCLEI_IMAGE)).astype(np.float32)[None],
                tifffile.imread(resource_path(NUCLEI_INSTANCES)).astype(np.int32),
                tifffile.imread(resource_path(NUCLEI_SCRIBBLES)).astype(np.uint8))
    root = shared_data("dsb2018-stage1-train")
    truth = tifffile.imread(root / "labels" / f"{name}.tif").astype(np.int32)
    return gray(tifffile.imread(root / "images" / f"{name}.tif")), truth, nuclei_scribbles(truth)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--start", default="nuclei", help="shipped model name or file; 'new' for a new model")
    p.add_argument("--steps", type=int, default=341)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--images", nargs="+", default=["sample", *TUNING])
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="TrainConfig overrides")
    p.add_argument("--name", default="")
    args = p.parse_args(argv)
    overrides = {key: float(value) for key, value in (kv.split("=", 1) for kv in args.set)}
    print(f"machine: {machine()}\nstart {args.start}, {args.steps} steps, {overrides or 'defaults'}", flush=True)
    scores: dict[str, list[float]] = {}
    for name in args.images:
        image, truth, scribbles = load(name)
        for seed in args.seeds:
            start = ae._load_start(None if args.start == "new" else args.start)
            tic = time.perf_counter()
            if args.steps:
                config = TrainConfig(steps=args.steps, seed=seed, threads=1, **overrides)
                state = {"annotations": scribbles.copy(), "accepted": None}
                start, _ = ae.train(start, [ae.Sample(name, image, truth)], [state], config)
            instances = start.instances(start.predict(image))
            scores.setdefault(name, []).append(float(average_precision([truth], [instances], (0.5,))[0.5]))
            print(f"{name} seed {seed}: AP@0.5 {scores[name][-1]:.3f} ({time.perf_counter() - tic:.0f} s)", flush=True)
    print("| image | AP@0.5 mean [range] |\n|---|---|")
    for name, values in scores.items():
        print(f"| {name} | {np.mean(values):.3f} [{min(values):.3f}-{max(values):.3f}] |")
    print(f"results: {save('scribble_start' + (f'_{args.name}' if args.name else ''), {'args': vars(args), 'scores': scores})}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
