"""Would the correction round's own instance tuning help if it tuned on fewer outlined objects?

    python benchmarks/tuning_floor.py --cache /tmp/b9/round1 --images ID ... --seeds 0 1 --floors 10 15 20

A correction round accepts ~10-25 whole objects, fewer than the 30 `functionals.instance_tuning`
needs (MIN_OBJECTS), so the model keeps the default instance settings. Per image and seed: the cached
first round (`sample_loop.py --cache`), the correction round of `sample_loop.py` (Suggest next walked
until >= 5 objects are corrected and accepted, + 341 steps), then AP@0.5 on the whole image with the
defaults and with the settings its tuning picks on the accepted objects when the floor is each of
`--floors` (only the floor changes; tuning itself is the shipped one). One JSON line per loop.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import annotation_effort as ae  # noqa: E402
import sample_loop  # noqa: E402
from common import result_of  # noqa: E402
from scribble_start import load  # noqa: E402

import napari_unet.functionals.instance_tuning as instance_tuning  # noqa: E402
from napari_unet.functionals.data import TrainingImage  # noqa: E402
from napari_unet.functionals.instances import InstanceParams  # noqa: E402
from napari_unet.functionals.metrics import average_precision  # noqa: E402
from napari_unet.functionals.uncertainty import uncertainty_map  # noqa: E402
from napari_unet.nn.instance_tuning import tuning_steps  # noqa: E402
from napari_unet.nn.segmenter import Segmenter  # noqa: E402
from napari_unet.nn.training import TrainConfig  # noqa: E402


def _tuned(segmenter: Segmenter, item: TrainingImage, floor: int) -> InstanceParams:
    shipped, instance_tuning.MIN_OBJECTS = instance_tuning.MIN_OBJECTS, floor
    try:
        return result_of(tuning_steps(segmenter, [item])).params
    finally:
        instance_tuning.MIN_OBJECTS = shipped


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cache", type=Path, required=True, help="first rounds kept by sample_loop.py --cache")
    p.add_argument("--images", nargs="+", required=True)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--floors", type=int, nargs="+", default=[10, 15, 20])
    p.add_argument("--steps", type=int, default=341)
    args = p.parse_args(argv)
    for name in args.images:
        image, truth, scribbles = load(name)
        for seed in args.seeds:
            first = Segmenter.load(args.cache / f"{name}_nuclei_{args.steps}steps_seed{seed}.pt")
            prediction = first.predict(image)
            instances = first.instances(prediction, InstanceParams())
            ap = lambda labels: round(float(average_precision([truth], [labels], (0.5,))[0.5]), 3)  # noqa: E731
            row = {"image": name, "seed": seed, "scribbles": ap(instances)}
            annotations, accepted, corrected, _ = sample_loop.correct_suggested(
                scribbles, truth, instances, uncertainty_map(prediction), 5, name)
            state = {"annotations": annotations, "accepted": accepted}
            config = TrainConfig(steps=args.steps, seed=seed, threads=1)
            second, _ = ae.train(copy.deepcopy(first), [ae.Sample(name, image, truth)], [state], config)
            after = second.predict(image)
            item = TrainingImage.from_annotations(image, annotations, accepted, name=name)
            row.update(corrected=corrected, defaults=ap(second.instances(after, InstanceParams())),
                       own=ap(second.instances(after)), tuning=second.instance_tuning.describe())
            for floor in args.floors:
                params = _tuned(second, item, floor)
                row[f"floor{floor}"] = ap(second.instances(after, params))
                row[f"floor{floor}_params"] = params.to_dict()
            print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
