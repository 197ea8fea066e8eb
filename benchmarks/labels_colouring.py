"""napari's colouring of a uint32 instance tile (the texture it uploads at every view move), by backend.

napari 0.9 maps uint32 labels to a uint8 texture through a modulo on the CPU, on the GUI thread, at every
view move of a visible instances layer: with numpy by default, with numba or PartSegCore's compiled
backend when one is installed (neither is a napari-unet dependency). This times that call
(`_cast_labels_data_to_texture_dtype_auto`, napari's private function) on tiles of the sizes napari
reads from a store's pyramid (the view's region at the level shown, widened to 1024 px chunks),
the backends interleaved so machine load hits them alike; and the first call of each (numba compiles
then, or loads its cache). Backends not installed are skipped.

    python3 benchmarks/labels_colouring.py --sizes 1024 2048 3072 --repeats 12
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np


def tile(size: int, seed: int = 0) -> np.ndarray:
    """A uint32 instance tile: 16 px squares of random ids up to 200,000, half of them background."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, 200_000, (size // 16, size // 16), dtype=np.uint32)
    ids[rng.random(ids.shape) < 0.5] = 0
    return ids.repeat(16, 0).repeat(16, 1)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048, 3072])
    parser.add_argument("--repeats", type=int, default=12)
    args = parser.parse_args(argv)

    from napari.utils.colormap_backend import ColormapBackend
    from napari.utils.colormaps import _accelerated_cmap as accelerated
    from napari.utils.colormaps.colormap import (
        _cast_labels_data_to_texture_dtype_auto as colour,
    )
    from napari.utils.colormaps.colormap_utils import label_colormap

    backends = ["pure_python"]
    backends += ["numba"] if accelerated.numba is not None else []
    backends += ["partsegcore"] if accelerated.partsegcore_mapping is not None else []
    colormap = label_colormap(49)  # napari's default for a Labels layer
    result = {"load_average_1min_before": os.getloadavg()[0], "backends": backends, "sizes": {}}
    for size in args.sizes:
        data = tile(size)
        times: dict[str, list[float]] = {backend: [] for backend in backends}
        for _ in range(args.repeats):
            for backend in backends:
                accelerated.set_colormap_backend(ColormapBackend(backend))
                start = time.perf_counter()
                colour(data, colormap)
                times[backend].append((time.perf_counter() - start) * 1000)
        result["sizes"][size] = {backend: {"first_ms": round(ms[0], 1), "median_ms": round(float(np.median(ms[1:])), 1)}
                                 for backend, ms in times.items()}
        print(size, result["sizes"][size], flush=True)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
