"""The loop a new user runs on the shipped nuclei sample: scribbles -> train -> predict -> accept -> retrain.

    python benchmarks/sample_loop.py [--seconds 30] [--start nuclei]

1. Train on the shipped scribbles for T s; score AP@0.5 on the whole image.
2. From that model, two second rounds of T s (warm start) on the region "Suggest next" shows first:
   a. the region's prediction corrected to the truth (each wrong object one correction), accepted;
   b. the region accepted as predicted, uncorrected (what a hurried user does).
Both must not score lower than round 1 (issue 9's targets).
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import numpy as np
import tifffile

sys.path.insert(0, str(Path(__file__).resolve().parent))

import annotation_effort as ae  # noqa: E402
from common import machine, save  # noqa: E402

from napari_unet.functionals.corrections import accept_region  # noqa: E402
from napari_unet.functionals.instances import InstanceParams  # noqa: E402
from napari_unet.functionals.metrics import average_precision  # noqa: E402
from napari_unet.functionals.suggestions import SuggestionWalk  # noqa: E402
from napari_unet.functionals.uncertainty import uncertainty_map  # noqa: E402
from napari_unet.io.resources import (  # noqa: E402
    NUCLEI_IMAGE,
    NUCLEI_INSTANCES,
    NUCLEI_SCRIBBLES,
    resource_path,
)
from napari_unet.nn.training import TrainConfig  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--start", default=None, help="shipped model name or file to start from (default: new)")
    p.add_argument("--steps", type=int, default=None,
                   help="steps per round instead of seconds (341 steps = 30 s on an idle 2-core CPU, BENCHMARKS.md)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (1 on a loaded machine)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    image = tifffile.imread(resource_path(NUCLEI_IMAGE)).astype(np.float32)[None]
    truth = tifffile.imread(resource_path(NUCLEI_INSTANCES)).astype(np.int32)
    scribbles = tifffile.imread(resource_path(NUCLEI_SCRIBBLES)).astype(np.uint8)
    sample = ae.Sample("nuclei", image, truth)
    config = TrainConfig(seconds=None if args.steps else args.seconds, steps=args.steps, seed=args.seed,
                         threads=args.threads)
    budget = f"{args.steps} steps" if args.steps else f"{args.seconds:g} s"
    params = InstanceParams()
    rows = []

    def score(segmenter, label: str, **extra) -> None:
        prediction = segmenter.predict(image)
        instances = segmenter.instances(prediction, params)
        ap = float(average_precision([truth], [instances], (0.5,))[0.5])
        semantic = prediction.semantic()
        one_class = float(max(np.mean(semantic == v) for v in np.unique(semantic)))
        rows.append({"run": label, "ap50": round(ap, 3), "largest_class_fraction": round(one_class, 3), **extra})
        print(f"| {label} | {ap:.3f} | {one_class:.2f} | {extra.get('corrected', '-')} |", flush=True)

    print(f"machine: {machine()}\n| run | AP@0.5 (whole image) | largest predicted class | corrected objects |\n"
          "|---|---|---|---|", flush=True)
    state = {"annotations": scribbles.copy(), "accepted": None}
    tic = time.perf_counter()
    first = ae.train(ae._load_start(args.start), [sample], [state], config)
    score(first, f"scribbles + {budget}", seconds=round(time.perf_counter() - tic, 1))

    prediction = first.predict(image)
    instances = first.instances(prediction, params)
    region = SuggestionWalk().next([("nuclei", (), uncertainty_map(prediction), scribbles > 0)])
    print(f"suggested region: rows {region.top}-{region.bottom}, cols {region.left}-{region.right}", flush=True)

    corrected = dict(state)
    corrected["annotations"], corrected["accepted"], effort = ae.correct_and_accept(
        scribbles.copy(), None, truth, instances, region.slices)
    second = ae.train(copy.deepcopy(first), [sample], [corrected], config)
    score(second, f"+ correct & accept the suggested region + {budget}", corrected=effort.objects)

    mask = np.zeros(truth.shape, bool)
    mask[region.slices] = True
    hurried = {"annotations": None, "accepted": None}
    hurried["accepted"], hurried["annotations"] = accept_region(None, scribbles.copy(), prediction.semantic(),
                                                                 instances, mask)
    third = ae.train(copy.deepcopy(first), [sample], [hurried], config)
    score(third, f"+ accept the region uncorrected + {budget}", corrected=0)
    print(f"results: {save('sample_loop', {'args': vars(args), 'region': list(region.key), 'rows': rows})}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
