"""Section 3 of inference_speed.py: GFLOP/s of inference and training against the CPU's measured
dense-convolution peak."""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from flops import TRAINING_FACTOR, flops_per_pixel
from inference_tiling import tile_pixels
from inference_timing import median_time, predict_seconds
from synthetic_nuclei import nuclei

from napari_unet.nn.segmenter import Segmenter


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
