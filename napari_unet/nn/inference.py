"""Tiled inference with overlap and smooth blending, in memory bounded by the tile size.

Tiles are processed one row of tiles at a time; rows of the output are finished as
soon as no later tile touches them, so only a band of about one tile's height is
accumulated, whatever the image size. Inputs may be lazy (zarr, dask): only the
tiles are read.

Test-time flips: with `flips` > 1 every tile also goes through the network mirrored and/or
turned, each output is turned back and the logits averaged. Every prediction path (planes,
stacks, batches, blocks of a zarr store) runs its tiles through here. All outputs are
per-pixel scalars (class logits, boundary, distance), so turning a map back is all an
output needs; a vector-valued head (flows) would also need its components turned.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from napari_unet import limits
from napari_unet.errors import UserInputError
from napari_unet.functionals.normalisation import Normalisation
from napari_unet.functionals.prediction import Prediction
from napari_unet.nn.model import BOUNDARY_CHANNEL, DISTANCE_CHANNEL, UNet


FLIP_CHOICES = (1, 2, 4, 8)  # network passes per tile
# CLI and dock Predict: off, since on val N=2-4 gave < 0.01 of AP@0.5 for 1.6-3.3x the time (BENCHMARKS.md).
DEFAULT_FLIPS = 1
# The dihedral group's 8 symmetries as (quarter turns, mirrored), in the order passes add them:
# 2 adds the mirror image, 4 the half turns (same tile shape), 8 the quarter turns.
SYMMETRIES = ((0, False), (0, True), (2, False), (2, True), (1, False), (1, True), (3, False), (3, True))


class Stopped(Exception):
    """Raised inside inference when the caller's stop flag is set."""


@dataclass(frozen=True)
class TileGrid:
    """Tile origins along one axis: evenly spaced, the last tile flush with the end."""

    size: int
    tile: int
    overlap: int

    def starts(self) -> list[int]:
        if self.size <= self.tile:
            return [0]
        step = self.tile - self.overlap
        n = int(np.ceil((self.size - self.tile) / step)) + 1
        return sorted({int(round(i * (self.size - self.tile) / (n - 1))) for i in range(n)})


def check_tiling(tile_size: int, overlap: int, batch_size: int) -> None:
    """Tile settings that make sense, refused before any tile is read."""
    limits.whole_number("tile size", tile_size, 32, limits.MAX_TILE_SIZE)
    limits.whole_number("overlap", overlap, 0, limits.MAX_TILE_SIZE)  # at most half a tile is used
    limits.whole_number("batch size", batch_size, 1, limits.MAX_BATCH_SIZE)


def check_flips(flips: int) -> None:
    """Test-time flips the network pass knows, refused before any tile is read."""
    if isinstance(flips, bool) or flips not in FLIP_CHOICES:
        choices = ", ".join(map(str, FLIP_CHOICES))
        raise UserInputError(f"test-time flips must be one of {choices} (1: off), got {flips!r}")


def plan_tiles(
    height: int, width: int, tile_size: int, overlap: int, batch_size: int, multiple: int
) -> tuple[tuple[int, int], tuple[int, int]]:
    """(tile, overlap) along each axis.

    An image with no more pixels than one batch of tiles is one tile: same memory, no
    overlap recomputed. Otherwise tiles shrink so neighbours overlap by `overlap`, not
    more (a fixed tile spread evenly can overlap by several times that: 2.25x the pixels
    for 1024^2 in 512 tiles), keeping a multiple of `multiple` so no padding is added.
    """
    if height * width <= batch_size * tile_size**2:
        return (height, 0), (width, 0)

    def fit(size: int) -> tuple[int, int]:
        if size <= tile_size:
            return size, 0
        ov = min(overlap, tile_size // 2)
        n = int(np.ceil((size - ov) / (tile_size - ov)))
        tile = int(np.ceil((size + (n - 1) * ov) / n / multiple)) * multiple
        tile = min(tile_size, tile)
        return tile, min(ov, tile // 2)

    return fit(height), fit(width)


def blend_window(tile: int, overlap: int) -> np.ndarray:
    """1D weights: a raised-cosine ramp over the overlap, flat in the middle, never exactly 0."""
    w = np.ones(tile, np.float32)
    if overlap > 0:
        ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(overlap) + 0.5) / overlap)
        w[:overlap] = ramp
        w[-overlap:] = np.minimum(w[-overlap:], ramp[::-1])
    return np.maximum(w, 1e-3)


def predict_tiled(
    net: UNet,
    image,
    stats: np.ndarray,
    *,
    device: torch.device,
    tile_size: int = 512,
    overlap: int = 64,
    batch_size: int = 4,
    amp_dtype: torch.dtype | None = None,
    out_dtype: np.dtype = np.float32,
    flips: int = 1,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Prediction:
    """Predict a (C, H, W) image (numpy or lazy) tile by tile and blend the tiles smoothly.

    `flips`: network passes per tile over the image's symmetries (FLIP_CHOICES), averaged."""
    check_tiling(tile_size, overlap, batch_size)
    check_flips(flips)
    _, height, width = image.shape
    (tile_h, overlap_h), (tile_w, overlap_w) = plan_tiles(
        height, width, tile_size, overlap, batch_size, net.config.size_multiple
    )
    ys = TileGrid(height, tile_h, overlap_h).starts()
    xs = TileGrid(width, tile_w, overlap_w).starts()
    weight = np.outer(blend_window(tile_h, overlap_h), blend_window(tile_w, overlap_w))
    n_out = net.config.out_channels
    out = np.empty((n_out, height, width), dtype=out_dtype)
    band = np.zeros((n_out, tile_h, width), np.float32)  # accumulates the current band of rows
    band_weight = np.zeros((tile_h, width), np.float32)
    total, done = len(ys) * len(xs), 0
    net.eval()
    for row, y in enumerate(ys):
        for x_batch in _chunks(xs, batch_size):
            if should_stop is not None and should_stop():
                raise Stopped
            tiles = np.stack(
                [Normalisation.apply(image[:, y : y + tile_h, x : x + tile_w], stats) for x in x_batch]
            )
            raw = _forward(net, tiles, device, amp_dtype, flips)
            for x, tile_out in zip(x_batch, raw):
                band[:, :, x : x + tile_w] += tile_out * weight
                band_weight[:, x : x + tile_w] += weight
            done += len(x_batch)
            if progress is not None:
                progress(done, total)
        next_y = ys[row + 1] if row + 1 < len(ys) else y + tile_h
        finished = next_y - y
        # Activate the finished rows in float32 now; `out` may be float16 (half the memory).
        out[:, y:next_y] = _activate_inplace(band[:, :finished] / band_weight[:finished], net.config.n_classes)
        band = np.roll(band, -finished, axis=1)
        band_weight = np.roll(band_weight, -finished, axis=0)
        band[:, -finished:] = 0
        band_weight[-finished:] = 0
    k = net.config.n_classes
    return Prediction(probabilities=out[:k], boundary=out[k + BOUNDARY_CHANNEL], distance=out[k + DISTANCE_CHANNEL])


def _chunks(items: list[int], size: int) -> Iterator[list[int]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


@torch.inference_mode()
def _forward(net: UNet, tiles: np.ndarray, device: torch.device, amp_dtype: torch.dtype | None,
             flips: int = 1) -> np.ndarray:
    """The network's logits for a batch of tiles, averaged over the first `flips` SYMMETRIES."""
    batch = torch.from_numpy(tiles).to(device, non_blocking=True)
    total = None
    for turns, mirrored in SYMMETRIES[:flips]:
        seen = torch.rot90(batch, turns, dims=(2, 3)) if turns else batch
        logits = _logits(net, seen.flip(3) if mirrored else seen, device, amp_dtype)
        logits = logits.flip(3) if mirrored else logits
        logits = torch.rot90(logits, -turns, dims=(2, 3)) if turns else logits
        total = logits if total is None else total.add_(logits)
    if flips > 1:
        total /= flips
    return total.cpu().numpy()


def _logits(net: UNet, batch: torch.Tensor, device: torch.device, amp_dtype: torch.dtype | None) -> torch.Tensor:
    if amp_dtype is not None:
        with torch.autocast(device.type, dtype=amp_dtype):
            return net(batch).float()
    return net(batch).float()


def _activate_inplace(logits: np.ndarray, n_classes: int) -> np.ndarray:
    """Softmax over the classes and sigmoid for the instance heads, in place; returns `logits`."""
    classes = logits[:n_classes]
    classes -= classes.max(axis=0, keepdims=True)
    np.exp(classes, out=classes)
    classes /= classes.sum(axis=0, keepdims=True)
    heads = logits[n_classes:]
    np.negative(heads, out=heads)
    np.exp(heads, out=heads)
    heads += 1
    np.reciprocal(heads, out=heads)
    return logits
