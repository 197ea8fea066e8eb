"""Does tuning the instance settings on a model's own training annotations carry to new images?

    python benchmarks/instance_tuning.py --model M.pt --seed 0 [--unseen 60] [--threads 1]

M is a model trained on the K = 12 fluorescence `train` images of `--seed` (as
`generalisation.py --keep-models` saves it). Its outputs are computed once on those 12
images (at their own objects' diameter, as the tuning after training does) and on
`--unseen` other `train` images spread over object size (at `--diameter auto`, as the CLI
predicts); then every border evidence x threshold of a grid, and two seed prominences, are
scored on both (AP@0.5 and the DSB score), and `tune_instance_params` runs on the 12; the
settings it picks are scored on both too, with every `--min-confidence` in their place.
`val` is never read: this is where the grid and the rules are chosen.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from dataclasses import replace
from pathlib import Path

from common import result_of, save
from generalisation import DATA, index, load, pick_selection, pick_training, score

from napari_unet.functionals.data import TrainingImage
from napari_unet.functionals.instance_tuning import TuningCase, tune_instance_params
from napari_unet.functionals.instances import InstanceParams
from napari_unet.nn.instance_tuning import tuning_steps
from napari_unet.nn.segmenter import Segmenter

BORDER = (0.0, 0.3, 0.5, 0.7, 0.9)
THRESHOLD = (0.4, 0.5, 0.6)
# (border evidence, threshold, seed prominence): every border x threshold, and prominence at the defaults
GRID = [(b, t, 0.1) for b, t in itertools.product(BORDER, THRESHOLD)] + [(0.5, 0.5, 0.05), (0.5, 0.5, 0.2)]
MIN_CONFIDENCE = (0.0, 0.7, 0.8, 0.85, 0.9, 0.95)


def scores(segmenter, predictions, truths, params: InstanceParams) -> dict:
    """AP@0.5 and the DSB score of `params` on these outputs, as generalisation.py scores `val`."""
    found = score(truths, [segmenter.instances(p, params) for p in predictions], [0.0] * len(truths))
    return {"ap50": round(found["ap50"], 4), "dsb": round(found["dsb"], 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0, help="whose K training images the model learnt")
    parser.add_argument("--k", type=int, default=12)
    parser.add_argument("--unseen", type=int, default=60, help="other train images to score on")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--save-tuned", type=Path, help="also save the model with what tuning picked (for val)")
    parser.add_argument("--name", default="instance_tuning")
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    entries = index(args.data)
    train = pick_training(entries, "fluorescence", args.k, args.seed)
    unseen = pick_selection(entries, args.seed, args.k, args.unseen)
    segmenter = Segmenter.load(args.model)
    segmenter.instance_tuning = None  # score the grid from the defaults

    items = [TrainingImage.from_instances(*load(args.data, e), name=e.id) for e in train]
    tick = time.perf_counter()
    picked = result_of(tuning_steps(segmenter, items))
    tune_seconds = time.perf_counter() - tick
    print(f"tuning on the {len(items)} training images ({tune_seconds:.1f} s with their prediction): "
          f"{picked.describe()}", flush=True)
    if args.save_tuned:
        tuned = Segmenter.load(args.model)
        tuned.instance_tuning = picked
        tuned.save(args.save_tuned)

    own = [segmenter.predict(item.image, diameter=item.object_diameter()) for item in items]
    own_truth = [item.instances for item in items]
    tick, cpu = time.perf_counter(), time.process_time()
    tune_instance_params([TuningCase(p, t) for p, t in zip(own, own_truth)], segmenter.instances)
    search_seconds, search_cpu = time.perf_counter() - tick, time.process_time() - cpu
    other, other_truth = [], []
    for entry in unseen:
        image, labels = load(args.data, entry)
        other.append(segmenter.predict(image, diameter="auto"))
        other_truth.append(labels)
    print(f"predicted {len(other)} unseen train images; search alone {search_seconds:.1f} s "
          f"({search_cpu:.1f} s of CPU)", flush=True)

    rows = []
    for border, threshold, prominence in GRID:
        params = InstanceParams(threshold=threshold, seed_prominence=prominence, border_evidence=border)
        row = {"border_evidence": border, "threshold": threshold, "seed_prominence": prominence,
               "own": scores(segmenter, own, own_truth, params), "unseen": scores(segmenter, other, other_truth, params)}
        rows.append(row)
        print(f"border {border:.1f} threshold {threshold:.1f} prominence {prominence:.2f}: "
              f"own AP@0.5 {row['own']['ap50']:.3f} DSB {row['own']['dsb']:.3f} | "
              f"unseen AP@0.5 {row['unseen']['ap50']:.3f} DSB {row['unseen']['dsb']:.3f}", flush=True)
    at_picked = []
    for level in sorted({*MIN_CONFIDENCE, picked.params.min_confidence}):
        params = replace(picked.params, min_confidence=level)
        row = {"min_confidence": level, "picked": params == picked.params,
               "own": scores(segmenter, own, own_truth, params), "unseen": scores(segmenter, other, other_truth, params)}
        at_picked.append(row)
        print(f"picked settings, min confidence {level:.2f}{' (picked)' if row['picked'] else ''}: "
              f"own AP@0.5 {row['own']['ap50']:.3f} | unseen AP@0.5 {row['unseen']['ap50']:.3f} "
              f"DSB {row['unseen']['dsb']:.3f}", flush=True)
    path = save(args.name, {"command": " ".join(sys.argv), "model": str(args.model), "seed": args.seed,
                            "training_images": [e.id for e in train], "unseen_images": [e.id for e in unseen],
                            "picked": picked.to_dict(), "tune_seconds": round(tune_seconds, 2),
                            "search_seconds": round(search_seconds, 2), "search_cpu_seconds": round(search_cpu, 2),
                            "rows": rows, "picked_with_min_confidence": at_picked})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
