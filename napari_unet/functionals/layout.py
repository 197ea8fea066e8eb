"""How an image's axes map onto channels, stack planes and the two spatial axes.

napari's convention, read in one place: the last two axes of a (non-RGB) image are height
and width; an RGB(A) image has its colours on a trailing axis; an optional *channel axis*
(one of the leading axes) holds channels; every other leading axis is a stack axis (Z, T,
...). Labels paired with an image have its shape without the channel / colour axis, so a
*plane* is one (H, W) slice of them, addressed by its indices along the stack axes
(`()` for a 2D image). The napari layer bridge, the training-data builder, the command line
and the OME-Zarr axis plan all ask an `ImageLayout` instead of re-deriving this.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from napari_unet.errors import UserInputError

Plane = tuple  # indices along the stack axes; () for a 2D image


def plane_label(plane: Plane) -> str:
    """How a plane is named to users: 'plane 10', 'plane 2, 10' ('' for a 2D image's only plane)."""
    return "plane " + ", ".join(str(int(i)) for i in plane) if plane else ""


@dataclass(frozen=True)
class ImageLayout:
    """The axis roles of an image of shape `data_shape` (colour axis included when `rgb`)."""

    data_shape: tuple[int, ...]
    rgb: bool = False
    channel_axis: int | None = None  # index into the data axes; never height, width or colour

    @classmethod
    def of(cls, shape, *, rgb: bool = False, channel_axis: int | None = None, name: str = "image") -> ImageLayout:
        """Validate the axis roles of an image of `shape`; a UserInputError says what is wrong."""
        shape = tuple(int(n) for n in shape)
        spatial_ndim = len(shape) - (1 if rgb else 0)
        if spatial_ndim < 2:
            raise UserInputError(f"'{name}' is not an image with two spatial axes (shape {shape})")
        if rgb or channel_axis is None:
            return cls(shape, bool(rgb), None)
        axis = int(channel_axis) % spatial_ndim
        if axis >= spatial_ndim - 2:
            raise UserInputError(f"'{name}': the channel axis must be one of the leading axes, not height or width")
        return cls(shape, False, axis)

    # --- axes ------------------------------------------------------------------------------------

    @property
    def image_axes(self) -> list[int]:
        """Data axes napari treats as layer dimensions (the colour axis excluded)."""
        return list(range(len(self.data_shape) - (1 if self.rgb else 0)))

    @property
    def labels_axes(self) -> list[int]:
        """Image data axes that the paired labels have (all but the channel and colour axes)."""
        return [a for a in self.image_axes if a != self.channel_axis]

    @property
    def labels_shape(self) -> tuple[int, ...]:
        return tuple(self.data_shape[a] for a in self.labels_axes)

    @property
    def stack_shape(self) -> tuple[int, ...]:
        return self.labels_shape[:-2]

    @property
    def plane_shape(self) -> tuple[int, int]:
        return self.labels_shape[-2:]

    @property
    def n_channels(self) -> int:
        if self.rgb:
            return 3  # alpha is dropped
        return 1 if self.channel_axis is None else self.data_shape[self.channel_axis]

    # --- planes ----------------------------------------------------------------------------------

    def planes(self) -> list[Plane]:
        """Every plane, in C order."""
        return [tuple(int(i) for i in idx) for idx in np.ndindex(*self.stack_shape)] if self.stack_shape else [()]

    def planes_with_data(self, labels) -> Iterator[Plane]:
        """Planes of `labels` (shape `labels_shape`) holding any non-zero value."""
        data = np.asarray(labels)
        if not self.stack_shape:
            if data.any():
                yield ()
            return
        flat = data.reshape(int(np.prod(self.stack_shape)), -1)
        for k in np.flatnonzero(flat.any(axis=1)):
            yield tuple(int(i) for i in np.unravel_index(k, self.stack_shape))

    def image_plane(self, data, plane: Plane, region: tuple[slice, slice] | None = None) -> np.ndarray:
        """(C, H, W) numpy array of one plane of the image `data` (only that plane, or region, is read)."""
        index: list = []
        stack = iter(plane)
        for axis in self.image_axes[:-2]:
            index.append(slice(None) if axis == self.channel_axis else int(next(stack)))
        index.extend(region if region is not None else (slice(None), slice(None)))
        arr = np.asarray(data[tuple(index)])
        if self.rgb:
            return np.moveaxis(arr[..., :3], -1, 0)
        if self.channel_axis is not None:
            return arr  # the channel axis is the only leading axis left
        return arr[None]


class LazyPlane:
    """One plane of a (possibly lazy) image as a (C, H, W) array-like that reads only what is sliced.

    What the block-by-block prediction (`nn.chunked`) needs from an image of any layout:
    its shape and `view[:, rows, cols]`, read from the stored chunks on demand.
    """

    def __init__(self, layout: ImageLayout, data, plane: Plane = ()) -> None:
        self.layout, self.data, self.plane = layout, data, tuple(plane)
        self.shape = (layout.n_channels, *layout.plane_shape)
        self.dtype = data.dtype
        self.ndim = 3

    def __getitem__(self, index) -> np.ndarray:
        channels, rows, cols = index
        return self.layout.image_plane(self.data, self.plane, (rows, cols))[channels]
