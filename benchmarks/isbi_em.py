"""Generalisation to unseen images: train on 10 ISBI 2012 EM sections, score the other 20.

    python benchmarks/isbi_em.py [--seconds 120 | --steps 1347] [--seeds 0 1 2] [--workers 2] [--threads 1]
                                 [--preset fast] [--flips 1 8] [--name isbi_em]
    python benchmarks/isbi_em.py --steps 1347 --keep-models models --flips 2   # again: only predicts
    python benchmarks/isbi_em.py --merge results/a.json results/b.json --name isbi_em_3seeds

Cells (interior, label 255) are the objects, membranes the background. Reports membrane
IoU and cell-instance AP@0.5 beside an Otsu + connected-components baseline computed
in the same run, and the same model's cells with the default instance settings instead of
those tuned on the 10 training sections after training. One row per training seed, then
the mean [min-max] over the seeds; --workers trains and scores that many seeds at once,
--merge summarises the seeds of earlier results files without training. Data:
../shared/data/isbi2012-membranes (see its README).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import tifffile
from common import machine, run_cli, save, shared_data
from scipy import ndimage
from skimage.filters import gaussian, threshold_otsu
from skimage.io import imread

from napari_unet.functionals.metrics import instance_scores, semantic_iou

DATA = shared_data("isbi2012-membranes")
TRAIN_IDS, TEST_IDS = range(10), range(10, 30)
BASELINE = "Otsu + connected components"
UNTUNED = "same model, default instance settings (not tuned)"
# InstanceParams' defaults given explicitly: the same model's objects without its tuned settings
DEFAULT_SETTINGS = ["--threshold", "0.5", "--min-size", "10", "--seed-spacing", "2", "--seed-prominence", "0.1",
                    "--border-evidence", "0.5", "--min-confidence", "0.85"]
CLI_DEFAULT_SEED = 0  # what train used before this script had --seeds: older results files are seed 0


def load(index: int, data: Path = DATA) -> tuple[np.ndarray, np.ndarray]:
    image = imread(data / f"{index}_image.png")
    interior = imread(data / f"{index}_labels.png") > 127
    return image, interior


def cells(interior: np.ndarray) -> np.ndarray:
    return ndimage.label(interior)[0]


def otsu_cells(image: np.ndarray) -> np.ndarray:
    smooth = gaussian(image.astype(np.float32), 1.0, preserve_range=True)
    return ndimage.label(smooth > threshold_otsu(smooth))[0]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--steps", type=int, help="budget in steps instead (reproducible on a shared machine)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[CLI_DEFAULT_SEED], help="training seeds, one model each")
    parser.add_argument("--workers", type=int, default=1, help="seeds trained and scored at once")
    parser.add_argument("--threads", type=int, help="torch CPU threads of each train / predict process")
    parser.add_argument("--name", default="isbi_em", help="results file name")
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--flips", type=int, nargs="+", default=[1], choices=[1, 2, 4, 8],
                        help="test-time flips at prediction (predict --flips), each scored (default 1: off)")
    parser.add_argument("--keep-models", type=Path,
                        help="save each seed's model in this folder, and score a model already there instead of training")
    parser.add_argument("--merge", type=Path, nargs="+", help="summarise the seeds of these results files instead")
    parser.add_argument("--data", type=Path, default=DATA)
    return parser.parse_args(argv)


def main() -> None:
    args = parse_args()
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # inherited by every CLI process run_cli starts
    if args.merge:
        rows, trained = merge_results([json.loads(path.read_text()) for path in args.merge])
        payload = {"merged": [str(path) for path in args.merge]}
    else:
        truths = [load(i, args.data) for i in TEST_IDS]
        baseline = [otsu_cells(image) for image, _ in truths]
        rows = [_row(BASELINE, truths, baseline, [np.where(b > 0, 2, 1) for b in baseline])]
        with ThreadPoolExecutor(args.workers) as pool:  # each seed's work runs in CLI processes: threads only wait
            results = list(pool.map(lambda seed: run_seed(args, seed, truths), args.seeds))
        trained = {}
        for seed, (seed_rows, output) in zip(args.seeds, results):
            rows += seed_rows
            trained[str(seed)] = output
        payload = {"command": " ".join(sys.argv), "train": list(TRAIN_IDS), "test": list(TEST_IDS)}
    summary = summarise(rows)
    print(f"machine: {machine(args.threads)}")
    print(table(rows, summary))
    payload = {**payload, "rows": rows, "summary": summary, "training_output": trained}
    print(f"results: {save(args.name, payload)}")


def run_seed(args: argparse.Namespace, seed: int, truths: list) -> tuple[list[dict], str]:
    """Train one model on the 10 sections and score it on the 20 others: its rows and train's output."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        train_args = []
        for i in TRAIN_IDS:
            image, interior = load(i, args.data)
            tifffile.imwrite(tmp / f"{i}.tif", image)
            tifffile.imwrite(tmp / f"{i}_cells.tif", cells(interior).astype(np.uint16))
            train_args += ["--image", str(tmp / f"{i}.tif"), "--instances", str(tmp / f"{i}_cells.tif")]
        budget = ["--steps", str(args.steps)] if args.steps else ["--seconds", f"{args.seconds:g}"]
        model = tmp / "model.pt"
        if args.keep_models:
            args.keep_models.mkdir(parents=True, exist_ok=True)
            model = args.keep_models / f"isbi_em_{args.preset}_{budget[1]}{budget[0][2:]}_seed{seed}.pt"
        if model.is_file():  # kept by an earlier run: only predict (other --flips, say)
            trained = f"reused {model}"
        else:
            trained = run_cli("train", *train_args, "--out", str(model), *budget, "--seed", str(seed),
                              "--preset", args.preset, "--classes", "membrane", "cell").stdout.strip()
        print(f"seed {seed}: {trained}", flush=True)  # with what tuning on the 10 sections picked
        predicted = {}  # flips: (instances, semantic) of each test section, with the model's instance settings
        defaults = []  # the first flips' instances with the default settings instead (not tuned)
        for flips in args.flips:
            preds, semantics = [], []
            for image, _ in truths:
                tifffile.imwrite(tmp / "test.tif", image)
                predict = ["predict", "--model", str(model), "--image", str(tmp / "test.tif"), "--overwrite",
                           "--instances", str(tmp / "inst.tif"), "--flips", str(flips)]
                run_cli(*predict, "--semantic", str(tmp / "sem.tif"))
                preds.append(tifffile.imread(tmp / "inst.tif"))
                semantics.append(tifffile.imread(tmp / "sem.tif"))
                if not predicted:
                    run_cli(*predict, *DEFAULT_SETTINGS)
                    defaults.append(tifffile.imread(tmp / "inst.tif"))
            predicted[flips] = preds, semantics
    budget = f"{args.steps} steps" if args.steps else f"{args.seconds:g} s"
    rows = []
    for flips, (preds, semantics) in predicted.items():
        method = f"napari-unet {args.preset}, {budget}" + (f", {flips} test-time flips" if flips > 1 else "")
        rows.append({**_row(method, truths, preds, semantics), "seed": seed})
        if len(rows) == 1:
            rows.append({**_row(UNTUNED, truths, defaults, semantics), "seed": seed})
    return rows, trained


def merge_results(payloads: list[dict]) -> tuple[list[dict], dict]:
    """The baseline once and every (method, seed) row once, from results files of this script (older ones: seed 0)."""
    rows, seen, trained = [], set(), {}
    for payload in payloads:
        output = payload.get("training_output", {})
        trained.update(output if isinstance(output, dict) else {str(CLI_DEFAULT_SEED): output})
        for row in payload["rows"]:
            if row["method"] != BASELINE:
                row = {**row, "seed": row.get("seed", CLI_DEFAULT_SEED)}
            key = (row["method"], row.get("seed"))
            if key not in seen:
                seen.add(key)
                rows.append(row)
    return rows, trained


def summarise(rows: list[dict]) -> list[dict]:
    """Per method trained with two or more seeds: the mean and [min, max] of each score over the seeds."""
    by_method: dict[str, list[dict]] = {}
    for row in rows:
        if "seed" in row:
            by_method.setdefault(row["method"], []).append(row)
    summary = []
    for method, group in by_method.items():
        if len(group) < 2:
            continue
        entry = {"method": method, "seeds": sorted(row["seed"] for row in group)}
        for score in ("membrane_iou", "ap50"):
            values = [row[score] for row in group]
            entry[score] = round(float(np.mean(values)), 3)
            entry[f"{score}_range"] = [min(values), max(values)]
        summary.append(entry)
    return summary


def table(rows: list[dict], summary: list[dict]) -> str:
    """Markdown: one line per row (with its seed), then each method's mean [range] over its seeds."""
    lines = ["| method | membrane IoU | cell AP@0.5 |", "|---|---|---|"]
    for row in rows:
        seed = f", seed {row['seed']}" if "seed" in row else ""
        lines.append(f"| {row['method']}{seed} | {row['membrane_iou']:.3f} | {row['ap50']:.3f} |")
    for entry in summary:
        cells_ = [f"{entry[s]:.3f} [{entry[f'{s}_range'][0]:.3f}-{entry[f'{s}_range'][1]:.3f}]"
                  for s in ("membrane_iou", "ap50")]
        lines.append(f"| {entry['method']}, mean of {len(entry['seeds'])} seeds [range] | {cells_[0]} | {cells_[1]} |")
    return "\n".join(lines)


def _row(method: str, truths: list, pred_cells: list, pred_semantic: list) -> dict:
    """Membrane IoU and cell AP@0.5 of one method's predictions of the test sections."""
    truth_cells = [cells(interior) for _, interior in truths]
    ap = instance_scores(truth_cells, pred_cells, (0.5,)).ap[0.5]
    ious = [semantic_iou(np.where(interior, 2, 1), p, labels=[1])[1] for (_, interior), p in zip(truths, pred_semantic)]
    return {"method": method, "membrane_iou": round(float(np.mean(ious)), 3), "ap50": round(ap, 3)}


if __name__ == "__main__":
    main()
