"""Accuracy on images the model has never seen: train on K DSB2018 `train` images, score every `val` image.

    python benchmarks/generalisation.py                     # full: 3 seeds, 340 and 1350 steps
    python benchmarks/generalisation.py --quick             # 1 seed, 340 steps, 30 val images
    python benchmarks/generalisation.py --pretrained nuclei --steps 0 1350
    python benchmarks/generalisation.py --previous f0cb221  # adds the previous release's recipe
    python benchmarks/generalisation.py --flips 1 8         # each model also scored with 8 test-time flips

Budgets are in training *steps*, not seconds: the machine is shared, so seconds buy a
different amount of training from run to run while steps do not. The default budgets are
the steps the fast preset made in 30 s and 120 s on the quiet 2-core machine of 2026-11-25
(BENCHMARKS.md section 1: 341 and 1347; another machine buys other steps with the same seconds:
`steps_per_budget.py` measures them); each row also records its wall time and steps/s.
Reports AP at IoU 0.5 / 0.7 / 0.9 (TP / (TP + FP + FN), counts summed over images), the
DSB score (per image, mean AP over IoU 0.5:0.05:0.95, then the mean over images), the
spread of per-image AP@0.5, and AP@0.5 by object-size tercile of the val images. Otsu +
watershed is scored in the same run. Data: ../shared/data/dsb2018-stage1-train.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile
from common import machine, otsu_watershed, run_training, save, shared_data

from napari_unet.functionals.metrics import instance_counts

DATA = shared_data("dsb2018-stage1-train")
THRESHOLDS = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))  # the DSB score's IoU range
STEPS_PER_QUIET_SECOND = 1347 / 120  # fast preset, batch 4, on the quiet machine of 2026-11-25 (BENCHMARKS.md)


@dataclass
class Entry:
    id: str
    modality: str
    median_area: float
    split: str


def index(data: Path) -> list[Entry]:
    with open(data / "index.csv") as f:
        return [Entry(r["id"], r["modality"], float(r["median_area"]), r["split"]) for r in csv.DictReader(f)]


def load(data: Path, entry: Entry) -> tuple[np.ndarray, np.ndarray]:
    """(C, H, W) image and its instance labels; fluorescence as one channel, stains as RGB."""
    image = tifffile.imread(data / "images" / f"{entry.id}.tif")
    labels = tifffile.imread(data / "labels" / f"{entry.id}.tif")
    if image.ndim == 2:
        image = image[None]
    else:
        image = np.moveaxis(image[..., :3], -1, 0)
        if entry.modality != "colour":
            image = image.mean(axis=0, keepdims=True).astype(np.float32)
    return image, labels


def pick_training(entries: list[Entry], modality: str, k: int, seed: int) -> list[Entry]:
    pool = [e for e in entries if e.split == "train" and e.modality == modality]
    rng = np.random.default_rng(seed)
    return [pool[i] for i in rng.choice(len(pool), size=min(k, len(pool)), replace=False)]


def pick_selection(entries: list[Entry], seed: int, k: int, n: int) -> list[Entry]:
    """`n` fluorescence `train` images outside the K training images of `seed`, spread over object size."""
    held = {e.id for e in pick_training(entries, "fluorescence", k, seed)}
    return spread_over_size([e for e in entries if e.split == "train" and e.modality == "fluorescence"
                             and e.id not in held], n)


def pick_validation(entries: list[Entry], modality: str, limit: int | None) -> list[Entry]:
    """Every val image of the modality, or `limit` of them spread evenly over object size."""
    return spread_over_size([e for e in entries if e.split == "val" and e.modality == modality], limit)


def spread_over_size(pool: list[Entry], n: int | None) -> list[Entry]:
    """`n` of `pool` spread evenly from the smallest objects to the largest (None: all), sorted by object size."""
    pool = sorted(pool, key=lambda e: e.median_area)
    if n is None or n >= len(pool):
        return pool
    return [pool[i] for i in np.unique(np.linspace(0, len(pool) - 1, n).round().astype(int))]


def score(truths: list[np.ndarray], preds: list[np.ndarray], areas: list[float]) -> dict:
    """AP at 0.5/0.7/0.9 (summed counts), DSB score, per-image AP@0.5 spread, AP@0.5 per size tercile."""
    return score_counts([instance_counts(t, p, THRESHOLDS) for t, p in zip(truths, preds)], areas)


def score_counts(counts: list[dict[float, tuple[int, int, int]]], areas: list[float]) -> dict:
    """`score` from each image's (TP, FP, FN) at the DSB thresholds: scripts that score many settings
    keep counts, not label images."""

    def ap(subset, thr):
        tp = sum(c[thr][0] for c in subset)
        total = sum(sum(c[thr]) for c in subset)
        return tp / total if total else 1.0

    per_image = [np.mean([ap([c], thr) for thr in THRESHOLDS]) for c in counts]
    ap50 = [ap([c], 0.5) for c in counts]
    order = np.argsort(areas, kind="stable")
    terciles = np.array_split(order, 3)
    return {
        "ap50": ap(counts, 0.5),
        "ap70": ap(counts, 0.7),
        "ap90": ap(counts, 0.9),
        "dsb": float(np.mean(per_image)),
        "ap50_images_p10_median_p90": [float(np.percentile(ap50, q)) for q in (10, 50, 90)],
        "ap50_small_medium_large": [ap([counts[i] for i in t], 0.5) for t in terciles],
    }


def train_and_predict(job: dict) -> dict:
    """Train (or load) a model as `job` says and return its instance predictions for the val images.

    Runs in this process, or in a child process for the previous release's code.
    """
    from napari_unet.functionals.data import TrainingImage
    from napari_unet.nn.segmenter import Segmenter
    from napari_unet.nn.training import TrainConfig, Trainer

    data = Path(job["data"])
    entries = {e.id: e for e in index(data)}
    items = []
    for name in job["train"]:
        image, labels = load(data, entries[name])
        items.append(TrainingImage.from_instances(image, labels, name=name))
    segmenter = None
    if job.get("start"):
        segmenter = Segmenter.load(job["start"])
    steps, tick = 0, time.perf_counter()
    if job["steps"] > 0:
        rate = {"learning_rate": job["learning_rate"]} if job.get("learning_rate") else {}  # else the default
        config = TrainConfig(steps=job["steps"], seed=job["seed"], threads=job.get("threads"), **rate,
                             **job.get("config", {}))
        segmenter = run_training(Trainer(items, config, segmenter=segmenter))
        steps = segmenter.history[-1]["steps"]
    train_seconds = time.perf_counter() - tick
    if job.get("keep"):
        segmenter.save(job["keep"])
    scaled = hasattr(segmenter, "object_diameter")  # the previous release had no object scale
    diameters = job["diameters"] if scaled else [None]
    preds, seconds, flips_of = {}, {}, {}
    for diameter in diameters:
        for flips in job.get("flips", [1]) if scaled else [1]:
            key = str(diameter) if flips == 1 else f"{diameter}, {flips} flips"
            tick = time.perf_counter()
            if job.get("workers", 1) > 1:
                preds[key] = predict_in_processes(segmenter, data, job["val"], diameter, job["workers"], flips)
            else:
                preds[key] = [predict_one(segmenter, data, entries[name], diameter, scaled, flips)
                              for name in job["val"]]
            seconds[key], flips_of[key] = time.perf_counter() - tick, flips
    return {"steps": steps, "train_seconds": train_seconds, "predict_seconds": seconds, "flips": flips_of,
            "preds": preds}


def predict_one(segmenter, data: Path, entry: Entry, diameter, scaled: bool = True, flips: int = 1) -> np.ndarray:
    """Instances of one val image; diameter "truth": at its true objects' median diameter (what `auto` aims at)."""
    image, labels = load(data, entry)
    if diameter == "truth":  # imported here: `--previous` runs this file on releases without functionals.scale
        from napari_unet.functionals.scale import object_diameter

        diameter = object_diameter(labels)
    prediction = segmenter.predict(image, diameter=diameter, **({"flips": flips} if flips > 1 else {})) \
        if scaled else segmenter.predict(image)
    return segmenter.instances(prediction)


_WORKER: dict = {}


def _start_worker(model: str, data: str) -> None:
    import torch

    from napari_unet.nn.device import pick_device
    from napari_unet.nn.segmenter import Segmenter

    torch.set_num_threads(1)
    _WORKER.update(segmenter=Segmenter.load(model, device=pick_device("auto")), data=Path(data),
                   entries={e.id: e for e in index(Path(data))})


def _predict_in_worker(name: str, diameter, flips: int = 1) -> np.ndarray:
    return predict_one(_WORKER["segmenter"], _WORKER["data"], _WORKER["entries"][name], diameter, flips=flips)


def predict_in_processes(segmenter, data: Path, names: list[str], diameter, workers: int,
                         flips: int = 1) -> list[np.ndarray]:
    """The val predictions from `workers` processes, one torch thread each (a many-core or GPU machine:
    the instance step runs on the CPU, one image per process)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "model.pt"
        segmenter.save(model)
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=_start_worker, initargs=(str(model), str(data))) as pool:
            return list(pool.map(_predict_in_worker, names, [diameter] * len(names), [flips] * len(names)))


def run_previous(job: dict, commit: str) -> dict:
    """`train_and_predict` with the package as it was at `commit` (git archive into a temporary folder)."""
    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        archive = subprocess.run(["git", "-C", str(root), "archive", commit, "napari_unet"], capture_output=True,
                                 check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(tmp)], input=archive, check=True)
        (tmp / "job.json").write_text(json.dumps(job))
        env = {**os.environ, "PYTHONPATH": f"{tmp}{os.pathsep}{Path(__file__).resolve().parent}"}
        subprocess.run([sys.executable, __file__, "--child", str(tmp / "job.json")], env=env, check=True)
        result = json.loads((tmp / "job.json.out").read_text())
        result["preds"] = {"None": [np.load(tmp / f"pred{i}.npy") for i in range(result.pop("n"))]}
        return result


def child(job_path: str) -> None:
    job = json.loads(Path(job_path).read_text())
    result = train_and_predict(job)
    folder = Path(job_path).parent
    for i, pred in enumerate(result.pop("preds")["None"]):
        np.save(folder / f"pred{i}.npy", pred)
    result["n"] = len(job["val"])
    Path(job_path + ".out").write_text(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modality", default="fluorescence", choices=["fluorescence", "colour"])
    parser.add_argument("--k", type=int, default=12, help="training images")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, nargs="+", default=[341, 1347], help="training budgets (0: no training)")
    parser.add_argument("--val", type=int, help="score this many val images, spread over object size (default all)")
    parser.add_argument("--quick", action="store_true", help="one seed, one budget (341 steps), 30 val images")
    parser.add_argument("--pretrained", help="start from this shipped model (name) or checkpoint (path)")
    parser.add_argument("--previous", help="also run the recipe of this git commit (the previous release)")
    parser.add_argument("--previous-seeds", type=int, default=1, help="how many of the seeds run the previous recipe")
    parser.add_argument("--keep-models", type=Path, help="save each trained model in this folder")
    parser.add_argument("--rescore", type=Path, nargs="+", help="score these saved models instead of training")
    parser.add_argument("--diameters", nargs="+", default=["auto"],
                        help="object diameter(s) at prediction, each scored: auto, none (the stored one), truth "
                             "(each image's true one: the bound of auto) or pixels")
    parser.add_argument("--flips", type=int, nargs="+", default=[1], choices=[1, 2, 4, 8],
                        help="test-time flips at prediction, each scored (default 1: off)")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("--workers", type=int, default=1,
                        help="processes predicting the val images (a many-core or GPU machine), 1 torch thread each")
    parser.add_argument("--name", default="generalisation", help="results file name (benchmarks/results/NAME.json)")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child)
    if args.quick:
        args.seeds, args.steps, args.val = args.seeds[:1], args.steps[:1], args.val or 30
    entries = index(args.data)
    val = pick_validation(entries, args.modality, args.val)
    truths, images = [], []
    for entry in val:
        image, labels = load(args.data, entry)
        truths.append(labels)
        images.append(image)
    areas = [e.median_area for e in val]
    start = None
    if args.pretrained:
        from napari_unet.io.pretrained import model_path

        start = args.pretrained if Path(args.pretrained).is_file() else str(model_path(args.pretrained))
    rows = []
    otsu = [otsu_watershed(image.mean(axis=0) if args.modality == "fluorescence" else 255 - image.mean(axis=0))
            for image in images]
    rows.append({"method": "Otsu + distance watershed", **score(truths, otsu, areas)})
    print(_line(rows[-1]), flush=True)
    header = {"command": " ".join(sys.argv), "modality": args.modality, "k": args.k, "val_images": len(val)}
    path = save(args.name, {**header, "rows": rows})
    for label, seed, steps, job in plan(args, entries, val, start):
        result = run_previous(job, job["commit"]) if job.get("commit") else train_and_predict(job)
        flips_of = result.pop("flips", {})
        for key, preds in result.pop("preds").items():
            diameter, flips = key.split(",")[0], flips_of.get(key, 1)
            row = {"method": label, "diameter": diameter, "flips": flips, "budget_steps": steps, "seed": seed, **result,
                   "steps_per_second": result["steps"] / max(result["train_seconds"], 1e-9),
                   **score(truths, preds, areas)}
            rows.append(row)
            print(_line(row), flush=True)
        path = save(args.name, {**header, "rows": rows})  # after every model: a stopped run keeps its rows
    print(f"machine: {machine(args.threads)}\nwrote {path}")


def plan(args, entries: list[Entry], val: list[Entry], start: str | None) -> list[tuple[str, int, int, dict]]:
    """(label, seed, steps, job) per model, seed by seed, so a run cut short has whole comparisons."""
    diameters = [None if d == "none" else d if d in ("auto", "truth") else float(d) for d in args.diameters]
    common = {"data": str(args.data), "val": [e.id for e in val], "threads": args.threads, "diameters": diameters,
              "workers": args.workers, "flips": args.flips}
    if args.rescore:
        return [(f"saved model {path.stem}", 0, 0, {**common, "train": [], "steps": 0, "seed": 0,
                                                     "start": str(path)}) for path in args.rescore]
    label = "this recipe" + (f", from {args.pretrained}" if args.pretrained else "")
    jobs = []
    for n, seed in enumerate(args.seeds):
        train = [e.id for e in pick_training(entries, args.modality, args.k, seed)]
        for steps in args.steps:
            if steps == 0 and n > 0:
                continue  # no training: every seed gives the same model
            job = {**common, "train": train, "steps": steps, "seed": seed, "start": start}
            if args.keep_models and steps > 0:
                args.keep_models.mkdir(parents=True, exist_ok=True)
                job["keep"] = str(args.keep_models / f"{args.name}_{steps}_{seed}.pt")
            jobs.append((label, seed, steps, job))
        if args.previous and n < args.previous_seeds:
            for steps in args.steps:
                jobs.append((f"previous release ({args.previous})", seed, steps,
                             {**common, "train": train, "steps": steps, "seed": seed, "commit": args.previous}))
    return jobs


def _line(row: dict) -> str:
    budget = f"{row['budget_steps']} steps (~{row['budget_steps'] / STEPS_PER_QUIET_SECOND:.0f} quiet s), " \
             f"seed {row['seed']}, {row['train_seconds']:.0f} s wall" if "budget_steps" in row else ""
    small, medium, large = row["ap50_small_medium_large"]
    diameter = f"diameter {row['diameter']}" if "diameter" in row else ""
    diameter += f", {row['flips']} flips" if row.get("flips", 1) > 1 else ""
    return (f"{row['method']:<34} {diameter:<14} {budget:<48} AP@0.5 {row['ap50']:.3f}  AP@0.7 {row['ap70']:.3f}  "
            f"AP@0.9 {row['ap90']:.3f}  DSB {row['dsb']:.3f}  terciles {small:.2f}/{medium:.2f}/{large:.2f}")


if __name__ == "__main__":
    main()
