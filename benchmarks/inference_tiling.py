"""Section 1 of inference_speed.py: the cost of tiled prediction against one whole-image pass."""

from __future__ import annotations

import torch
from inference_timing import interleaved
from synthetic_nuclei import nuclei

from napari_unet.nn.inference import TileGrid, plan_tiles
from napari_unet.nn.segmenter import Segmenter

TILE, OVERLAP = 512, 64  # the defaults of Segmenter.predict and the CLI


def tile_pixels(size: int, multiple: int, tile: int = TILE, overlap: int = OVERLAP, batch: int = 1) -> int:
    """Pixels the network computes for a size x size image, overlaps counted (as predict_tiled tiles it)."""
    (t, o), _ = plan_tiles(size, size, tile, overlap, batch, multiple)
    n = len(TileGrid(size, t, o).starts())
    return (n * t) ** 2


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
