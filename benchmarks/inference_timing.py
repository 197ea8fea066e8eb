"""Timers for the inference benchmarks: medians of repeated calls, the share spent in the network's
forward passes, several cases interleaved so that load elsewhere hits them alike."""

from __future__ import annotations

import contextlib
import time

import numpy as np

from napari_unet.nn import inference
from napari_unet.nn.segmenter import Segmenter


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
