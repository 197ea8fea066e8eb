"""3D objects and batch prediction (issue 11): 3D AP@0.5 and split objects on two volumes, and
41 images predicted as one batch on dask.distributed against 41 single commands.

    python benchmarks/volumes.py 3d --stardist DIR [--seconds 60] [--shape 32 256 256]
    python benchmarks/volumes.py batch [--images 41] [--singles 3]
    python benchmarks/volumes.py big [--size 4096] [--block 1024] [--threads 1]
    python benchmarks/volumes.py scaling [--sizes 2048 4096 8192 32768] [--block 2048] [--threads 1]
        [--workers N] [--device cuda] [--keep-input DIR] [--timeout S] [--results DIR] [--log FILE]

`--stardist DIR`: the folder holding `stardist/data/images/img3d.tif` and `mask3d.tif`, unpacked
from the stardist wheel (BSD-3-Clause): `pip download --no-deps stardist==0.9.2` and unzip it.
Every model is trained through the CLI in the same run; 3D objects (`predict` on a stack) are
compared with per-plane objects (`predict --frames`, what a time series gets).
"""

from __future__ import annotations

import argparse
import csv
import os
import tempfile
import time
from pathlib import Path

import common
import numpy as np
import tifffile
from common import machine, run_cli, save
from scipy import ndimage

from napari_unet.functionals.instances import InstanceParams
from napari_unet.functionals.instances3d import instances_3d, split_fraction
from napari_unet.functionals.metrics import instance_scores
from napari_unet.functionals.prediction import Prediction
from napari_unet.functionals.targets import ideal_prediction

DSB = Path("/work/shared/data/dsb2018-stage1-train")


# --- 3D -----------------------------------------------------------------------------------------


def synthetic_volume(shape=(32, 256, 256), n=300, radius=(6.0, 12.0), z_anisotropy=3.0, seed=0):
    """(image, labels) of touching ellipsoids flattened in z, dimmer towards their borders, blurred and noisy."""
    rng = np.random.default_rng(seed)
    labels = np.zeros(shape, np.int32)
    shade = np.zeros(shape, np.float32)
    next_id = 1
    for _ in range(n * 20):
        if next_id > n:
            break
        r = rng.uniform(*radius)
        rz = r / z_anisotropy
        centre = np.array([rng.uniform(0, shape[0]), rng.uniform(r, shape[1] - r), rng.uniform(r, shape[2] - r)])
        lo = np.maximum(np.floor(centre - [rz, r, r]).astype(int), 0)
        hi = np.minimum(np.ceil(centre + [rz, r, r]).astype(int) + 1, shape)
        zz, yy, xx = np.ogrid[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
        d2 = ((zz - centre[0]) * z_anisotropy) ** 2 + (yy - centre[1]) ** 2 + (xx - centre[2]) ** 2
        inside = d2 <= r * r
        box = labels[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
        if not inside.any() or np.count_nonzero(box[inside]) > 0.1 * np.count_nonzero(inside):
            continue
        free = inside & (box == 0)
        box[free] = next_id
        shade[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]][free] = (rng.uniform(0.6, 1.0) * (1 - 0.5 * d2 / (r * r)))[free]
        next_id += 1
    image = ndimage.gaussian_filter(shade * 100, (0.5 / z_anisotropy * 3, 1.0, 1.0)) + 10
    image += rng.normal(0, 6, shape)
    return image.astype(np.float32), labels


def ideal_predictions(labels: np.ndarray) -> list[Prediction]:
    """What a perfect 2D network says about each plane: isolates the 3D joining from the network."""
    return [ideal_prediction(plane) for plane in labels]


def score(truth: np.ndarray, pred: np.ndarray) -> dict:
    ap = instance_scores([truth], [pred], (0.5,)).ap[0.5]
    return {"ap50": round(ap, 3), "split": round(split_fraction(truth, pred), 3), "objects": int(len(np.unique(pred)) - 1),
            "true_objects": int(len(np.unique(truth)) - 1)}


def run_3d(args) -> list[dict]:
    rows = []
    img = tifffile.imread(Path(args.stardist) / "stardist/data/images/img3d.tif")
    mask = tifffile.imread(Path(args.stardist) / "stardist/data/images/mask3d.tif")
    half = img.shape[0] // 2
    synthetic_train = synthetic_volume(tuple(args.shape), args.objects, seed=1)
    synthetic_test = synthetic_volume(tuple(args.shape), args.objects, seed=0)
    volumes = {
        # stardist's nuclei: z extent ~7 planes for ~15 px across, so z step ~2x the pixel
        "stardist img3d (train z<15, test z>=15)": ((img[:half], mask[:half]), (img[half:], mask[half:]), 2.0, 48),
        f"synthetic {'x'.join(map(str, args.shape))}, z step 3x": (synthetic_train, synthetic_test, 3.0, 128),
    }  # training patches: the stardist planes are only 61x57
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name, ((train_img, train_lbl), (test_img, test_lbl), aniso, patch) in volumes.items():
            for path, data in (("train.tif", train_img), ("train_lbl.tif", train_lbl), ("test.tif", test_img)):
                tifffile.imwrite(tmp / path, data, photometric="minisblack")
            ideal = ideal_predictions(test_lbl)
            params = InstanceParams(min_size=10)
            rows.append({"volume": name, "method": "ideal per-plane outputs, 3D objects",
                         **score(test_lbl, instances_3d(ideal, params, z_anisotropy=aniso))})
            start = time.perf_counter()
            run_cli("train", "--image", str(tmp / "train.tif"), "--instances", str(tmp / "train_lbl.tif"),
                    "--out", str(tmp / "m.pt"), "--seconds", str(args.seconds), "--patch-size", str(patch), "--overwrite")
            train_s = time.perf_counter() - start
            for method, extra in (("napari-unet, 3D objects", ["--z-anisotropy", str(aniso)]),
                                  ("napari-unet, 3D objects, --seed-prominence 0.02",
                                   ["--z-anisotropy", str(aniso), "--seed-prominence", "0.02"]),
                                  ("napari-unet, per-plane objects (--frames)", ["--frames"])):
                start = time.perf_counter()
                run_cli("predict", "--model", str(tmp / "m.pt"), "--image", str(tmp / "test.tif"), "--instances",
                        str(tmp / "pred.tif"), "--overwrite", *extra)
                pred = tifffile.imread(tmp / "pred.tif")
                rows.append({"volume": name, "method": method, "train_s": round(train_s), **score(test_lbl, pred),
                             "predict_s": round(time.perf_counter() - start, 1)})
            for row in rows[-4:]:
                print(row, flush=True)
    return rows


# --- batch --------------------------------------------------------------------------------------


def val_images(n: int) -> list[Path]:
    """The first `n` fluorescence images of the DSB2018 val split (index.csv order)."""
    with open(DSB / "index.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == "val" and r["modality"] == "fluorescence"]
    return [DSB / "images" / f"{r['id']}.tif" for r in rows[:n]]


def run_batch(args) -> list[dict]:
    from napari_unet.io.images import read_image
    from napari_unet.io.resources import resource_path
    from napari_unet.nn.segmenter import Segmenter
    from napari_unet.nn.volume import layout_of_file, predict_image

    images = val_images(args.images)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = tmp / "m.pt"
        run_cli("train", "--image", str(resource_path("nuclei_dsb2018_image.tif")), "--instances",
                str(resource_path("nuclei_dsb2018_instances.tif")), "--out", str(model), "--seconds", "20")
        # network + objects only: one process, the model loaded once, no start-up, no writes
        segmenter = Segmenter.load(model)
        start = time.perf_counter()
        for path in images:
            image = read_image(path)
            predict_image(segmenter, image, layout_of_file(tuple(image.shape), None, path.name))
        rows.append({"method": "in-process loop (network + objects, no I/O)", "seconds": time.perf_counter() - start})
        print(rows[-1], flush=True)
        start = time.perf_counter()
        for path in images[: args.singles]:
            run_cli("predict", "--model", str(model), "--image", str(path), "--instances", str(tmp / "single.tif"),
                    "--overwrite")
        per = (time.perf_counter() - start) / args.singles
        rows.append({"method": f"{len(images)} single commands (extrapolated from {args.singles})",
                     "seconds": per * len(images)})
        print(rows[-1], flush=True)
        outputs = {}
        for workers in (2, 1, 4):
            out = tmp / f"out{workers}"
            out.mkdir()
            start = time.perf_counter()
            inputs = [arg for p in images for arg in ("--image", str(p))]
            run_cli("predict", "--model", str(model), *inputs, "--out-dir", str(out), "--workers", str(workers))
            rows.append({"method": f"batch, LocalCluster {workers} worker process(es)",
                         "seconds": time.perf_counter() - start})
            outputs[workers] = {p.name: tifffile.imread(p) for p in sorted(out.iterdir())}
            print(rows[-1], flush=True)
        same = all(np.array_equal(outputs[1][k], outputs[w][k]) for w in (2, 4) for k in outputs[1])
        rows.append({"method": "outputs identical with 1, 2 and 4 workers", "seconds": None, "identical": same})
    return rows


# --- big images ---------------------------------------------------------------------------------


def synthetic_nuclei(size: int, diameter: float = 17.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(uint16 image, labels) of a size^2 plane of touching round nuclei of about `diameter` px, blurred and noisy."""
    rng = np.random.default_rng(seed)
    labels = np.zeros((size, size), np.int32)
    shade = np.zeros((size, size), np.float32)
    n = int(0.35 * size * size / (np.pi * (diameter / 2) ** 2))
    next_id = 1
    for _ in range(n * 3):
        if next_id > n:
            break
        r = rng.uniform(0.7, 1.2) * diameter / 2
        centre = rng.uniform(r, size - r, 2)
        lo = np.maximum(np.floor(centre - r).astype(int), 0)
        hi = np.minimum(np.ceil(centre + r).astype(int) + 1, size)
        yy, xx = np.ogrid[lo[0]:hi[0], lo[1]:hi[1]]
        d2 = (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2
        inside = d2 <= r * r
        box = labels[lo[0]:hi[0], lo[1]:hi[1]]
        if np.count_nonzero(box[inside]) > 0.1 * np.count_nonzero(inside):
            continue
        free = inside & (box == 0)
        box[free] = next_id
        shade[lo[0]:hi[0], lo[1]:hi[1]][free] = (rng.uniform(0.5, 1.0) * (1 - 0.4 * d2 / (r * r)))[free]
        next_id += 1
    image = ndimage.gaussian_filter(shade * 3000, 1.0) + 200 + rng.normal(0, 60, (size, size))
    return np.clip(image, 0, 65535).astype(np.uint16), labels


def run_big(args) -> list[dict]:
    """Synthetic nuclei of the shipped `nuclei` model's size in a `--size`^2 uint16 zarr: `--out-zarr` block
    by block against one whole-image pass (AP@0.5 of one against the other, and of each against the truth);
    peak memory of each command from /usr/bin/time; torch threads from `--threads`."""
    import subprocess
    import sys

    import zarr

    image, truth = synthetic_nuclei(args.size, args.diameter)
    rows = []
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        big = zarr.create_array(str(tmp / "big.zarr"), shape=image.shape, dtype=np.uint16, chunks=(1024, 1024))
        big[...] = image
        commands = {
            f"--out-zarr, blocks of {args.block}": ["--out-zarr", str(tmp / "out.zarr"), "--block", str(args.block)],
            "whole image (--instances out.tif)": ["--instances", str(tmp / "whole.tif")],
        }
        for name, extra in commands.items():
            start = time.perf_counter()
            done = subprocess.run(["/usr/bin/time", "-f", "%M", sys.executable, "-m", "napari_unet", "predict",
                                   "--model", args.model, "--image", str(tmp / "big.zarr"), "--diameter",
                                   str(args.diameter), "--quiet", *extra], capture_output=True, text=True, env=env)
            if done.returncode != 0:
                raise SystemExit(done.stderr)
            rows.append({"method": name, "seconds": round(time.perf_counter() - start, 1),
                         "peak_rss_mb": round(int(done.stderr.strip().splitlines()[-1]) / 1024)})
            print(rows[-1], flush=True)
        chunked = zarr.open_group(str(tmp / "out.zarr"), mode="r")["instances"][...]
        whole = tifffile.imread(tmp / "whole.tif")
        rows.append({"method": "AP@0.5 of the chunked objects against the whole-image ones",
                     "ap50": round(instance_scores([whole], [chunked], (0.5,)).ap[0.5], 4),
                     "objects_whole": int(whole.max()), "objects_chunked": int(chunked.max()),
                     "objects_true": int(truth.max())})
        for name, labels in (("whole", whole), ("chunked", chunked)):
            rows.append({"method": f"AP@0.5 of the {name} objects against the synthetic truth",
                         "ap50": round(instance_scores([truth], [labels], (0.5,)).ap[0.5], 4)})
        print(rows[-3:], flush=True)
    return rows


def tiled_nuclei_store(path: Path, size: int, tile: int = 4096, diameter: float = 17.0, variants: int = 2,
                       levels: int = 0) -> list[Path]:
    """A size^2 uint16 zarr of synthetic nuclei, written tile by tile (never whole in memory): `variants`
    generated tiles, flipped and transposed into 8 arrangements each, cover the plane. `levels`: also
    that many halved copies (every 2**k-th pixel) beside it, for a viewer. Returns the paths, finest first.
    Tiles are written by a thread per core (each tile covers whole chunks: no two threads write one chunk)."""
    from concurrent.futures import ThreadPoolExecutor

    import zarr

    tile = min(tile, size)
    with ThreadPoolExecutor(os.cpu_count()) as pool:
        tiles = list(pool.map(lambda seed: synthetic_nuclei(tile, diameter, seed=seed)[0], range(variants)))
    paths = [path] + [path.with_name(f"{path.stem}_level{k}.zarr") for k in range(1, levels + 1)]
    stores = [zarr.create_array(str(p), shape=(-(-size // 2**k),) * 2, dtype=np.uint16, chunks=(1024, 1024))
              for k, p in enumerate(paths)]

    def write(place: tuple[int, int, int]) -> None:
        k, y, x = place
        t = tiles[k % variants]
        t = t.T if (k // variants) % 2 else t
        t = t[::-1] if (k // (2 * variants)) % 2 else t
        for level, store in enumerate(stores):  # tile is a multiple of 2**level: levels stay aligned
            f = 2**level
            store[y // f:(y + tile) // f, x // f:(x + tile) // f] = t[: size - y:f, : size - x:f]

    places = [(i * (size // tile) + j, y, x) for i, y in enumerate(range(0, size, tile))
              for j, x in enumerate(range(0, size, tile))]
    with ThreadPoolExecutor(os.cpu_count()) as pool:
        list(pool.map(write, places))
    return paths


def peak_rss(command: list[str], env: dict, timeout: float | None, every: float = 0.5) -> dict:
    """Run `command`, sampling the RSS of it and of every process it starts (dask workers) every `every` s:
    returns its exit status, stderr, seconds and the peaks (MB) of the main process, of any one other
    process of the tree, and of the tree's sum."""
    import subprocess
    import threading

    import psutil

    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    main, peaks = psutil.Process(process.pid), {"main": 0.0, "worker": 0.0, "total": 0.0}
    stderr: list[str] = []
    reader = threading.Thread(target=lambda: stderr.append(process.stderr.read()), daemon=True)
    reader.start()
    timed_out, tree = False, [main]
    while process.poll() is None:
        try:
            tree = [main, *main.children(recursive=True)]
            rss = {p.pid: p.memory_info().rss / 2**20 for p in tree}
        except psutil.Error:  # a process ended while sampled
            rss = {}
        if rss:
            peaks["main"] = max(peaks["main"], rss.get(main.pid, 0.0))
            peaks["worker"] = max([peaks["worker"], *(v for pid, v in rss.items() if pid != main.pid)])
            peaks["total"] = max(peaks["total"], sum(rss.values()))
        if timeout is not None and time.perf_counter() - start > timeout:
            timed_out = True
            for p in reversed(tree):
                try:
                    p.kill()
                except psutil.Error:
                    pass
        time.sleep(every)
    reader.join(10)
    return {"returncode": process.returncode, "timed_out": timed_out, "stderr": "".join(stderr),
            "seconds": time.perf_counter() - start, **{f"{k}_peak_rss_mb": round(v) for k, v in peaks.items()}}


def run_scaling(args) -> list[dict]:
    """`predict --out-zarr` on synthetic nuclei stores of growing size, in `--workers` dask worker processes
    (1: in the command's process): seconds, time per pixel and peak RSS of the main process and of any one
    worker (psutil, every 0.5 s); torch threads per worker from `--threads`. Each row is also appended to
    `--log` as it lands; a size that fails or passes `--timeout` is recorded as such and the next one runs."""
    import json
    import shutil
    import sys

    rows = []
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        tmp = Path(tmp)
        inputs = Path(args.keep_input) if args.keep_input else tmp
        inputs.mkdir(parents=True, exist_ok=True)
        for size in args.sizes:
            source = inputs / f"nuclei_{size}.zarr"
            start = time.perf_counter()
            if not (source / "zarr.json").exists():
                shutil.rmtree(source, ignore_errors=True)
                tiled_nuclei_store(source, size, diameter=args.diameter)
            written = time.perf_counter() - start
            command = [sys.executable, "-m", "napari_unet", "predict", "--model", args.model, "--image", str(source),
                       "--diameter", str(args.diameter), "--out-zarr", str(tmp / "out.zarr"), "--block",
                       str(args.block), "--workers", str(args.workers), "--device", args.device, "--quiet"]
            run = peak_rss(command, env, args.timeout)
            lines = run["stderr"].strip().splitlines()
            row = {"size": size, "workers": args.workers, "device": args.device,
                   "seconds": round(run["seconds"], 1), "us_per_px": round(1e6 * run["seconds"] / size**2, 3),
                   **{k: v for k, v in run.items() if k.endswith("_mb")},
                   "input_s": round(written, 1), "load": round(os.getloadavg()[0], 1)}
            if run["returncode"] == 0:
                row["objects"] = int(lines[-1].split()[0])
                row["stages"] = lines[-2].split(": ", 1)[1]  # seconds per stage, the first with the start-up
            else:
                row["error"] = "timed out" if run["timed_out"] else (lines[-1] if lines else f"exit {run['returncode']}")
            rows.append(row)
            print(row, flush=True)
            if args.log:
                with open(args.log, "a") as log:
                    log.write(json.dumps(row) + "\n")
            shutil.rmtree(tmp / "out.zarr", ignore_errors=True)
            if not args.keep_input:
                shutil.rmtree(source)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    three = sub.add_parser("3d")
    three.add_argument("--stardist", required=True)
    three.add_argument("--seconds", type=float, default=60)
    three.add_argument("--shape", type=int, nargs=3, default=[32, 256, 256])
    three.add_argument("--objects", type=int, default=300)
    batch = sub.add_parser("batch")
    batch.add_argument("--images", type=int, default=41)
    batch.add_argument("--singles", type=int, default=3)
    big = sub.add_parser("big")
    big.add_argument("--size", type=int, default=4096)
    big.add_argument("--block", type=int, default=1024)
    big.add_argument("--model", default="nuclei", help="a shipped model's name or a checkpoint (default nuclei)")
    big.add_argument("--diameter", type=float, default=17.0, help="nuclei diameter in px (the nuclei model's: 17)")
    big.add_argument("--threads", type=int, default=1, help="torch threads of each predict command")
    scaling = sub.add_parser("scaling")
    scaling.add_argument("--sizes", type=int, nargs="+", default=[2048, 4096, 8192])
    scaling.add_argument("--block", type=int, default=2048, help="--block of the predict command (its default: 2048)")
    scaling.add_argument("--model", default="nuclei")
    scaling.add_argument("--diameter", type=float, default=17.0)
    scaling.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    scaling.add_argument("--workers", type=int, default=1, help="dask worker processes (1: the predict process)")
    scaling.add_argument("--device", default="cpu", help="where workers run the network: cpu, cuda, auto")
    scaling.add_argument("--timeout", type=float, default=None, help="seconds before one size is given up")
    scaling.add_argument("--tmp", default=None, help="folder for the stores (default: the system's temp folder)")
    scaling.add_argument("--keep-input", default=None,
                         help="keep the input stores in this folder and reuse the ones already there")
    scaling.add_argument("--log", default=None, help="append each row to this file as JSON as it lands")
    scaling.add_argument("--results", default=None, help="folder for the results JSON (default: benchmarks/results)")
    args = parser.parse_args()
    rows = {"3d": run_3d, "batch": run_batch, "big": run_big, "scaling": run_scaling}[args.what](args)
    print(f"machine: {machine()}, {os.cpu_count()} cores")
    for row in rows:
        print(row)
    if getattr(args, "results", None):
        common.RESULTS = Path(args.results)
    print(f"results: {save(f'volumes_{args.what}', {'rows': rows, 'args': vars(args)})}")


if __name__ == "__main__":
    main()
