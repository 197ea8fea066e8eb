"""Shared helpers for the benchmark scripts: machine description, baselines, result files."""

from __future__ import annotations

import ast
import json
import os
import platform
import subprocess
import sys
from datetime import date
from pathlib import Path

import numpy as np
from scipy import ndimage
from skimage.filters import gaussian, threshold_otsu
from skimage.segmentation import watershed

RESULTS = Path(__file__).resolve().parent / "results"


def shared_data(name: str) -> Path:
    """`shared/data/NAME` beside the checkout or beside any folder above it (worktrees sit deeper)."""
    for folder in Path(__file__).resolve().parents:
        candidate = folder / "shared" / "data" / name
        if candidate.is_dir():
            return candidate
    return Path(__file__).resolve().parents[2] / "shared" / "data" / name


def result_of(generator):
    """Run a generator (a core job that yields progress records) to its end and return what it returns."""
    while True:
        try:
            next(generator)
        except StopIteration as done:
            return done.value


def machine(threads: int | None = None) -> str:
    """One line: CPU model, cores, torch version and threads (`threads`: what the workers were given)."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    line = f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, {threads or torch.get_num_threads()} threads"
    return f"{torch.cuda.get_device_name()}, {line}" if torch.cuda.is_available() else line


def otsu_watershed(image: np.ndarray, min_distance: int = 4) -> np.ndarray:
    """The classical baseline: Otsu threshold, then watershed on the distance transform."""
    smooth = gaussian(image.astype(np.float32), 1.0, preserve_range=True)
    mask = smooth > threshold_otsu(smooth)
    distance = ndimage.distance_transform_edt(mask)
    peaks = (distance == ndimage.maximum_filter(distance, size=2 * min_distance + 1)) & mask & (distance > 1)
    markers, _ = ndimage.label(ndimage.binary_dilation(peaks, iterations=1))
    return watershed(-distance, markers, mask=mask)


def run_training(trainer, log_every: int = 0, label: str = ""):
    """Run a Trainer to its end and return its model, printing a progress line every `log_every` steps."""
    generator = trainer.run()
    while True:
        try:
            record = next(generator)
        except StopIteration as done:
            return done.value
        if log_every and record.step % log_every == 0:
            print(f"{label}step {record.step}, {record.elapsed:.0f} s, loss {record.loss:.4f}", flush=True)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """Run `python -m napari_unet ...`, failing loudly with its stderr."""
    result = subprocess.run([sys.executable, "-m", "napari_unet", *args, "--quiet"], capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"napari-unet {' '.join(args)} failed:\n{result.stderr}")
    return result


def save(name: str, payload: dict) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {"date": date.today().isoformat(), "machine": machine(), **payload}
    path.write_text(json.dumps(payload, indent=2))
    return path


def overrides(pairs: list[str]) -> dict:
    """TrainConfig fields from `--set KEY=VALUE` pairs (values as Python literals: 3e-4, 12.3, True)."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--set takes KEY=VALUE, not {pair!r}")
        out[key] = ast.literal_eval(value)
    return out
