"""Prediction speed on a GPU: the network's pass and the CPU post-processing, for one big plane.

    python benchmarks/gpu_speed.py [--size 4096] [--model nuclei] [--out results/gpu_speed.json]

Tiled prediction of a `--size`^2 plane with the shipped model (resampled to its canonical
object size, as the dock does), for several tile and batch sizes, then the instance step on
the CPU. Timings are medians of three runs after a warm-up, with the GPU synchronised.
Network speed does not depend on the image's content, so the plane is smooth noise.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from common import machine
from scipy import ndimage

from napari_unet.io.pretrained import checkpoint_path
from napari_unet.nn.device import pick_device
from napari_unet.nn.segmenter import Segmenter


def timed(run, repeats: int = 3) -> float:
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    run()  # warm-up: kernels chosen, memory pooled
    times = []
    for _ in range(repeats):
        sync()
        tick = time.perf_counter()
        run()
        sync()
        times.append(time.perf_counter() - tick)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--model", default="nuclei")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "gpu_speed.json")
    args = parser.parse_args()
    device = pick_device("auto")
    segmenter = Segmenter.load(checkpoint_path(args.model), device=device)
    rng = np.random.default_rng(0)
    plane = ndimage.gaussian_filter(rng.normal(size=(args.size, args.size)), 3).astype(np.float32)[None]
    megapixels = args.size**2 / 1e6
    rows = []
    for tile, batch in ((512, 4), (512, 16), (1024, 4)):
        seconds = timed(lambda: segmenter.predict(plane, tile_size=tile, batch_size=batch))
        rows.append({"step": f"network, tile {tile}, batch {batch}", "seconds": round(seconds, 3),
                     "mpx_per_s": round(megapixels / seconds, 1)})
        print(rows[-1], flush=True)
    prediction = segmenter.predict(plane)
    seconds = timed(lambda: segmenter.instances(prediction), repeats=1)
    rows.append({"step": "instances (CPU)", "seconds": round(seconds, 3), "mpx_per_s": round(megapixels / seconds, 1)})
    print(rows[-1], flush=True)
    payload = {"machine": machine(), "device": str(device), "size": args.size, "model": args.model, "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2) + "\n")


if __name__ == "__main__":
    main()
