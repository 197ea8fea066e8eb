"""Where a model's AP@0.5 goes on the DSB2018 `val` images: missed, split, merged, misshapen and false objects.

    cd benchmarks && python error_kinds.py --models nuclei DIR/new_model.pt --workers 2
    cd benchmarks && python error_kinds.py --models M.pt --diameter truth --val 30

Predicts every fluorescence `val` image (`--val N`: N spread over object size) with each model
at `--diameter` (`auto`, as the dock and the CLI; `truth`, each image's true median object
diameter) and sorts every unmatched object by the kind of mistake behind it
(`napari_unet.functionals.error_kinds`), in total, by object-size tercile, and for the images
holding the most false objects. Tells which remedy to try: a missed nucleus, one cut in two and
two fused into one all cost the same AP@0.5.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from common import machine, save
from generalisation import DATA, index, load, pick_validation, predict_in_processes

from napari_unet.functionals.error_kinds import ErrorKinds, error_kinds
from napari_unet.io.pretrained import resolve
from napari_unet.nn.segmenter import Segmenter

KINDS = ("matched", "missed", "split", "merged", "misshapen", "false", "on_objects")
WORST_SHOWN = 5


def kinds_per_image(model: str, names: list[str], diameter: str | float, workers: int) -> list[ErrorKinds]:
    entries = {e.id: e for e in index(DATA)}
    preds = predict_in_processes(Segmenter.load(model), DATA, names, diameter, workers)
    return [error_kinds(load(DATA, entries[name])[1], pred) for name, pred in zip(names, preds)]


def summary(per_image: list[ErrorKinds], names: list[str]) -> dict:
    """Totals, totals per object-size tercile (`names` sorted by object size), and the images with the most false objects."""
    total = sum(per_image, ErrorKinds())
    terciles = [sum((per_image[i] for i in part), ErrorKinds()) for part in np.array_split(np.arange(len(names)), 3)]
    worst = sorted(range(len(names)), key=lambda i: -per_image[i].false)[:WORST_SHOWN]
    return {
        "total": {**total.as_dict(), "ap50": total.ap50},
        "small_medium_large": [{**t.as_dict(), "ap50": t.ap50} for t in terciles],
        "most_false": [{"image": names[i], **per_image[i].as_dict()} for i in worst],
    }


def table(results: dict[str, dict]) -> str:
    lines = ["| model | part | AP@0.5 | " + " | ".join(KINDS) + " |", "|---|---|---|" + "---|" * len(KINDS)]
    for model, result in results.items():
        parts = [("all", result["total"])] + list(zip(("small", "medium", "large"), result["small_medium_large"]))
        for part, counts in parts:
            lines.append(f"| {model} | {part} | {counts['ap50']:.3f} | " + " | ".join(str(counts[k]) for k in KINDS) + " |")
        worst = ", ".join(f"{w['image'][:8]} ({w['false']})" for w in result["most_false"])
        lines.append(f"| {model} | most false objects | | {worst} |" + " |" * (len(KINDS) - 1))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["nuclei"], help="shipped model names or checkpoint files")
    parser.add_argument("--diameter", default="auto", help="auto, truth or pixels")
    parser.add_argument("--val", type=int, default=None, help="score this many val images, spread over object size")
    parser.add_argument("--workers", type=int, default=1, help="predicting processes, one torch thread each")
    parser.add_argument("--name", default="error_kinds", help="results file name (benchmarks/results/NAME.json)")
    args = parser.parse_args()
    diameter = args.diameter if args.diameter in ("auto", "truth") else float(args.diameter)
    names = [e.id for e in pick_validation(index(DATA), "fluorescence", args.val)]  # sorted by object size
    results = {Path(model).stem: summary(kinds_per_image(str(resolve(model)), names, diameter, args.workers), names)
               for model in args.models}
    print(f"machine: {machine(1)}; {len(names)} fluorescence val images, diameter {args.diameter}")
    print(table(results))
    print(f"results: {save(args.name, {'command': ' '.join(sys.argv), 'diameter': args.diameter, 'images': names, 'models': results})}")


if __name__ == "__main__":
    main()
