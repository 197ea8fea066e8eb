"""Validating the layers of a dataset and laying them out in NGFF order before anything is
written: every input a user can get wrong is a UserInputError here, not a half-written store."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import dask.array as da
import numpy as np
from ome_zarr.axes import KNOWN_SPATIAL_UNITS, KNOWN_TEMPORAL_UNITS

from napari_unet.errors import UserInputError
from napari_unet.io.ome_zarr_entries import ImageEntry, LabelsEntry

_DEFAULT_AXES = {2: "yx", 3: "zyx", 4: "tzyx"}


@dataclass
class LayerPlan:
    """What to write for one layer: on-disk (NGFF order) data, axes, transforms."""

    name: str
    data: da.Array  # full resolution, NGFF axis order
    axes: list[str]
    scale: list[float]
    translate: list[float]
    units: dict[str, str]
    is_labels: bool
    channel_axis: int | None = None


def plan_layers(image: ImageEntry, labels: list[LabelsEntry]) -> list[LayerPlan]:
    """Validate the entries and lay out every array before anything is written."""
    data = _as_dask(image.data, f"image {image.name!r}")
    if image.rgb and image.channel_axis is not None:
        raise UserInputError(f"image {image.name!r}: an RGB image has no separate channel axis")
    channel_axis = None
    if image.rgb:
        if data.ndim < 3 or data.shape[-1] not in (3, 4):
            raise UserInputError(
                f"image {image.name!r} is marked RGB but its last axis has "
                f"{data.shape[-1] if data.ndim else 0} values, not 3 or 4"
            )
        channel_axis = data.ndim - 1
    elif image.channel_axis is not None:
        if not -data.ndim <= image.channel_axis < data.ndim:
            raise UserInputError(
                f"image {image.name!r}: channel axis {image.channel_axis} does not exist "
                f"in an array of shape {tuple(data.shape)}"
            )
        channel_axis = image.channel_axis % data.ndim
    if data.dtype.kind not in "biuf":
        raise UserInputError(
            f"image {image.name!r} holds {data.dtype} pixels; OME-Zarr datasets store real "
            "numbers only (complex images would lose their imaginary part): save the magnitude "
            "or the real and imaginary parts as channels")

    nd = data.ndim - (channel_axis is not None)
    axes = image.axes or _DEFAULT_AXES.get(nd)
    if axes is None or len(axes) != nd:
        raise UserInputError(
            f"image {image.name!r} has shape {tuple(data.shape)}: OME-Zarr stores 2 to 4 "
            "dimensions besides channels (t, z, y, x); name them with axes='tzyx' etc."
        )
    if not re.fullmatch("t?z?yx", axes):
        raise UserInputError(
            f"image {image.name!r}: axes {axes!r} must be, in this order, an optional 't', "
            "an optional 'z', then 'yx'"
        )
    spatial_shape = tuple(s for i, s in enumerate(data.shape) if i != channel_axis)
    scale = _per_axis(image.scale, nd, 1.0, f"image {image.name!r} scale")
    translate = _per_axis(image.translate, nd, 0.0, f"image {image.name!r} translate")
    units = _units(image.units, axes)

    # NGFF order: t first, then c, then space.
    disk_axes = list(axes)
    if channel_axis is not None:
        pos = 1 if axes.startswith("t") else 0
        data = da.moveaxis(data, channel_axis, pos)
        disk_axes.insert(pos, "c")
        scale.insert(pos, 1.0)
        translate.insert(pos, 0.0)
    plans = [
        LayerPlan(
            name=str(image.name), data=data, axes=disk_axes, scale=scale, translate=translate,
            units=units,
            is_labels=False, channel_axis=channel_axis,
        )
    ]

    names = [str(image.name)]
    for entry in labels:
        what = f"labels {entry.name!r}"
        if str(entry.name) in names:
            raise UserInputError(f"two layers are named {entry.name!r}: give each layer its own name")
        names.append(str(entry.name))
        ldata = _as_dask(entry.data, what)
        if ldata.dtype.kind == "b":
            ldata = ldata.astype(np.uint8)
        if ldata.dtype.kind not in "iu":
            raise UserInputError(f"{what}: labels must be integers, got {ldata.dtype}")
        if tuple(ldata.shape) != spatial_shape:
            raise UserInputError(
                f"{what} has shape {tuple(ldata.shape)} but image {image.name!r} is "
                f"{spatial_shape}{' without its channels' if channel_axis is not None else ''}: "
                "labels must cover the image pixel for pixel"
            )
        lscale = _per_axis(entry.scale if entry.scale is not None else image.scale, nd, 1.0, f"{what} scale")
        ltranslate = _per_axis(entry.translate if entry.translate is not None else image.translate,
                               nd, 0.0, f"{what} translate")
        laxes = list(axes)
        if channel_axis is not None:  # NGFF: labels have the image's dimensions
            pos = 1 if axes.startswith("t") else 0
            ldata = da.expand_dims(ldata, pos)
            laxes.insert(pos, "c")
            lscale.insert(pos, 1.0)
            ltranslate.insert(pos, 0.0)
        plans.append(
            LayerPlan(
                name=str(entry.name), data=ldata, axes=laxes, scale=lscale, translate=ltranslate,
                units=_units(entry.units, axes) if entry.units is not None else units,
                is_labels=True,
            )
        )
    return plans


def _as_dask(data, what: str) -> da.Array:
    if isinstance(data, list | tuple) and data and hasattr(data[0], "shape"):
        data = data[0]  # a multiscale layer: the full resolution level
    if isinstance(data, da.Array):
        return data
    if not hasattr(data, "shape") or not hasattr(data, "dtype"):
        data = np.asarray(data)
    try:  # rechunked to the stored chunks when written
        return da.from_array(data, chunks="auto")
    except Exception as exc:  # pragma: no cover - exotic array types
        raise UserInputError(f"{what}: cannot read its pixels ({exc})") from exc


def _per_axis(values, n: int, default: float, what: str) -> list[float]:
    """`values` as n floats (default: n times `default`); scales (default 1) must be > 0."""
    if values is None:
        return [float(default)] * n
    values = [float(v) for v in values]
    if len(values) != n:
        raise UserInputError(f"{what} has {len(values)} values for {n} axes")
    if not all(math.isfinite(v) for v in values):
        raise UserInputError(f"{what} must be finite numbers, got {values}")
    if default == 1.0 and any(v <= 0 for v in values):
        raise UserInputError(f"{what} must be positive, got {values}")
    return values


def _units(units, axes: str) -> dict[str, str]:
    """NGFF unit per axis, for the units NGFF knows (napari's 'pixel' is left out)."""
    if units is None:
        return {}
    out = {}
    for name, unit in zip(axes, units):
        unit = None if unit is None else str(unit)
        known = KNOWN_TEMPORAL_UNITS if name == "t" else KNOWN_SPATIAL_UNITS
        if unit in known:
            out[name] = unit
    return out
