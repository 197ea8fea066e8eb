"""Which instance settings suit a shipped model? Chosen on `train` images, confirmed on `val`.

    cd benchmarks && python pretrained_instance_grid.py --model nuclei --train 100 --workers 2

A shipped model's instance settings are the package defaults unless its checkpoint stores
others. This predicts `--train` `train` images of `--modality` (spread over object size) and
every `val` image of it once, at `--diameter auto` as the CLI and the dock do, then
repeats only the instance step over a grid of settings (`--grid`: `coarse`, then `fine`
around its pick; `confidence`: the model's stored settings at each min confidence). The settings are picked by
AP@0.5 on the `train` images; `val` is printed beside them so that the pick can be checked,
never used to make it. The model learnt from those `train` images, so its outputs there are
surer than on new images: that is why the pick must hold on `val` before it is shipped.
`--ship` stores the pick in the shipped checkpoint and its model card (`--ship-from RESULTS`:
from a saved run): the CLI, the dock's sliders and tuning after a fine-tune start from it.

    python pretrained_instance_grid.py --model M.pt --outside-seed 0

does the same for a new model trained on seed 0's 12 `train` images (`generalisation.py
--keep-models`), picking on `train` images outside those 12: what the package defaults,
which every new model starts from, should be.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

from common import machine, save
from generalisation import (
    DATA,
    THRESHOLDS,
    index,
    load,
    pick_training,
    pick_validation,
    score_counts,
    spread_over_size,
)

from napari_unet.functionals.instances import InstanceParams
from napari_unet.functionals.metrics import instance_counts

# The coarse and fine picks were made before min confidence existed, every object kept: those grids and the defaults
# they are compared with keep them that way, so a rerun reproduces them; the `confidence` grid then weighs min
# confidence on an axis of its own, from the stored pick.
EVERY_OBJECT = {"min_confidence": 0.0}
DEFAULTS = InstanceParams(**EVERY_OBJECT)
GRIDS = {
    # threshold x seed prominence x border evidence, and a few seed spacings and smallest sizes at the defaults
    "coarse": [InstanceParams(threshold=t, seed_prominence=p, border_evidence=b, **EVERY_OBJECT)
               for t, p, b in itertools.product((0.4, 0.5, 0.6), (0.05, 0.1, 0.2), (0.3, 0.5, 0.7, 0.9))]
    + [InstanceParams(seed_spacing=s, **EVERY_OBJECT) for s in (4, 6)]
    + [InstanceParams(min_size=m, **EVERY_OBJECT) for m in (0, 30)],
    # around the coarse grid's picks (threshold, prominence, border: `nuclei` 0.4, 0.2, 0.7; `nuclei-stained`
    # 0.5, 0.2, 0.5), past the edges they reached
    "fine": [InstanceParams(threshold=t, seed_prominence=p, border_evidence=b, min_size=m, **EVERY_OBJECT)
             for t, p, b, m in itertools.product((0.3, 0.4, 0.5), (0.2, 0.3, 0.4), (0.5, 0.7), (10, 20, 30))]
    + [DEFAULTS],
}
# min confidence on an axis of its own: the model's stored settings (its pick) at each level, and the defaults
CONFIDENCE_LEVELS = (0.0, 0.3, 0.5, 0.6, 0.7, 0.8, 0.85)


def grid_settings(grid: str, stored: InstanceParams) -> list[InstanceParams]:
    """The settings of `grid`; "confidence" is built from the model's `stored` settings."""
    if grid != "confidence":
        return GRIDS[grid]
    return [replace(stored, min_confidence=level) for level in CONFIDENCE_LEVELS] + [DEFAULTS]


_WORKER: dict = {}


def _start_worker(model: str, data: str, diameter: str | float, grid: str) -> None:
    import torch

    from napari_unet.io.pretrained import resolve
    from napari_unet.nn.segmenter import Segmenter

    torch.set_num_threads(1)
    segmenter = Segmenter.load(resolve(model))
    _WORKER.update(segmenter=segmenter, data=Path(data), diameter=diameter,
                   grid=grid_settings(grid, segmenter.instance_params), entries={e.id: e for e in index(Path(data))})


def _counts_of_one_image(name: str) -> list[dict]:
    """(TP, FP, FN) at the DSB thresholds for every setting of the grid, on one image."""
    segmenter = _WORKER["segmenter"]
    image, labels = load(_WORKER["data"], _WORKER["entries"][name])
    prediction = segmenter.predict(image, diameter=_WORKER["diameter"])
    return [instance_counts(labels, segmenter.instances(prediction, params), THRESHOLDS) for params in _WORKER["grid"]]


def grid_scores(model: str, data: Path, entries: list, diameter: str | float, grid: str,
                workers: int) -> tuple[list, int]:
    """Each setting's `score` over these images, and how many true objects they hold."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_start_worker, initargs=(model, str(data), diameter, grid)) as pool:
        per_image = list(pool.map(_counts_of_one_image, [e.id for e in entries]))
    areas = [e.median_area for e in entries]
    objects = sum(image[0][0.5][0] + image[0][0.5][2] for image in per_image)  # TP + FN: every true object
    return [score_counts([image[i] for image in per_image], areas) for i in range(len(per_image[0]))], objects


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="nuclei", help="a shipped model's name or a checkpoint file")
    parser.add_argument("--modality", default="fluorescence", choices=("fluorescence", "colour"))
    parser.add_argument("--train", type=int, default=100, help="train images to pick on")
    parser.add_argument("--outside-seed", type=int,
                        help="a model trained on the K = 12 `train` images of this seed: pick on other images")
    parser.add_argument("--val", type=int, help="val images to check on (default: all)")
    parser.add_argument("--diameter", default="auto", type=lambda text: text if text == "auto" else float(text),
                        help="auto, or the objects' diameter in pixels for every image")
    parser.add_argument("--grid", choices=sorted([*GRIDS, "confidence"]), default="coarse")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--ship", action="store_true", help="store the pick in the shipped model named --model")
    parser.add_argument("--ship-from", type=Path, help="store the pick of this saved run in --model; predict nothing")
    parser.add_argument("--name", default="pretrained_instance_grid")
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args()
    if args.ship_from:
        return ship(args.model, args.ship_from)
    entries = index(args.data)
    held = [] if args.outside_seed is None else pick_training(entries, args.modality, 12, args.outside_seed)
    held_ids = {e.id for e in held}  # a new model's own 12 images
    train = [e for e in entries if e.split == "train" and e.modality == args.modality and e.id not in held_ids]
    splits = {"train": spread_over_size(train, args.train),
              "val": pick_validation(entries, args.modality, args.val)}
    tick = time.perf_counter()
    found, objects = {}, {}
    for split, chosen in splits.items():
        found[split], objects[split] = grid_scores(args.model, args.data, chosen, args.diameter, args.grid,
                                                   args.workers)
    from napari_unet.io.pretrained import resolve
    from napari_unet.nn.segmenter import Segmenter

    grid = grid_settings(args.grid, Segmenter.load(resolve(args.model)).instance_params)
    rows = [{"params": asdict(params), "train": found["train"][i], "val": found["val"][i]}
            for i, params in enumerate(grid)]
    best = max(range(len(grid)), key=lambda i: found["train"][i]["ap50"])
    default = grid.index(DEFAULTS)
    print("| threshold | prominence | border | spacing | min size | min confidence | train AP@0.5 | val AP@0.5 | val DSB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for i, row in sorted(enumerate(rows), key=lambda r: -r[1]["train"]["ap50"]):
        p, mark = row["params"], " (picked)" if i == best else " (defaults)" if i == default else ""
        print(f"| {p['threshold']} | {p['seed_prominence']} | {p['border_evidence']} | {p['seed_spacing']} | "
              f"{p['min_size']} | {p['min_confidence']} | {row['train']['ap50']:.3f}{mark} | {row['val']['ap50']:.3f} | "
              f"{row['val']['dsb']:.3f} |")
    path = save(args.name, {"command": " ".join(sys.argv), "machine": machine(1), "model": args.model,
                            "diameter": args.diameter, "grid": args.grid,
                            "seconds": round(time.perf_counter() - tick, 1),
                            "images": {s: [e.id for e in chosen] for s, chosen in splits.items()},
                            "objects": objects, "picked": rows[best]["params"], "rows": rows})
    print(f"picked on train: {rows[best]['params']}; wrote {path}")
    if args.ship:
        ship(args.model, path)


def ship(name: str, results: Path) -> None:
    """Store the pick of a saved run in the shipped model's checkpoint (as tuning after training
    would) and in its model card."""
    from napari_unet.functionals.instance_tuning import InstanceTuning
    from napari_unet.io.pretrained import card_path, checkpoint_path
    from napari_unet.nn.segmenter import Segmenter

    payload = json.loads(results.read_text())
    rows = payload["rows"]
    picked = max(rows, key=lambda row: row["train"]["ap50"])
    defaults = next(row for row in rows if row["params"] == asdict(DEFAULTS))
    params, images = InstanceParams(**picked["params"]), len(payload["images"]["train"])
    source = f"{images} of the DSB2018 images it learnt from"
    segmenter = Segmenter.load(checkpoint_path(name))
    segmenter.instance_tuning = InstanceTuning(params, True, round(picked["train"]["ap50"], 4),
                                               round(defaults["train"]["ap50"], 4), payload["objects"]["train"],
                                               images, source=source)
    segmenter.save(checkpoint_path(name))
    card = json.loads(card_path(name).read_text())
    card["instance_settings"] = {
        **asdict(params), "picked_on": f"{source} (`train` split)", "train_ap50": round(picked["train"]["ap50"], 3),
        "train_ap50_defaults": round(defaults["train"]["ap50"], 3), "val_ap50": round(picked["val"]["ap50"], 3),
        "val_ap50_defaults": round(defaults["val"]["ap50"], 3),
        "command": f"cd benchmarks && python {payload['command']}", "results": f"benchmarks/results/{results.name}",
    }
    card_path(name).write_text(json.dumps(card, indent=2) + "\n")
    print(f"stored in {checkpoint_path(name)} and {card_path(name)}")


if __name__ == "__main__":
    main()
