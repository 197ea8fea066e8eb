"""What a napari-unet OME-Zarr dataset holds, in napari's layout: the entries that the
writer takes and the reader returns, and the JSON rules for the attributes we add."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

LOGGER = logging.getLogger(__name__)

RGBA = tuple[float, float, float, float]

# Version of the "napari_unet" attributes. Readers refuse newer ones (written by a newer
# napari-unet that may store things this version would misread).
FORMAT_VERSION = 1
# NGFF versions we write: 0.5 (zarr v3, the default) and 0.4 (zarr v2, for Fiji, MoBIE,
# BigDataViewer and other tools that do not read zarr v3 yet).
NGFF_VERSIONS = ("0.5", "0.4")


@dataclass
class ImageEntry:
    """The image of a dataset, in napari's layout.

    data: array-like (numpy, dask, zarr) of shape `axes` plus, optionally, one channel
        axis at `channel_axis` or an RGB(A) last axis (`rgb=True`).
    axes: names of the non-channel axes, from "tzyx" in that order, e.g. "yx",
        "zyx", "tyx"; None: "yx", "zyx" or "tzyx" by dimension count.
    scale, translate, units: per non-channel axis (napari's layer.scale, .translate,
        .units); units that NGFF knows ("micrometer", "second", ...) go to the axes.
    display: napari display settings (JSON), e.g. colormap, gamma, opacity.
    metadata: free-form JSON-serialisable dict (napari's layer.metadata).
    levels: set by `read_dataset`: every pyramid level (lazy), full resolution first.
    """

    data: Any
    name: str = "image"
    axes: str | None = None
    scale: Sequence[float] | None = None
    translate: Sequence[float] | None = None
    units: Sequence[str | None] | None = None
    channel_axis: int | None = None
    rgb: bool = False
    contrast_limits: Sequence[float] | None = None
    display: dict = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)
    levels: list | None = None


@dataclass
class LabelsEntry:
    """One Labels layer: an integer array with the image's non-channel shape.

    role: napari_unet role ("annotations", "semantic", "instances", "accepted", ...).
    class_names: names of label values 1..K (index 0 is value 1, the background).
    colors: RGBA floats in 0..1 per label value; the key None is the colour of values
        not listed (napari's DirectLabelColormap convention). None: no fixed colours.
    scale, translate, units: per axis (napari's layer.scale, .translate, .units);
        None: the image's.
    levels: set by `read_dataset`: every pyramid level (lazy), full resolution first.
    """

    data: Any
    name: str
    role: str | None = None
    class_names: list[str] | None = None
    colors: dict[int | None, RGBA] | None = None
    scale: Sequence[float] | None = None
    translate: Sequence[float] | None = None
    units: Sequence[str | None] | None = None
    display: dict = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)
    levels: list | None = None


class TrainingPair(NamedTuple):
    """One image with its annotations from a dataset (numpy arrays, napari layout).

    image: as the image layer holds it: (H, W), (H, W, 3|4) RGB(A), (Z, H, W), ...; an
        image written with a separate `channel_axis` keeps it where it was.
    annotations: 0 = not annotated, 1 = background, 2..K = classes.
    accepted: the "accepted" labels (conventions.ACCEPTED_BACKGROUND: 0 = not
        accepted, 1 = accepted background, id + 1 = accepted object id), or None.
    """

    image: np.ndarray
    annotations: np.ndarray
    accepted: np.ndarray | None


def jsonable(obj, where: str):
    """A JSON-serialisable copy of `obj`; what cannot be stored is left out (logged)."""
    if isinstance(obj, dict):
        out = {}
        for key, value in obj.items():
            if not isinstance(key, str | int | float | bool) or key is None:
                LOGGER.warning("%s: key %r is not text, not saved", where, key)
                continue
            try:
                out[str(key)] = jsonable(value, f"{where}[{key!r}]")
            except _Unserialisable:
                LOGGER.warning("%s: %r (%s) cannot be saved, left out", where, key, type(value).__name__)
        return out
    if isinstance(obj, list | tuple):
        return [jsonable(v, where) for v in obj]
    if obj is None or isinstance(obj, bool | str):
        return obj
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.ndarray) and obj.size <= 10_000:
        return jsonable(obj.tolist(), where)
    raise _Unserialisable()


class _Unserialisable(Exception):
    pass
