"""Robust percentile normalisation, per image and channel, so intensity ranges never matter.

Percentiles are taken from a strided subsample, so huge or lazy (zarr, dask) images
are never read whole just to normalise them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from napari_unet import limits
from napari_unet.errors import UserInputError
from napari_unet.functionals.layout import ImageLayout

SAMPLE_PIXELS = 2**20  # pixels per channel used to estimate percentiles


def sample_stride(height: int, width: int) -> int:
    """The step of the grid of about SAMPLE_PIXELS pixels that `Normalisation.statistics` reads."""
    return max(1, int(np.sqrt(height * width / SAMPLE_PIXELS)))


@dataclass(frozen=True)
class Normalisation:
    """How raw intensities map to network inputs; stored in checkpoints."""

    low_percentile: float = 1.0
    high_percentile: float = 99.8

    def __post_init__(self) -> None:
        low = limits.real_number("low percentile", self.low_percentile, 0.0, 100.0)
        limits.real_number("high percentile", self.high_percentile, low, 100.0, low_open=True)

    def to_dict(self) -> dict:
        return asdict(self)

    def statistics(self, image) -> np.ndarray:
        """Per-channel (low, high) intensities of a (C, H, W) image, shape (C, 2)."""
        channels, height, width = image.shape
        stride = sample_stride(height, width)
        sample = np.asarray(image[:, ::stride, ::stride], dtype=np.float32).reshape(channels, -1)
        if not np.all(np.isfinite(sample)):
            raise UserInputError(
                "the image contains NaN or infinite values; replace them (e.g. with numpy.nan_to_num) first"
            )
        low = np.percentile(sample, self.low_percentile, axis=1)
        high = np.percentile(sample, self.high_percentile, axis=1)
        flat = high - low < 1e-6
        if np.any(flat):  # a nearly constant channel: fall back to min/max, then to an offset
            high = np.where(flat, sample.max(axis=1), high)
            low = np.where(flat, sample.min(axis=1), low)
        # a constant channel still gets a spread float32 can hold: 1e-6 alone vanishes beside 50
        spread = np.maximum(high - low, 1e-6 * np.maximum(1.0, np.abs(low)))
        return np.stack([low, low + spread], axis=1).astype(np.float32)

    @staticmethod
    def apply(tile, stats: np.ndarray) -> np.ndarray:
        """Map a (C, h, w) tile to float32 with the image's statistics; NaNs become a clear error."""
        tile = np.asarray(tile, dtype=np.float32)
        if not np.all(np.isfinite(tile)):
            raise UserInputError(
                "the image contains NaN or infinite values; replace them (e.g. with numpy.nan_to_num) first"
            )
        low = stats[:, 0, None, None]
        high = stats[:, 1, None, None]
        return (tile - low) / (high - low)


def as_channels_first(image, *, rgb: bool | None = None, channel_axis: int | None = None):
    """Return a (C, H, W) array of a 2D image given as (H, W), (H, W, 3|4) RGB(A) or with a channel axis.

    `rgb=None` treats a last axis of 3 or 4 as colour, as napari does. Alpha is dropped.
    Anything else with more than two spatial axes is a clear error that says how to proceed.
    """
    shape = tuple(image.shape)
    if channel_axis is not None and len(shape) != 3:
        raise UserInputError(f"expected a 2D image with one channel axis, got shape {shape}")
    if rgb is None:
        rgb = channel_axis is None and len(shape) == 3 and shape[-1] in (3, 4)
    layout = ImageLayout.stored(shape, rgb=bool(rgb) and len(shape) == 3, channel_axis=None if rgb else channel_axis)
    if layout.stack_shape:
        raise UserInputError(
            f"expected a 2D image (H, W) or RGB (H, W, 3), got shape {shape}: "
            "for a multichannel image say which axis holds the channels (--channel-axis), "
            "for a 3D stack or time series save one plane as a 2D file or use the napari widgets"
        )
    if layout.channel_axis == 0:
        return image  # already channels first: a lazy (zarr) image stays lazy, read tile by tile
    if hasattr(image, "dask"):  # lazy: reorder without reading (a 32768^2 plane is 2 GB of uint16)
        if layout.rgb:
            return np.moveaxis(image[..., :3], -1, 0)
        return image[None] if layout.channel_axis is None else np.moveaxis(image, layout.channel_axis, 0)
    return layout.image_plane(image, ())
