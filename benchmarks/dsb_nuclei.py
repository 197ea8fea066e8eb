"""How good after how many seconds: train through the CLI on the top half of the DSB2018 nuclei
image for several time budgets, predict the bottom half, report instance AP and speed.

    python benchmarks/dsb_nuclei.py [--budgets 30 60 120] [--preset fast]

The image and its 125 hand-drawn nuclei ship in resources/ (from the stardist wheel,
BSD-3-Clause). Train on rows 0-255, score rows 256-511; the Otsu + distance-watershed
baseline is computed on the same split in the same run.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile
from common import machine, otsu_watershed, run_cli, save

from napari_unet.functionals.metrics import instance_scores
from napari_unet.io.resources import resource_path
from napari_unet.nn.segmenter import Segmenter

THRESHOLDS = (0.5, 0.7, 0.9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", type=float, nargs="+", default=[30, 60, 120])
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more `napari-unet train` options")
    args = parser.parse_args()

    image = tifffile.imread(resource_path("nuclei_dsb2018_image.tif"))
    truth = tifffile.imread(resource_path("nuclei_dsb2018_instances.tif"))
    rows = []
    baseline = instance_scores([truth[256:]], [otsu_watershed(image[256:])], THRESHOLDS)
    rows.append({"method": "Otsu + distance watershed", "seconds": 0, **_ap(baseline)})
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        tifffile.imwrite(tmp / "train.tif", image[:256])
        tifffile.imwrite(tmp / "train_labels.tif", truth[:256])
        tifffile.imwrite(tmp / "test.tif", image[256:])
        for budget in args.budgets:
            model = tmp / f"model_{budget:g}.pt"
            run_cli("train", "--image", str(tmp / "train.tif"), "--instances", str(tmp / "train_labels.tif"),
                    "--out", str(model), "--seconds", f"{budget:g}", "--preset", args.preset, *args.extra)
            run_cli("predict", "--model", str(model), "--image", str(tmp / "test.tif"),
                    "--instances", str(tmp / "pred.tif"), "--overwrite")
            pred = tifffile.imread(tmp / "pred.tif")
            scores = instance_scores([truth[256:]], [pred], THRESHOLDS)
            segmenter = Segmenter.load(model)
            run = segmenter.history[-1]
            cfg = run["config"]
            train_pps = run["steps"] * cfg["batch_size"] * cfg["patch_size"] ** 2 / run["seconds"]
            rows.append({
                "method": f"napari-unet {args.preset}, {budget:g} s",
                "seconds": budget,
                "steps": run["steps"],
                "train_mpx_per_s": train_pps / 1e6,
                "infer_mpx_per_s": _inference_speed(segmenter),
                **_ap(scores),
            })
            print(_row(rows[-1]), flush=True)
    print()
    print(f"machine: {machine()}")
    print("| method | AP@0.5 | AP@0.7 | AP@0.9 | steps | train Mpx/s | inference Mpx/s |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print(_row(row))
    print(f"results: {save('dsb_nuclei', {'rows': rows, 'preset': args.preset})}")


def _ap(scores) -> dict:
    return {f"ap{int(t * 100)}": round(scores.ap[t], 3) for t in THRESHOLDS}


def _inference_speed(segmenter: Segmenter, size: int = 2048) -> float:
    """Megapixels per second of `Segmenter.predict` (network + blending) on a size x size image."""
    image = np.random.default_rng(0).normal(size=(1, size, size)).astype(np.float32)
    segmenter.predict(image[:, :256, :256])  # warm-up
    start = time.perf_counter()
    segmenter.predict(image)
    return size * size / (time.perf_counter() - start) / 1e6


def _row(row: dict) -> str:
    def fmt(key, spec):
        return format(row[key], spec) if key in row else "-"

    return (f"| {row['method']} | {row['ap50']:.3f} | {row['ap70']:.3f} | {row['ap90']:.3f} | "
            f"{fmt('steps', 'd')} | {fmt('train_mpx_per_s', '.3f')} | {fmt('infer_mpx_per_s', '.2f')} |")


if __name__ == "__main__":
    main()
