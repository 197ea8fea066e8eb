"""The loop a new user runs on the shipped nuclei sample: scribbles -> train -> predict -> accept -> retrain.

    python benchmarks/sample_loop.py [--seconds 30 | --steps 341] [--start nuclei] [--seeds 0 1 2]

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
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="one loop per seed; the table gives mean [range]")
    p.add_argument("--learning-rate", type=float, default=None,
                   help="peak rate of every round (default: the trainer's, 1e-3 for these warm starts)")
    p.add_argument("--no-uncorrected", action="store_true", help="skip the round that accepts the region uncorrected")
    p.add_argument("--name", default="", help="suffix of the result file")
    args = p.parse_args(argv)
    image = tifffile.imread(resource_path(NUCLEI_IMAGE)).astype(np.float32)[None]
    truth = tifffile.imread(resource_path(NUCLEI_INSTANCES)).astype(np.int32)
    scribbles = tifffile.imread(resource_path(NUCLEI_SCRIBBLES)).astype(np.uint8)
    budget = f"{args.steps} steps" if args.steps else f"{args.seconds:g} s"
    print(f"machine: {machine()}", flush=True)
    runs = []
    if args.start:
        start = ae._load_start(args.start)
        runs.append({"run": f"{args.start}, no training", **_score(start, image, truth)})
        print(f"{runs[-1]['run']}: AP@0.5 {runs[-1]['ap50']:.3f}", flush=True)
    for seed in args.seeds:
        config = TrainConfig(seconds=None if args.steps else args.seconds, steps=args.steps, seed=seed,
                             threads=args.threads, learning_rate=args.learning_rate)
        for row in _loop(ae._load_start(args.start), image, truth, scribbles, config, budget,
                         uncorrected=not args.no_uncorrected):
            runs.append({"seed": seed, **row})
            print(f"seed {seed} | {row['run']} | {row['ap50']:.3f} | {row['largest_class_fraction']:.2f} | "
                  f"{row.get('corrected', '-')} |", flush=True)
    print("\n| run | AP@0.5 (whole image), mean [range] over seeds | largest predicted class | corrected objects |\n"
          "|---|---|---|---|")
    for label in dict.fromkeys(r["run"] for r in runs):
        rows = [r for r in runs if r["run"] == label]
        ap = [r["ap50"] for r in rows]
        objects = sorted({r["corrected"] for r in rows if "corrected" in r})
        print(f"| {label} | {np.mean(ap):.3f} [{min(ap):.3f}-{max(ap):.3f}] | "
              f"{np.mean([r['largest_class_fraction'] for r in rows]):.2f} | {'/'.join(map(str, objects)) or '-'} |")
    name = "sample_loop" + (f"_{args.name}" if args.name else "")
    print(f"results: {save(name, {'args': vars(args), 'rows': runs})}")
    return 0


def _score(segmenter, image, truth, params: InstanceParams | None = None) -> dict:
    prediction = segmenter.predict(image)
    instances = segmenter.instances(prediction, params or InstanceParams())
    ap = float(average_precision([truth], [instances], (0.5,))[0.5])
    semantic = prediction.semantic()
    one_class = float(max(np.mean(semantic == v) for v in np.unique(semantic)))
    return {"ap50": round(ap, 3), "largest_class_fraction": round(one_class, 3)}


def _loop(start, image, truth, scribbles, config: TrainConfig, budget: str, *, uncorrected: bool = True):
    """Round 1 on the scribbles, then the second rounds from its model; yields one row per model."""
    sample = ae.Sample("nuclei", image, truth)
    params = InstanceParams()
    tic = time.perf_counter()
    first = ae.train(start, [sample], [{"annotations": scribbles.copy(), "accepted": None}], config)
    yield {"run": f"scribbles + {budget}", "seconds": round(time.perf_counter() - tic, 1),
           **_score(first, image, truth, params)}

    prediction = first.predict(image)
    instances = first.instances(prediction, params)
    region = SuggestionWalk().next([("nuclei", (), uncertainty_map(prediction), scribbles > 0)])
    annotations, accepted, effort = ae.correct_and_accept(scribbles.copy(), None, truth, instances, region.slices)
    second = ae.train(copy.deepcopy(first), [sample], [{"annotations": annotations, "accepted": accepted}], config)
    yield {"run": f"+ correct & accept the suggested region + {budget}", "corrected": effort.objects,
           "region": list(region.key), **_score(second, image, truth, params)}
    if not uncorrected:
        return
    mask = np.zeros(truth.shape, bool)
    mask[region.slices] = True
    hurried = {}
    hurried["accepted"], hurried["annotations"] = accept_region(None, scribbles.copy(), prediction.semantic(),
                                                                 instances, mask)
    third = ae.train(copy.deepcopy(first), [sample], [hurried], config)
    yield {"run": f"+ accept the region uncorrected + {budget}", "corrected": 0, **_score(third, image, truth, params)}


if __name__ == "__main__":
    raise SystemExit(main())
