"""Inference speed and memory: tiling overhead, CLI scaling, GFLOP/s, post-processing share.

Tiling overhead; CLI time and peak memory against image size; GFLOP/s against the CPU's
measured convolution peak; the share of instance post-processing.

    python benchmarks/inference_speed.py [--sizes 2048 4096 8192] [--preset fast]
        [--tiling-sizes 1024 2048] [--post-size 2048] [--sections tiling cli flops post]

Issue targets checked (on the machine that runs it; run on a quiet machine, timings are medians):
  1. tiling: tiled `predict` (tile 512, overlap 64) costs at most 1.25x one whole-image pass;
  2. cli: `napari-unet predict` of a 8192^2 uint16 image peaks under 2.5 GB, and its time per
     pixel stays within 15% from 2048^2 to 8192^2;
  3. flops: inference reaches at least 50% of the measured dense-convolution peak GFLOP/s;
  4. post: instance post-processing takes less than half the network's time.

The images are synthetic nuclei (Voronoi-clipped discs, blurred, with noise) in uint16. The
model is trained for `--train-steps` steps through the CLI on a 256^2 synthetic image first,
so predictions (and hence the watershed's work) look like a real model's; network speed does
not depend on the weights.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import cProfile
import os
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile
import torch
import torch.nn.functional as F
from common import machine, run_cli, save
from flops import TRAINING_FACTOR, flops_per_pixel
from scipy import ndimage

from napari_unet.functionals.instances import InstanceParams, instances_from_prediction
from napari_unet.functionals.prediction import Prediction
from napari_unet.functionals.targets import boundary_target, distance_target
from napari_unet.nn import inference
from napari_unet.nn.inference import TileGrid, plan_tiles
from napari_unet.nn.model import PRESETS, ModelConfig
from napari_unet.nn.segmenter import Segmenter

SECTIONS = ("tiling", "cli", "flops", "post")
TILE, OVERLAP = 512, 64  # the defaults of Segmenter.predict and the CLI
TARGETS = {"tiling_ratio": 1.25, "peak_gb": 2.5, "linearity": 0.15, "inference_peak_fraction": 0.5,
           "post_share": 0.5}


# --- synthetic data ------------------------------------------------------------------------------


def nuclei(size: int, seed: int = 0, block: int = 1024, objects_per_mpx: float = 500.0):
    """(image uint16 (size, size), instance labels int32): nuclei-like blobs, built block by block.

    Each block holds Poisson-placed centres with radii 5-12 px; every pixel belongs to its nearest
    centre if within that centre's radius, so neighbours touch without merging (as in real nuclei).
    Building in blocks keeps this process's memory small for 8192^2 images.
    """
    image = np.empty((size, size), np.uint16)
    labels = np.zeros((size, size), np.int32)
    rng = np.random.default_rng(seed)
    next_id = 1
    for y in range(0, size, block):
        for x in range(0, size, block):
            h, w = min(block, size - y), min(block, size - x)
            n = max(1, rng.poisson(objects_per_mpx * h * w / 1e6))
            cy, cx = rng.integers(0, h, n), rng.integers(0, w, n)
            radius = rng.uniform(5, 12, n)
            centres = np.ones((h, w), bool)
            centres[cy, cx] = False
            dist, (iy, ix) = ndimage.distance_transform_edt(centres, return_indices=True)
            index = np.full((h, w), -1, np.int64)
            index[cy, cx] = np.arange(n)
            nearest = index[iy, ix]
            inside = dist <= radius[nearest]
            block_labels = np.where(inside, nearest + next_id, 0).astype(np.int32)
            brightness = rng.uniform(0.5, 1.0, n + 1)
            signal = ndimage.gaussian_filter(np.where(inside, brightness[nearest], 0.0).astype(np.float32), 1.5)
            noisy = 300 + 3000 * signal + rng.normal(0, 60, (h, w))
            image[y : y + h, x : x + w] = np.clip(noisy, 0, 65535).astype(np.uint16)
            labels[y : y + h, x : x + w] = block_labels
            next_id += n
    return image, labels


def ideal_prediction(labels: np.ndarray) -> Prediction:
    """A Prediction that a well-trained model would give for `labels` (smooth, confident)."""
    foreground = ndimage.gaussian_filter((labels > 0).astype(np.float32), 1.0)
    return Prediction(
        probabilities=np.stack([1 - foreground, foreground]),
        boundary=ndimage.gaussian_filter(boundary_target(labels), 1.0),
        distance=distance_target(labels),
    )


def make_model(preset: str, train_steps: int, folder: Path) -> Path:
    """A checkpoint of the preset, briefly trained through the CLI (untrained if train_steps is 0)."""
    path = folder / f"model_{preset}.pt"
    if train_steps <= 0:
        Segmenter.create(ModelConfig(**PRESETS[preset]), ["background", "object"]).save(path)
        return path
    image, labels = nuclei(256, seed=123)
    tifffile.imwrite(folder / "train.tif", image)
    tifffile.imwrite(folder / "train_labels.tif", labels)
    run_cli("train", "--image", str(folder / "train.tif"), "--instances", str(folder / "train_labels.tif"),
            "--out", str(path), "--steps", str(train_steps), "--preset", preset, "--device", "cpu")
    return path


# --- measurement helpers ------------------------------------------------------------------------


def median_time(fn, repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


@contextlib.contextmanager
def network_timer():
    """Accumulate the seconds spent in the network forward passes inside `predict_tiled`."""
    spent = [0.0]
    original = inference._forward

    def timed(*args, **kwargs):
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - start

    inference._forward = timed
    try:
        yield spent
    finally:
        inference._forward = original


def tile_pixels(size: int, multiple: int, tile: int = TILE, overlap: int = OVERLAP, batch: int = 1) -> int:
    """Pixels the network computes for a size x size image, overlaps counted (as predict_tiled tiles it)."""
    (t, o), _ = plan_tiles(size, size, tile, overlap, batch, multiple)
    n = len(TileGrid(size, t, o).starts())
    return (n * t) ** 2


def interleaved(cases: dict, repeats: int, warmup: int = 1) -> dict[str, tuple[float, float]]:
    """{name: (median seconds, median seconds inside the network's forward passes)} of each callable.

    The cases run in turn, round after round, so a burst of load elsewhere on the machine hits
    them alike and their ratios stay meaningful.
    """
    for fn in cases.values():
        for _ in range(warmup):
            fn()
    totals: dict[str, list[float]] = {name: [] for name in cases}
    nets: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, fn in cases.items():
            with network_timer() as spent:
                start = time.perf_counter()
                fn()
                totals[name].append(time.perf_counter() - start)
            nets[name].append(spent[0])
    return {name: (float(np.median(totals[name])), float(np.median(nets[name]))) for name in cases}


def predict_seconds(segmenter: Segmenter, image: np.ndarray, repeats: int, **kwargs) -> tuple[float, float]:
    """Median seconds of `segmenter.predict`, and the median seconds of its forward passes alone."""
    return interleaved({"predict": lambda: segmenter.predict(image, **kwargs)}, repeats)["predict"]


# Linux records a process's peak RSS across exec starting from the RSS of the process that forked
# it, so a child forked from this (large) benchmark process would report at least this process's
# size. A tiny Python launcher forks the measured command instead and reports its peak.
_LAUNCHER = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
with open(sys.argv[1], "w") as f:
    f.write(str(usage.ru_maxrss * scale))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_measured(command: list[str], stderr_path: Path) -> tuple[float, float, int]:
    """Run a command; (wall seconds, peak RSS of the command in GB, exit status)."""
    peak_path = stderr_path.with_suffix(".peak")
    with open(stderr_path, "w") as err:
        start = time.perf_counter()
        status = subprocess.run([sys.executable, "-S", "-c", _LAUNCHER, str(peak_path), *command],
                                stdout=subprocess.DEVNULL, stderr=err).returncode
        seconds = time.perf_counter() - start
    peak = int(peak_path.read_text()) / 1e9 if peak_path.exists() else float("nan")
    return seconds, peak, status


# --- 1. tiling overhead ---------------------------------------------------------------------------


def tiling(segmenter: Segmenter, sizes: list[int], repeats: int) -> list[dict]:
    rows = []
    net = segmenter.net.eval()
    for size in sizes:
        image = nuclei(size, seed=size)[0][None]
        stats = segmenter.normalisation.statistics(image)
        x = torch.from_numpy(segmenter.normalisation.apply(image, stats)[None])

        def forward():
            with torch.inference_mode():
                net(x)

        times = interleaved({
            "forward": forward,
            "one": lambda: segmenter.predict(image, tile_size=size),
            "tiled": lambda: segmenter.predict(image, tile_size=TILE, overlap=OVERLAP),
        }, repeats)
        raw, one, (tiled, tiled_net) = times["forward"][0], times["one"][0], times["tiled"]
        rows.append({
            "size": size,
            "forward_s": raw,
            "one_tile_s": one,
            "tiled_s": tiled,
            "tiled_network_s": tiled_net,
            "tiled_other_s": tiled - tiled_net,
            "tiled_pixel_factor": tile_pixels(size, segmenter.config.size_multiple) / size**2,
            "ratio_vs_one_tile": tiled / one,
            "ratio_vs_forward": tiled / raw,
        })
        print(_tiling_row(rows[-1]), flush=True)
    return rows


def _tiling_row(r: dict) -> str:
    return (f"| {r['size']}^2 | {r['forward_s']:.2f} | {r['one_tile_s']:.2f} | {r['tiled_s']:.2f} | "
            f"{r['tiled_network_s']:.2f} | {r['tiled_other_s']:.2f} | {r['tiled_pixel_factor']:.2f} | "
            f"{r['ratio_vs_one_tile']:.2f} | {r['ratio_vs_forward']:.2f} |")


TILING_HEADER = ("| image | net forward, 1 pass (s) | predict, 1 tile (s) | predict, 512/64 tiles (s) | "
                 "of which network (s) | of which blending etc. (s) | pixels computed / image | "
                 "tiled / 1 tile | tiled / forward |\n|---|---|---|---|---|---|---|---|---|")


# --- 2. CLI scaling and peak memory ---------------------------------------------------------------


def cli_scaling(model: Path, sizes: list[int], folder: Path, repeats: int, diameter: str = "auto") -> dict:
    """`diameter`: "auto" (the CLI's default: up to 3 passes), "trained" (one pass at the model's
    training diameter) or "canonical" (one pass, no resampling: the pixels releases before the
    scale-aware recipe predicted, to compare the code's speed alone)."""
    base = [sys.executable, "-m", "napari_unet", "predict", "--model", str(model), "--device", "cpu",
            "--overwrite", "--quiet"]
    if diameter != "auto":
        from napari_unet.nn.segmenter import Segmenter

        segmenter = Segmenter.load(model)
        size = segmenter.object_diameter if diameter == "trained" else segmenter.canonical_diameter
        base += ["--diameter", str(size)]

    def predict(image_path: Path) -> tuple[float, float, str]:
        outputs = ["--instances", str(folder / "out.tif"), "--semantic", str(folder / "sem.tif")]
        seconds, peak, status = run_measured([*base, "--image", str(image_path), *outputs], folder / "stderr.txt")
        message = (folder / "stderr.txt").read_text().strip()
        if status != 0:
            raise SystemExit(f"napari-unet predict failed on {image_path.name}:\n{message}")
        return seconds, peak, message

    # Fixed costs: interpreter, torch import, model load, on a 64^2 image.
    tiny = folder / "tiny.npy"
    np.save(tiny, nuclei(64)[0])
    predict(tiny)  # warm the file cache
    startup = [predict(tiny) for _ in range(max(repeats, 2))]
    startup_s = float(np.median([s for s, _, _ in startup]))
    startup_gb = float(np.median([g for _, g, _ in startup]))
    rows = []
    for size in sizes:
        path = folder / f"image_{size}.npy"
        np.save(path, nuclei(size, seed=size)[0])
        runs = [predict(path) for _ in range(repeats)]
        seconds = float(np.median([s for s, _, _ in runs]))
        peak = max(g for _, g, _ in runs)
        rows.append({
            "size": size,
            "megapixels": size * size / 1e6,
            "seconds": seconds,
            "mpx_per_s": size * size / 1e6 / seconds,
            "compute_mpx_per_s": size * size / 1e6 / max(seconds - startup_s, 1e-9),
            "peak_gb": peak,
            "peak_above_startup_gb": peak - startup_gb,
            "bytes_per_pixel": (peak - startup_gb) * 1e9 / size**2,
            "objects": runs[-1][2],
        })
        path.unlink()
        first = rows[0]
        rows[-1]["time_per_px_vs_first"] = first["mpx_per_s"] / rows[-1]["mpx_per_s"]
        rows[-1]["compute_time_per_px_vs_first"] = first["compute_mpx_per_s"] / rows[-1]["compute_mpx_per_s"]
        print(_cli_row(rows[-1]), flush=True)
    return {"startup_s": startup_s, "startup_gb": startup_gb, "rows": rows}


def _cli_row(r: dict) -> str:
    return (f"| {r['size']}^2 | {r['seconds']:.1f} | {r['mpx_per_s']:.2f} | {r['compute_mpx_per_s']:.2f} | "
            f"{r['time_per_px_vs_first']:.2f} | {r['compute_time_per_px_vs_first']:.2f} | {r['peak_gb']:.2f} | "
            f"{r['bytes_per_pixel']:.0f} | {r['objects']} |")


CLI_HEADER = ("| image | wall (s) | Mpx/s | Mpx/s less startup | time/px vs first | same, less startup | "
              "peak RSS (GB) | bytes/px above startup | output |\n|---|---|---|---|---|---|---|---|---|")


# --- 3. GFLOP/s against the measured peak ----------------------------------------------------------


def conv_peak(repeats: int) -> list[dict]:
    """GFLOP/s of single 3x3 convolutions (channels_last, inference mode) over a grid of widths and sizes.

    The peak is the best of the grid: large activations (64 ch x 512^2 = 64 MB) fall out of
    cache and run well below what the cores can do, so one big shape would understate it.
    """
    rows = []
    with torch.inference_mode():
        for channels in (32, 64, 128):
            for size in (64, 128, 256, 512):
                x = torch.randn(1, channels, size, size).contiguous(memory_format=torch.channels_last)
                w = torch.randn(channels, channels, 3, 3).contiguous(memory_format=torch.channels_last)
                flops = 2 * channels * channels * 9 * size * size
                inner = max(1, int(2e9 / flops))  # about 2 GFLOP per timing

                def conv(x=x, w=w, inner=inner):
                    for _ in range(inner):
                        F.conv2d(x, w, padding=1)

                seconds = median_time(conv, max(repeats, 5), warmup=1) / inner
                rows.append({"conv": f"{channels}->{channels} 3x3 on {size}^2", "gflops": flops / seconds / 1e9})
    return rows


def training_step_seconds(segmenter: Segmenter, repeats: int, batch: int = 8, patch: int = 128) -> float:
    """Median seconds of the real training step (`training._train_step`) on random patches."""
    from napari_unet.functionals.data import Batch
    from napari_unet.nn.training import _train_step

    rng = np.random.default_rng(0)
    config = segmenter.config
    data = Batch(
        image=rng.normal(size=(batch, config.in_channels, patch, patch)).astype(np.float32),
        semantic=rng.integers(0, config.n_classes, (batch, patch, patch)).astype(np.int64),
        boundary=(rng.random((batch, patch, patch)) < 0.1).astype(np.float32),
        distance=rng.random((batch, patch, patch)).astype(np.float32),
        instance_valid=np.ones((batch, patch, patch), bool),
    )
    segmenter = copy.deepcopy(segmenter)  # training changes the weights; leave the caller's model alone
    net = segmenter.net.train()
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-4)
    pos_weight = torch.tensor(3.0)
    return median_time(lambda: _train_step(net, optimizer, None, data, torch.device("cpu"), None, segmenter,
                                           pos_weight), max(repeats, 10), warmup=3)


def flops(segmenter: Segmenter, size: int, repeats: int) -> dict:
    peaks = conv_peak(repeats)
    peak = max(row["gflops"] for row in peaks)
    per_px = flops_per_pixel(segmenter.net, segmenter.config.in_channels)
    image = nuclei(size, seed=size)[0][None]
    total, network = predict_seconds(segmenter, image, repeats)
    step = training_step_seconds(segmenter, repeats)
    computed = tile_pixels(size, segmenter.config.size_multiple)
    rows = [
        {"what": f"inference, predict {size}^2 (image pixels)", "gflops": per_px * size**2 / total / 1e9},
        {"what": f"inference, predict {size}^2 (pixels computed, overlaps included)",
         "gflops": per_px * computed / total / 1e9},
        {"what": "inference, network forward passes only (predict's default tiles and batch)",
         "gflops": per_px * computed / network / 1e9},
        {"what": "training step, 8 x 128^2 (3x forward FLOPs)",
         "gflops": TRAINING_FACTOR * per_px * 8 * 128**2 / step / 1e9},
    ]
    for row in rows:
        row["fraction_of_peak"] = row["gflops"] / peak
    return {"peak_gflops": peak, "conv_shapes": peaks, "mflops_per_pixel": per_px / 1e6, "rows": rows,
            "predict_s": total, "network_s": network, "train_step_s": step}


# --- 4. post-processing share -----------------------------------------------------------------------


def instance_stages(prediction: Prediction, params: InstanceParams, use_instance_heads: bool,
                    top: int = 4) -> dict[str, float]:
    """Seconds of the costliest functions inside `instances_from_prediction` (cProfile, own time).

    Profiling by function rather than copying the steps keeps this right as `instances` changes;
    numpy/scipy/skimage calls show under their own names. Profiling adds a little overhead.
    """
    profile = cProfile.Profile()
    profile.runcall(instances_from_prediction, prediction, params, use_instance_heads=use_instance_heads)
    stats = pstats.Stats(profile).stats  # {(file, line, name): (calls, ncalls, own, cumulative, callers)}
    own: dict[str, float] = {}
    for (file, _, name), (_, _, tottime, _, _) in stats.items():
        if file != "~":
            label = f"{Path(file).stem}.{name}"
        else:  # "<method 'argsort' of 'numpy.ndarray' objects>", "<built-in method ...label>"
            label = name.split("'")[1] if "'" in name else name.strip("<>").split(".")[-1]
        own[label] = own.get(label, 0.0) + tottime
    return dict(sorted(own.items(), key=lambda kv: -kv[1])[:top])


def post_share(segmenter: Segmenter, size: int, repeats: int) -> dict:
    image, labels = nuclei(size, seed=7)
    image = image[None]
    params = InstanceParams()
    model_prediction = segmenter.predict(image)
    ideal = ideal_prediction(labels)
    cases = [
        ("model prediction, this model's instance mode", model_prediction, segmenter.instance_heads_trained),
        ("ideal prediction, instance heads", ideal, True),
        ("ideal prediction, distance transform (untrained heads)", ideal, False),
    ]
    calls = {"predict": lambda: segmenter.predict(image)}
    for name, prediction, heads in cases:
        calls[name] = lambda p=prediction, h=heads: instances_from_prediction(p, params, use_instance_heads=h)
    times = interleaved(calls, repeats)
    total, network = times["predict"]
    rows = []
    for name, prediction, heads in cases:
        seconds = times[name][0]
        count = int(instances_from_prediction(prediction, params, use_instance_heads=heads).max())
        stages = instance_stages(prediction, params, heads)
        rows.append({"case": name, "instances_s": seconds, "objects": count, "share_of_predict": seconds / total,
                     "share_of_network": seconds / network, "stages": stages})
    semantic = median_time(model_prediction.semantic, repeats)
    return {"size": size, "true_objects": int(labels.max()), "predict_s": total, "network_s": network,
            "semantic_s": semantic, "rows": rows}


def summarise(results: dict, sizes: list[int]) -> list[dict]:
    """One row per issue target: what was measured and whether it meets the target."""
    rows = []

    def add(target: str, measured: str, met: bool | None) -> None:
        rows.append({"target": target, "measured": measured, "met": "n/a" if met is None else ("yes" if met else "NO")})

    for r in results.get("tiling", []):
        add(f"tiled / one pass <= {TARGETS['tiling_ratio']} ({r['size']}^2)", f"{r['ratio_vs_one_tile']:.2f}",
            r["ratio_vs_one_tile"] <= TARGETS["tiling_ratio"])
    cli = results.get("cli", {}).get("rows", [])
    if cli:
        last = cli[-1]
        if last["size"] >= 8192:
            add(f"peak RSS < {TARGETS['peak_gb']} GB at 8192^2", f"{last['peak_gb']:.2f} GB at {last['size']}^2",
                last["peak_gb"] < TARGETS["peak_gb"])
        elif len(cli) >= 2 and last["size"] >= 2048:  # linear in pixels from the two largest sizes
            a, b = cli[-2], cli[-1]
            slope = (b["peak_gb"] - a["peak_gb"]) / (b["megapixels"] - a["megapixels"])
            estimate = b["peak_gb"] + slope * (8192**2 / 1e6 - b["megapixels"])
            add(f"peak RSS < {TARGETS['peak_gb']} GB at 8192^2",
                f"{estimate:.2f} GB extrapolated from {a['size']}^2 and {b['size']}^2", None)
        if len(cli) >= 2:
            first = cli[0]
            for key, what in (("time_per_px_vs_first", "wall"), ("compute_time_per_px_vs_first", "wall less startup")):
                add(f"time/px within {TARGETS['linearity']:.0%}, {first['size']}^2 to {last['size']}^2 ({what})",
                    f"{last[key]:.2f}x", abs(last[key] - 1) <= TARGETS["linearity"])
    if "flops" in results:
        f = results["flops"]
        for row in f["rows"]:
            target = row["what"].startswith("inference, predict")
            add(f"{row['what']} >= {TARGETS['inference_peak_fraction']:.0%} of peak" if target else
                f"{row['what']}: % of peak (no target)", f"{row['fraction_of_peak']:.1%} of "
                f"{f['peak_gflops']:.0f} GFLOP/s", row["fraction_of_peak"] >= TARGETS["inference_peak_fraction"]
                if target else None)
    if "post" in results:
        for row in results["post"]["rows"]:
            add(f"instances < {TARGETS['post_share']:.0%} of network ({row['case']})",
                f"{row['share_of_network']:.2f}", row["share_of_network"] < TARGETS["post_share"])
    return rows


# --- main ---------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2048, 4096, 8192], help="CLI image sizes")
    parser.add_argument("--tiling-sizes", type=int, nargs="+", default=[1024, 2048])
    parser.add_argument("--post-size", type=int, default=2048, help="image size for the FLOP/s and post sections")
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--repeats", type=int, default=3, help="timings are medians of this many runs")
    parser.add_argument("--cli-repeats", type=int, default=1, help="CLI runs per size (the 8192^2 one is long)")
    parser.add_argument("--train-steps", type=int, default=150, help="CLI training steps first (0: untrained)")
    parser.add_argument("--cli-diameter", choices=["auto", "trained", "canonical"], default="auto",
                        help="CLI section: predict at the measured diameter (auto), the training one, "
                             "or the network's own (canonical: no resampling)")
    parser.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=SECTIONS)
    args = parser.parse_args()

    print(f"machine: {machine()}", flush=True)
    results: dict = {"preset": args.preset, "targets": TARGETS, "train_steps": args.train_steps}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        start = time.perf_counter()
        model = make_model(args.preset, args.train_steps, folder)
        print(f"model: {args.preset}, trained {args.train_steps} steps in {time.perf_counter() - start:.0f} s",
              flush=True)
        segmenter = Segmenter.load(model)
        torch.set_num_threads(os.cpu_count() or 1)  # as the CLI and training do

        if "tiling" in args.sections:
            print(f"\n## Tiling overhead (target: tiled / one pass <= {TARGETS['tiling_ratio']})\n")
            print(TILING_HEADER, flush=True)
            results["tiling"] = tiling(segmenter, args.tiling_sizes, args.repeats)

        if "cli" in args.sections:
            print(f"\n## napari-unet predict through the CLI (targets: peak < {TARGETS['peak_gb']} GB at 8192^2, "
                  f"time/px within {TARGETS['linearity']:.0%} from 2048^2 to 8192^2)\n")
            print(CLI_HEADER, flush=True)
            results["cli"] = cli = cli_scaling(model, args.sizes, folder, args.cli_repeats, args.cli_diameter)
            print(f"\nstartup (64^2 image): {cli['startup_s']:.1f} s, {cli['startup_gb']:.2f} GB peak RSS")

        if "flops" in args.sections:
            print(f"\n## GFLOP/s against the measured convolution peak (target: inference >= "
                  f"{TARGETS['inference_peak_fraction']:.0%})\n")
            results["flops"] = f = flops(segmenter, args.post_size, args.repeats)
            print("| dense convolution | GFLOP/s |\n|---|---|")
            for row in f["conv_shapes"]:
                print(f"| {row['conv']} | {row['gflops']:.1f} |")
            print(f"\npeak: {f['peak_gflops']:.1f} GFLOP/s; U-Net {args.preset}: {f['mflops_per_pixel']:.4f} "
                  f"MFLOP per pixel forward\n")
            print("| workload | GFLOP/s | % of peak |\n|---|---|---|")
            for row in f["rows"]:
                print(f"| {row['what']} | {row['gflops']:.1f} | {row['fraction_of_peak']:.0%} |")

        if "post" in args.sections:
            print(f"\n## Instance post-processing vs network, {args.post_size}^2 (target: < "
                  f"{TARGETS['post_share']:.0%} of the network time)\n")
            results["post"] = p = post_share(segmenter, args.post_size, args.repeats)
            print(f"predict {p['predict_s']:.2f} s (network forward passes {p['network_s']:.2f} s); "
                  f"semantic() {p['semantic_s']:.2f} s; {p['true_objects']} objects drawn\n")
            print("| prediction | instances (s) | objects | / predict | / network passes | "
                  "costliest functions (own time) |\n|---|---|---|---|---|---|")
            for row in p["rows"]:
                steps = ", ".join(f"{k} {v:.2f} s" for k, v in list(row["stages"].items())[:3])
                print(f"| {row['case']} | {row['instances_s']:.2f} | {row['objects']} | "
                      f"{row['share_of_predict']:.2f} | {row['share_of_network']:.2f} | {steps} |")

    verdicts = summarise(results, args.sizes)
    if verdicts:
        print("\n## Targets\n\n| target | measured | met |\n|---|---|---|")
        for row in verdicts:
            print(f"| {row['target']} | {row['measured']} | {row['met']} |")
        results["verdicts"] = verdicts
    print(f"\nresults: {save('inference_speed', results)}")


if __name__ == "__main__":
    main()
