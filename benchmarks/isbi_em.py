"""Generalisation to unseen images: train on 10 ISBI 2012 EM sections, score the other 20.

    python benchmarks/isbi_em.py [--seconds 120 | --steps 1347] [--preset fast] [--flips 1 8] [--name isbi_em]

Cells (interior, label 255) are the objects, membranes the background. Reports membrane
IoU and cell-instance AP@0.5 beside an Otsu + connected-components baseline computed
in the same run, and the same model's cells with the default instance settings instead of
those tuned on the 10 training sections after training. Data: ../shared/data/isbi2012-membranes
(see its README).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import tifffile
from common import machine, run_cli, save, shared_data
from scipy import ndimage
from skimage.filters import gaussian, threshold_otsu
from skimage.io import imread

from napari_unet.functionals.metrics import instance_scores, semantic_iou

DATA = shared_data("isbi2012-membranes")
# InstanceParams' defaults given explicitly: the same model's objects without its tuned settings
DEFAULT_SETTINGS = ["--threshold", "0.5", "--min-size", "10", "--seed-spacing", "2", "--seed-prominence", "0.1",
                    "--border-evidence", "0.5"]


def load(index: int) -> tuple[np.ndarray, np.ndarray]:
    image = imread(DATA / f"{index}_image.png")
    interior = imread(DATA / f"{index}_labels.png") > 127
    return image, interior


def cells(interior: np.ndarray) -> np.ndarray:
    return ndimage.label(interior)[0]


def otsu_cells(image: np.ndarray) -> np.ndarray:
    smooth = gaussian(image.astype(np.float32), 1.0, preserve_range=True)
    return ndimage.label(smooth > threshold_otsu(smooth))[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--steps", type=int, help="budget in steps instead (reproducible on a shared machine)")
    parser.add_argument("--name", default="isbi_em", help="results file name")
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--flips", type=int, nargs="+", default=[1], choices=[1, 2, 4, 8],
                        help="test-time flips at prediction (predict --flips), each scored (default 1: off)")
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args()
    train_ids, test_ids = range(10), range(10, 30)
    truths = [load(i) for i in test_ids]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        train_args = []
        for i in train_ids:
            image, interior = load(i)
            tifffile.imwrite(tmp / f"{i}.tif", image)
            tifffile.imwrite(tmp / f"{i}_cells.tif", cells(interior).astype(np.uint16))
            train_args += ["--image", str(tmp / f"{i}.tif"), "--instances", str(tmp / f"{i}_cells.tif")]
        model = tmp / "model.pt"
        budget = ["--steps", str(args.steps)] if args.steps else ["--seconds", f"{args.seconds:g}"]
        trained = run_cli("train", *train_args, "--out", str(model), *budget,
                          "--preset", args.preset, "--classes", "membrane", "cell")
        print(trained.stdout.strip())  # with what tuning on the 10 sections picked
        predicted = {}  # flips: (instances, semantic) of each test section, with the model's instance settings
        defaults = []  # the first flips' instances with the default settings instead (not tuned)
        for flips in args.flips:
            preds, semantics = [], []
            for i, (image, _) in zip(test_ids, truths):
                tifffile.imwrite(tmp / "test.tif", image)
                run_cli("predict", "--model", str(model), "--image", str(tmp / "test.tif"), "--overwrite",
                        "--instances", str(tmp / "inst.tif"), "--semantic", str(tmp / "sem.tif"), "--flips", str(flips))
                preds.append(tifffile.imread(tmp / "inst.tif"))
                semantics.append(tifffile.imread(tmp / "sem.tif"))
                if not predicted:
                    run_cli("predict", "--model", str(model), "--image", str(tmp / "test.tif"), "--overwrite",
                            "--instances", str(tmp / "inst.tif"), "--flips", str(flips), *DEFAULT_SETTINGS)
                    defaults.append(tifffile.imread(tmp / "inst.tif"))
            predicted[flips] = preds, semantics
    truth_cells = [cells(interior) for _, interior in truths]
    truth_semantic = [np.where(interior, 2, 1) for _, interior in truths]
    baseline = [otsu_cells(image) for image, _ in truths]
    rows = [_row("Otsu + connected components", truth_cells, baseline, truth_semantic,
                 [np.where(b > 0, 2, 1) for b in baseline])]
    budget = f"{args.steps} steps" if args.steps else f"{args.seconds:g} s"
    for flips, (preds, semantics) in predicted.items():
        method = f"napari-unet {args.preset}, {budget}" + (f", {flips} test-time flips" if flips > 1 else "")
        rows.append(_row(method, truth_cells, preds, truth_semantic, semantics))
        if len(rows) == 2:
            rows.append(_row("same model, default instance settings (not tuned)", truth_cells, defaults,
                             truth_semantic, semantics))
    print(f"machine: {machine()}")
    print("| method | membrane IoU | cell AP@0.5 |")
    print("|---|---|---|")
    for row in rows:
        print(f"| {row['method']} | {row['membrane_iou']:.3f} | {row['ap50']:.3f} |")
    payload = {"rows": rows, "train": list(train_ids), "test": list(test_ids), "training_output": trained.stdout.strip()}
    print(f"results: {save(args.name, payload)}")


def _row(method, truth_cells, pred_cells, truth_semantic, pred_semantic) -> dict:
    ap = instance_scores(truth_cells, pred_cells, (0.5,)).ap[0.5]
    ious = [semantic_iou(t, p, labels=[1])[1] for t, p in zip(truth_semantic, pred_semantic)]
    return {"method": method, "membrane_iou": round(float(np.mean(ious)), 3), "ap50": round(ap, 3)}


if __name__ == "__main__":
    main()
