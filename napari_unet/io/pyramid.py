"""Pyramids of label images for browsing a plane too big to show whole: levels halved in size.

Level k keeps every 2**k-th pixel of the plane (nearest pixel: labels stay labels, no new
ids appear), so a region of level 0 updates the same region of every level without reading
anything else: a block written by a prediction or an edit of the correct step keeps the
pyramid current.
"""

from __future__ import annotations

import numpy as np

COARSEST = 1024  # a pyramid's smallest level is at most this many pixels a side


def pyramid_depth(shape: tuple[int, int], coarsest: int = COARSEST) -> int:
    """How many halved levels a (H, W) plane gets so its smallest one is at most `coarsest` a side."""
    depth, side = 0, max(shape)
    while side > coarsest:
        side, depth = -(-side // 2), depth + 1
    return depth


def write_coarser_levels(levels: list, values: np.ndarray, y: int, x: int) -> None:
    """Write into `levels[1:]` (level k: every 2**k-th pixel of `levels[0]`) the pixels of `values`,
    the region of level 0 whose top-left pixel is (y, x); leading axes (channels) are kept."""
    for k, level in enumerate(levels[1:], start=1):
        f = 2**k
        ly, lx = -(-y // f), -(-x // f)  # the first level pixel at or after the region's corner
        part = values[..., ly * f - y::f, lx * f - x::f]
        if part.shape[-1] and part.shape[-2]:
            level[..., ly:ly + part.shape[-2], lx:lx + part.shape[-1]] = part


def level_chunks(level) -> list[tuple[int, int]]:
    """Top-left pixel of each chunk of a pyramid level (a zarr array; leading axes whole)."""
    (height, width), (ch, cw) = level.shape[-2:], level.chunks[-2:]
    return [(y, x) for y in range(0, height, ch) for x in range(0, width, cw)]


def halve_chunk(finer, coarser, y: int, x: int) -> None:
    """Write the chunk of `coarser` at (y, x) from `finer`, the level above it (every 2nd pixel: level k of
    the plane is every 2nd pixel of level k - 1); reads only the 2x2 chunks' region of `finer` it needs.
    One task per chunk writes a level with no two writers on a chunk (`nn.chunked_jobs`)."""
    ch, cw = coarser.chunks[-2:]
    values = finer[..., 2 * y:2 * (y + ch):2, 2 * x:2 * (x + cw):2]
    coarser[..., y:y + values.shape[-2], x:x + values.shape[-1]] = values
