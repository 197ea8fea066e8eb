"""Section 2 of inference_speed.py: `napari-unet predict` through the CLI, its time and peak memory
against image size."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from synthetic_nuclei import nuclei


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


def cli_scaling(model: Path, sizes: list[int], folder: Path, repeats: int, diameter: str = "auto") -> dict:
    """`diameter`: "auto" (the CLI's default: up to 4 passes), "trained" (one pass at the model's
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
