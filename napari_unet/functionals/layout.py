"""How an image's axes map onto channels, stack planes and the two spatial axes.

One convention, read in one place: height and width are the last two axes that are neither
the channel axis nor an RGB(A) colour axis (always the trailing one); an optional *channel
axis* holds channels; every other axis is a stack axis (Z, T, ...). Labels paired with an
image have its shape without the channel / colour axis, so a *plane* is one (H, W) slice of
them, addressed by its indices along the stack axes (`()` for a 2D image).

napari shows the last two axes of a layer as the plane, so a napari layer's channel axis is
one of its leading axes (`ImageLayout.of`); an image in a file or an OME-Zarr dataset may hold
its channels anywhere, between y and x or last included (`ImageLayout.stored`). OME-Zarr
(NGFF) stores the same axes named and in the order t, c, z, y, x (`ImageLayout.ngff`,
`to_ngff`, `from_ngff`). The napari layer bridge, the training-data builder, the command line
and the OME-Zarr dataset writer and reader all ask an `ImageLayout` instead of re-deriving this.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from napari_unet.errors import UserInputError

Plane = tuple  # indices along the stack axes; () for a 2D image

NGFF_ORDER = "tczyx"  # NGFF: time first, then channels, then space
NGFF_DEFAULT_AXES = {2: "yx", 3: "zyx", 4: "tzyx"}  # names of unnamed axes, by their count


def plane_label(plane: Plane) -> str:
    """How a plane is named to users: 'plane 10', 'plane 2, 10' ('' for a 2D image's only plane)."""
    return "plane " + ", ".join(str(int(i)) for i in plane) if plane else ""


@dataclass(frozen=True)
class ImageLayout:
    """The axis roles of an image of shape `data_shape` (colour axis included when `rgb`)."""

    data_shape: tuple[int, ...]
    rgb: bool = False
    channel_axis: int | None = None  # index into the data axes; never the colour axis
    axes: str | None = None  # names of the labels axes ("yx", "zyx", "tyx", ...); None: unnamed

    @classmethod
    def of(cls, shape, *, rgb: bool = False, channel_axis: int | None = None, name: str = "image") -> ImageLayout:
        """A napari image layer's axis roles (RGB wins over a channel axis); a UserInputError says
        what is wrong. napari shows the last two axes as the plane: channels must lead."""
        layout = cls.stored(shape, rgb=rgb, channel_axis=None if rgb else channel_axis, name=name)
        if layout.channel_axis is not None and layout.channel_axis >= len(layout.image_axes) - 2:
            raise UserInputError(f"'{name}': the channel axis must be one of the leading axes, not height or width")
        return layout

    @classmethod
    def stored(cls, shape, *, rgb: bool = False, channel_axis: int | None = None, axes: str | None = None,
               name: str = "image") -> ImageLayout:
        """Axis roles of an image as a file or dataset holds it: the channel axis may be any axis
        (before, between or after height and width). `axes` optionally names the other axes."""
        shape = tuple(int(n) for n in shape)
        if rgb:
            if channel_axis is not None:
                raise UserInputError(f"image {name!r}: an RGB image has no separate channel axis")
            if len(shape) < 3 or shape[-1] not in (3, 4):
                raise UserInputError(f"image {name!r} is marked RGB but its last axis has "
                                     f"{shape[-1] if shape else 0} values, not 3 or 4")
        elif channel_axis is not None:
            if not -len(shape) <= int(channel_axis) < len(shape):
                raise UserInputError(f"image {name!r}: channel axis {channel_axis} does not exist "
                                     f"in an array of shape {shape}")
            channel_axis = int(channel_axis) % len(shape)
        if len(shape) - (1 if rgb or channel_axis is not None else 0) < 2:
            raise UserInputError(f"'{name}' is not an image with two spatial axes (shape {shape})")
        layout = cls(shape, bool(rgb), channel_axis)
        if axes is not None and len(axes) != len(layout.labels_axes):
            raise UserInputError(f"image {name!r} has shape {shape}: axes {axes!r} name "
                                 f"{len(axes)} axes for {len(layout.labels_axes)}")
        return cls(shape, bool(rgb), channel_axis, axes)

    @classmethod
    def ngff(cls, shape, *, rgb: bool = False, channel_axis: int | None = None, axes: str | None = None,
             name: str = "image") -> ImageLayout:
        """An image's axis roles for OME-Zarr: besides channels, named axes "yx", "zyx", "tyx" or
        "tzyx" (None: by their count), in any data layout (`stored`)."""
        layout = cls.stored(shape, rgb=rgb, channel_axis=channel_axis, name=name)
        axes = axes or NGFF_DEFAULT_AXES.get(len(layout.labels_axes))
        if axes is None or len(axes) != len(layout.labels_axes):
            raise UserInputError(
                f"image {name!r} has shape {layout.data_shape}: OME-Zarr stores 2 to 4 "
                "dimensions besides channels (t, z, y, x); name them with axes='tzyx' etc."
            )
        if not re.fullmatch("t?z?yx", axes):
            raise UserInputError(f"image {name!r}: axes {axes!r} must be, in this order, an optional 't', "
                                 "an optional 'z', then 'yx'")
        return cls(layout.data_shape, layout.rgb, layout.channel_axis, axes)

    @classmethod
    def on_disk(cls, names: Sequence[str], shape, *, name: str = "image") -> ImageLayout:
        """The layout of an array stored with the NGFF axes `names` (a 'c' axis holds channels)."""
        names = [str(n) for n in names]
        if len(names) != len(shape) or not set(names) <= set(NGFF_ORDER) or len(set(names)) != len(names) \
                or sorted(names, key=NGFF_ORDER.find) != names:
            raise UserInputError(f"{name}: axes {names} of a {len(shape)}-D array are not OME-Zarr "
                                 "axes in their order (t, c, z, y, x)")
        channel_axis = names.index("c") if "c" in names else None
        return cls.ngff(shape, channel_axis=channel_axis, axes="".join(n for n in names if n != "c"), name=name)

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
    def stack_axes(self) -> list[int]:
        """Data axes whose indices address a plane."""
        return self.labels_axes[:-2]

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

    @property
    def _channels(self) -> int | None:
        """The data axis of the channels or colours, if any."""
        return len(self.data_shape) - 1 if self.rgb else self.channel_axis

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
        index: list = [slice(None)] * len(self.data_shape)
        for axis, i in zip(self.stack_axes, plane, strict=True):
            index[axis] = int(i)
        if region is not None:
            index[self.labels_axes[-2]], index[self.labels_axes[-1]] = region
        arr = np.asarray(data[tuple(index)])
        if self.rgb:
            return np.moveaxis(arr[..., :3], -1, 0)
        if self.channel_axis is None:
            return arr[None]
        left = self.channel_axis - sum(1 for a in self.stack_axes if a < self.channel_axis)
        return np.moveaxis(arr, left, 0)  # the channel axis, among the three axes left

    # --- OME-Zarr --------------------------------------------------------------------------------

    @property
    def ngff_axes(self) -> list[str]:
        """Axis names on disk, in NGFF order; 'c' holds the channels or colours."""
        names = self._names()
        return sorted(names, key=NGFF_ORDER.find)

    def to_ngff(self, data):
        """`data` (numpy or dask) with its axes in NGFF order."""
        names = self._names()
        return data.transpose(sorted(range(len(names)), key=lambda a: NGFF_ORDER.find(names[a])))

    def to_ngff_values(self, values: Sequence[float], fill: float) -> list[float]:
        """Per-labels-axis values (scale, translate) for the NGFF axes; `fill` for a 'c' axis."""
        by_name = dict(zip(self.axes or "", values, strict=True)) | {"c": fill}
        return [float(by_name[n]) for n in self.ngff_axes]

    def labels_to_ngff(self, labels):
        """Labels (shape `labels_shape`) as NGFF stores them: with the image's dimensions, so an
        image with channels gives them a 'c' axis of size 1."""
        if self._channels is None:
            return labels
        pos = self.ngff_axes.index("c")
        return labels.reshape(labels.shape[:pos] + (1,) + labels.shape[pos:])

    def convert(self, data, to: ImageLayout):
        """`data`, laid out as this layout, in the layout `to` of the same named axes (channels
        moved, or a single channel dropped when `to` has none)."""
        ngff = self.to_ngff(data)
        names = self.ngff_axes
        if self._channels is not None and to._channels is None:
            ngff = ngff.reshape(tuple(n for n, a in zip(ngff.shape, names) if a != "c"))
            names = [a for a in names if a != "c"]
        return ngff.transpose([names.index(a) for a in to._names()])

    def with_channels(self, channel_axis: int | None = None, *, rgb: bool = False) -> ImageLayout:
        """The same named axes with the channels at `channel_axis`, on a trailing colour axis
        (`rgb`), or dropped (neither: only a single channel can be)."""
        labels_shape = list(self.labels_shape)
        if (rgb or channel_axis is not None) and self._channels is None:
            raise ValueError("this layout has no channels to move")
        if rgb or channel_axis is not None:
            at = len(labels_shape) if rgb else int(channel_axis) % (len(labels_shape) + 1)
            labels_shape.insert(at, self.data_shape[self._channels])
            channel_axis = None if rgb else at
        elif self._channels is not None and self.data_shape[self._channels] != 1:
            raise UserInputError(f"{self.data_shape[self._channels]} channels cannot be dropped")
        return ImageLayout(tuple(labels_shape), rgb, channel_axis, self.axes)

    def _names(self) -> list[str]:
        """A name per data axis: `axes` for the labels axes, 'c' for the channels or colours."""
        if self.axes is None:
            raise ValueError("this layout's axes are not named: build it with ImageLayout.ngff")
        names = iter(self.axes)
        return ["c" if a == self._channels else next(names) for a in range(len(self.data_shape))]


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
