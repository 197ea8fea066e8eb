"""Validating the layers of a dataset and laying them out in NGFF order before anything is
written: every input a user can get wrong is a UserInputError here, not a half-written store."""

from __future__ import annotations

import math
from dataclasses import dataclass

import dask.array as da
import numpy as np
from ome_zarr.axes import KNOWN_SPATIAL_UNITS, KNOWN_TEMPORAL_UNITS

from napari_unet.errors import UserInputError
from napari_unet.functionals.layout import ImageLayout
from napari_unet.io.ome_zarr_entries import ImageEntry, LabelsEntry


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
    layout = ImageLayout.ngff(data.shape, rgb=image.rgb, channel_axis=image.channel_axis, axes=image.axes,
                              name=str(image.name))
    if data.dtype.kind not in "biuf":
        raise UserInputError(
            f"image {image.name!r} holds {data.dtype} pixels; OME-Zarr datasets store real "
            "numbers only (complex images would lose their imaginary part): save the magnitude "
            "or the real and imaginary parts as channels")

    axes, nd = layout.axes, len(layout.labels_axes)
    scale = _per_axis(image.scale, nd, 1.0, f"image {image.name!r} scale")
    translate = _per_axis(image.translate, nd, 0.0, f"image {image.name!r} translate")
    units = _units(image.units, axes)
    plans = [
        LayerPlan(
            name=str(image.name), data=layout.to_ngff(data), axes=layout.ngff_axes,
            scale=layout.to_ngff_values(scale, 1.0), translate=layout.to_ngff_values(translate, 0.0),
            units=units, is_labels=False,
            channel_axis=len(layout.data_shape) - 1 if layout.rgb else layout.channel_axis,
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
        if tuple(ldata.shape) != layout.labels_shape:
            raise UserInputError(
                f"{what} has shape {tuple(ldata.shape)} but image {image.name!r} is "
                f"{layout.labels_shape}{' without its channels' if layout.n_channels > 1 else ''}: "
                "labels must cover the image pixel for pixel"
            )
        lscale = _per_axis(entry.scale if entry.scale is not None else image.scale, nd, 1.0, f"{what} scale")
        ltranslate = _per_axis(entry.translate if entry.translate is not None else image.translate,
                               nd, 0.0, f"{what} translate")
        plans.append(
            LayerPlan(
                name=str(entry.name), data=layout.labels_to_ngff(ldata), axes=layout.ngff_axes,
                scale=layout.to_ngff_values(lscale, 1.0), translate=layout.to_ngff_values(ltranslate, 0.0),
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
