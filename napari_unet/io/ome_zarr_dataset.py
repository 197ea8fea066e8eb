"""Export and import of annotated images as one OME-Zarr dataset (NGFF 0.5 on zarr v3).

Qt-free core: no napari, Qt or magicgui imports. The napari reader and writer
(`napari/reader.py`, `napari/writer.py`) and the command line translate layers to and from
the entries defined here.

Layout of a dataset written by `write_dataset` (``<name>.zarr``)::

    <name>.zarr/                 zarr v3 group, NGFF 0.5 multiscale image
        zarr.json                attributes: "ome" (version, multiscales, omero)
                                             "napari_unet" (see below)
        s0, s1, ...              image pyramid, full resolution first; axes in NGFF
                                 order ([t,] [c,] [z,] y, x); y/x halved per level
                                 (2x2 mean) until both are <= 1024; chunks ~1024
        labels/                  "ome": {"labels": [<path>, ...]} in layer order
            <path>/              one NGFF label image per Labels layer, same axes as
                                 the image (a size-1 "c" axis where the image has
                                 channels); pyramid by nearest (stride) downsampling
                zarr.json        "ome": multiscales + "image-label" (colors as 0-255
                                 RGBA, properties {"label-value", "class"} with the
                                 class names, source {"image": "../../"});
                                 "napari_unet": layer name, role, exact float
                                 colours, display settings, layer metadata

    root "napari_unet" attributes:
        format_version   1
        provenance       {"plugin_version", "created" (UTC ISO 8601), **caller's dicts}
        image            {"name", "rgb", "channel_axis", "contrast_limits", "display",
                          "metadata"}

Writes are atomic: everything goes to a hidden sibling directory, which then
replaces the target with `os.replace` (an existing target is first moved aside and
deleted only after the swap). An error, a full disk, Ctrl-C or `should_stop`
leaves any previous dataset untouched and no partial dataset behind.
"""

from __future__ import annotations

import errno
import glob
import logging
import math
import os
import re
import shutil
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from threading import Lock
from typing import Any, NamedTuple

import dask
import dask.array as da
import numpy as np
import zarr
from dask.callbacks import Callback
from ome_zarr.axes import KNOWN_SPATIAL_UNITS, KNOWN_TEMPORAL_UNITS
from ome_zarr.format import FormatV05
from ome_zarr.writer import write_label_metadata, write_multiscales_metadata

from napari_unet import __version__
from napari_unet.conventions import (
    METADATA_KEY,
    ROLE_ACCEPTED,
    ROLE_ANNOTATIONS,
    class_index,
    label_value,
)
from napari_unet.errors import UserInputError

__all__ = [
    "RGBA",
    "ImageEntry",
    "LabelsEntry",
    "TrainingPair",
    "WriteStopped",
    "dataset_training_pairs",
    "is_napari_unet_dataset",
    "is_ome_zarr_image",
    "read_dataset",
    "write_dataset",
]

LOGGER = logging.getLogger(__name__)

RGBA = tuple[float, float, float, float]

FORMAT_VERSION = 1
CHUNK = 1024  # chunk edge along y and x
CHUNK_ELEMENTS = 2**20  # about this many elements per chunk (z grows for small planes)
PYRAMID_MAX_SIZE = 1024  # add half-size levels until y and x are both <= this
_WRITE_THREADS = max(1, min(4, os.cpu_count() or 1))
_DEFAULT_AXES = {2: "yx", 3: "zyx", 4: "tzyx"}


# --------------------------------------------------------------------------- entries


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


class WriteStopped(UserInputError):
    """`should_stop` asked to stop: nothing was written, a previous dataset is intact."""


class _Stop(BaseException):
    """Internal: raised inside the dask computation to abort it."""


# --------------------------------------------------------------------------- writing


def write_dataset(
    path: str | os.PathLike,
    image: ImageEntry,
    labels: Sequence[LabelsEntry] = (),
    provenance: dict | None = None,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Path:
    """Write `image` and its `labels` as one OME-Zarr dataset at `path`, atomically.

    provenance: free-form JSON dicts recorded in the root attributes next to the
        plugin version and the date (e.g. {"model": {"sha256": ...},
        "training": {...}}).
    overwrite: replace an existing dataset at `path`; without it, an existing path
        raises UserInputError. Only a zarr store (or an empty folder) is replaced.
    progress: called as progress(done, total) with chunks written so far, from the
        calling thread.
    should_stop: polled from the calling thread while writing; when it returns True
        the write stops with WriteStopped and nothing changes at `path`.

    Returns the absolute path written. Raises UserInputError for inputs, targets or
    disk errors a user can fix (a full disk included).
    """
    path = Path(path).expanduser().absolute()
    plan = _plan(image, list(labels))
    _recover_interrupted_swap(path)
    _check_target(path, overwrite)
    monitor = _Monitor(sum(level.n_chunks for layer in plan for level in layer.levels),
                       progress, should_stop)
    tmp = path.with_name(f".{path.name}.writing-{uuid.uuid4().hex[:8]}")
    try:
        monitor.poll()
        path.parent.mkdir(parents=True, exist_ok=True)
        root = zarr.open_group(str(tmp), mode="w-", zarr_format=3)
        image_plan, *label_plans = plan
        _write_layer(root, image_plan, monitor)
        _write_image_metadata(root, image_plan, image)
        if label_plans:
            labels_group = root.require_group("labels")
            used: set[str] = set()
            for entry, lplan in zip(labels, label_plans):
                group = labels_group.require_group(_unique_path(entry.name, used))
                _write_layer(group, lplan, monitor)
                _write_labels_metadata(labels_group, group, lplan, entry)
            # NGFF 0.5: every "ome" object carries the version (ome-zarr leaves it out here)
            labels_group.attrs["ome"] = {"version": FormatV05().version, **labels_group.attrs["ome"]}
        root.attrs[METADATA_KEY] = {
            "format_version": FORMAT_VERSION,
            "provenance": {
                **_jsonable(provenance or {}, "provenance"),
                "plugin_version": __version__,
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            },
            "image": {
                "name": str(image.name),
                "rgb": bool(image.rgb),
                "channel_axis": None if image.rgb else image_plan.channel_axis,
                "contrast_limits": _floats(image.contrast_limits),
                "display": _jsonable(image.display, "image display"),
                "metadata": _jsonable(image.metadata, "image metadata"),
            },
        }
        monitor.poll()
        monitor.report()
        _swap_into_place(tmp, path)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, _Stop):
            raise WriteStopped(
                f"Export to {path} stopped: nothing was written"
                + (" and the existing dataset there is unchanged." if path.exists() else ".")
            ) from None
        user_error = _disk_error(exc, path)
        if user_error is not None:
            raise user_error from exc
        raise
    return path


@dataclass
class _Level:
    shape: tuple[int, ...]
    chunks: tuple[int, ...]

    @property
    def n_chunks(self) -> int:
        return math.prod(-(-s // c) for s, c in zip(self.shape, self.chunks))


@dataclass
class _LayerPlan:
    """What to write for one layer: on-disk (NGFF order) data, axes, pyramid."""

    name: str
    data: da.Array  # full resolution, NGFF axis order
    axes: list[str]
    scale: list[float]
    translate: list[float]
    units: dict[str, str]
    levels: list[_Level]
    is_labels: bool
    channel_axis: int | None = None


def _plan(image: ImageEntry, labels: list[LabelsEntry]) -> list[_LayerPlan]:
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
        raise UserInputError(f"image {image.name!r}: cannot store pixels of type {data.dtype}")

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
        _LayerPlan(
            name=str(image.name), data=data, axes=disk_axes, scale=scale, translate=translate,
            units=units, levels=_pyramid(data.shape, disk_axes, labels=False),
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
            _LayerPlan(
                name=str(entry.name), data=ldata, axes=laxes, scale=lscale, translate=ltranslate,
                units=_units(entry.units, axes) if entry.units is not None else units,
                levels=_pyramid(ldata.shape, laxes, labels=True), is_labels=True,
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


def _chunks(shape: tuple[int, ...], axes: list[str]) -> tuple[int, ...]:
    """~CHUNK along y/x, 1 along t/c, z grown so a chunk holds ~CHUNK_ELEMENTS."""
    chunks = []
    plane = 1
    for name, size in zip(axes, shape):
        if name in "yx":
            c = max(1, min(CHUNK, size))
            plane *= c
            chunks.append(c)
        else:
            chunks.append(None if name == "z" else 1)
    z = max(1, CHUNK_ELEMENTS // plane)
    return tuple(max(1, min(z, s)) if c is None else c for c, s in zip(chunks, shape))


def _pyramid(shape: tuple[int, ...], axes: list[str], labels: bool) -> list[_Level]:
    """Levels: y/x halved (mean: floor, stride: ceil) until both are <= PYRAMID_MAX_SIZE."""
    levels = [_Level(tuple(shape), _chunks(tuple(shape), axes))]
    while True:
        prev = levels[-1].shape
        if max(prev[axes.index("y")], prev[axes.index("x")]) <= PYRAMID_MAX_SIZE:
            return levels
        nxt = tuple(
            ((s + 1) // 2 if labels else s // 2) if name in "yx" else s
            for name, s in zip(axes, prev)
        )
        levels.append(_Level(nxt, _chunks(nxt, axes)))


def _downsample(data: da.Array, axes: list[str], labels: bool) -> da.Array:
    iy, ix = axes.index("y"), axes.index("x")
    if labels:  # nearest: keep every other pixel, ids never mix
        index = [slice(None)] * data.ndim
        index[iy] = index[ix] = slice(None, None, 2)
        return data[tuple(index)]
    ny, nx = data.shape[iy] // 2 * 2, data.shape[ix] // 2 * 2

    def part(oy, ox):
        index = [slice(None)] * data.ndim
        index[iy] = slice(oy, ny, 2)
        index[ix] = slice(ox, nx, 2)
        return data[tuple(index)]

    work = np.float64 if data.dtype.itemsize > 2 and data.dtype.kind in "iu" else np.float32
    if data.dtype == np.float64:
        work = np.float64
    total = sum(part(oy, ox).astype(work) for oy in (0, 1) for ox in (0, 1))
    if data.dtype.kind == "b":
        return total >= 2
    if data.dtype.kind in "iu":
        return da.round(total / 4).astype(data.dtype)
    return (total / 4).astype(data.dtype)


class _Monitor(Callback):
    """Counts written chunks; polls should_stop and reports progress on the caller's thread."""

    def __init__(self, total: int, progress, should_stop):
        super().__init__()
        self.total = total
        self.done = 0
        self.aborted = False
        self._progress = progress
        self._should_stop = should_stop
        self._reported = -1
        self._lock = Lock()

    def chunk_written(self) -> None:
        with self._lock:
            self.done += 1

    def poll(self) -> None:
        if self.aborted or (self._should_stop is not None and self._should_stop()):
            self.aborted = True
            raise _Stop()
        self.report()

    def report(self) -> None:
        if self._progress is not None and self.done != self._reported:
            self._reported = self.done
            self._progress(self.done, self.total)

    def _posttask(self, key, result, dsk, state, worker_id):
        self.poll()


class _Sink:
    """A `da.store` target that writes to a zarr array and counts chunks."""

    def __init__(self, array, monitor: _Monitor):
        self.array = array
        self.monitor = monitor
        self.shape = array.shape
        self.dtype = array.dtype
        self.ndim = array.ndim

    def __setitem__(self, key, value):
        if self.monitor.aborted:
            raise _Stop()
        self.array[key] = value
        self.monitor.chunk_written()


def _write_layer(group: zarr.Group, plan: _LayerPlan, monitor: _Monitor) -> None:
    """Write every pyramid level; level n+1 is computed from level n as stored."""
    source = plan.data
    for i, level in enumerate(plan.levels):
        if i:
            source = _downsample(da.from_zarr(group[f"s{i - 1}"]), plan.axes, plan.is_labels)
        assert tuple(source.shape) == level.shape, (source.shape, level.shape)
        array = group.create_array(
            f"s{i}", shape=level.shape, dtype=source.dtype, chunks=level.chunks,
            dimension_names=plan.axes, fill_value=0,
        )
        stored = da.store(source.rechunk(level.chunks), _Sink(array, monitor), lock=False, compute=False)
        monitor.poll()
        with ThreadPoolExecutor(_WRITE_THREADS) as pool:
            try:  # our callback only (a global one would see other threads' dask work)
                dask.compute(stored, scheduler="threads", pool=pool, callbacks=[monitor._callback])
            except BaseException:
                monitor.aborted = True  # chunks still queued or running skip their writes
                pool.shutdown(wait=True, cancel_futures=True)
                raise
        monitor.report()

    datasets = []
    for i, level in enumerate(plan.levels):
        factor = [plan.levels[0].shape[k] / level.shape[k] if name in "yx" else 1.0
                  for k, name in enumerate(plan.axes)]
        if i:  # exact powers of two (odd sizes would give slightly other ratios)
            factor = [2.0**i if name in "yx" else 1.0 for name in plan.axes]
        # Mean pyramids put pixel centres between the original ones; strides do not.
        shift = [0.0 if plan.is_labels else (f - 1) / 2 * s for f, s in zip(factor, plan.scale)]
        datasets.append({
            "path": f"s{i}",
            "coordinateTransformations": [
                {"type": "scale", "scale": [f * s for f, s in zip(factor, plan.scale)]},
                {"type": "translation", "translation": [t + d for t, d in zip(plan.translate, shift)]},
            ],
        })
    axes = [{"name": a, "type": {"t": "time", "c": "channel"}.get(a, "space"),
             **({"unit": plan.units[a]} if a in plan.units else {})} for a in plan.axes]
    write_multiscales_metadata(
        group, datasets=datasets, fmt=FormatV05(), axes=axes, name=plan.name,
        metadata={"method": "stride (nearest)" if plan.is_labels else "2x2 mean"},
    )


def _write_image_metadata(root: zarr.Group, plan: _LayerPlan, image: ImageEntry) -> None:
    """OMERO rendering hints so other viewers show the image like napari did."""
    if plan.channel_axis is None:
        n_channels, colors = 1, ["FFFFFF"]
    else:
        n_channels = plan.data.shape[plan.axes.index("c")]
        colors = (["FF0000", "00FF00", "0000FF", "FFFFFF"] if image.rgb else ["FFFFFF"] * n_channels)
    dtype = plan.data.dtype
    limits = _floats(image.contrast_limits)
    window = None
    if dtype.kind in "iub":
        lo, hi = (0.0, 1.0) if dtype.kind == "b" else (float(np.iinfo(dtype).min), float(np.iinfo(dtype).max))
        start, end = limits if limits and len(limits) == 2 else (lo, hi)
        window = {"min": min(lo, start), "max": max(hi, end), "start": start, "end": end}
    elif limits and len(limits) == 2:  # float: the range is unknown without a pass over the data
        window = {"min": limits[0], "max": limits[1], "start": limits[0], "end": limits[1]}
    channels = [
        {"color": colors[i % len(colors)], "active": True,
         "label": plan.name if n_channels == 1 else f"{plan.name} {i}",
         **({"window": window} if window else {})}
        for i in range(n_channels)
    ]
    ome = dict(root.attrs["ome"])
    ome["omero"] = {"channels": channels, "rdefs": {"model": "color" if n_channels > 1 else "greyscale"}}
    root.attrs["ome"] = ome


def _write_labels_metadata(labels_group: zarr.Group, group: zarr.Group, plan: _LayerPlan,
                           entry: LabelsEntry) -> None:
    colors = None
    exact = {}
    default_color = None
    if entry.colors:
        colors = []
        for value, rgba in entry.colors.items():
            rgba = _rgba(rgba, f"labels {entry.name!r} colour of {value}")
            if value is None:
                default_color = rgba
                continue
            exact[str(int(value))] = rgba
            colors.append({"label-value": int(value), "rgba": [int(round(c * 255)) for c in rgba]})
        colors.sort(key=lambda c: c["label-value"])
    properties = None
    if entry.class_names:
        properties = [{"label-value": label_value(i), "class": str(name)}
                      for i, name in enumerate(entry.class_names)]
    # Our attributes first: zarr writes a group's whole attribute set from the object
    # it is given, and write_label_metadata opens its own object for the label group.
    group.attrs[METADATA_KEY] = {
        "name": str(entry.name),
        "role": entry.role,
        "colors": exact or None,
        "default_color": default_color,
        "display": _jsonable(entry.display, f"labels {entry.name!r} display"),
        "metadata": _jsonable(entry.metadata, f"labels {entry.name!r} metadata"),
    }
    write_label_metadata(
        labels_group, group.basename, colors=colors or None, properties=properties,
        fmt=FormatV05(), source={"image": "../../"},
    )


def _unique_path(name: str, used: set[str]) -> str:
    """A zarr-safe folder name for a layer name: 'cells annotations' -> 'cells_annotations'."""
    base = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name)).strip("._") or "labels"
    candidate, n = base, 2
    while candidate.lower() in used:
        candidate, n = f"{base}_{n}", n + 1
    used.add(candidate.lower())
    return candidate


def _rgba(color, what: str) -> list[float]:
    try:
        values = [float(c) for c in np.asarray(color, dtype=float).ravel()]
    except (TypeError, ValueError) as exc:
        raise UserInputError(f"{what} must be RGB(A) numbers in 0..1, got {color!r}") from exc
    if len(values) == 3:
        values.append(1.0)
    if len(values) != 4 or not all(0.0 <= c <= 1.0 for c in values):
        raise UserInputError(f"{what} must be RGB(A) numbers in 0..1, got {color!r}")
    return values


def _floats(values) -> list[float] | None:
    return None if values is None else [float(v) for v in values]


def _jsonable(obj, where: str):
    """A JSON-serialisable copy of `obj`; what cannot be stored is left out (logged)."""
    if isinstance(obj, dict):
        out = {}
        for key, value in obj.items():
            if not isinstance(key, str | int | float | bool) or key is None:
                LOGGER.warning("%s: key %r is not text, not saved", where, key)
                continue
            try:
                out[str(key)] = _jsonable(value, f"{where}[{key!r}]")
            except _Unserialisable:
                LOGGER.warning("%s: %r (%s) cannot be saved, left out", where, key, type(value).__name__)
        return out
    if isinstance(obj, list | tuple):
        return [_jsonable(v, where) for v in obj]
    if obj is None or isinstance(obj, bool | str):
        return obj
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.ndarray) and obj.size <= 10_000:
        return _jsonable(obj.tolist(), where)
    raise _Unserialisable()


class _Unserialisable(Exception):
    pass


def _check_target(path: Path, overwrite: bool) -> None:
    if not path.exists() and not path.is_symlink():
        return
    if path.is_file():
        raise UserInputError(f"{path} is a file, not a dataset: choose another name for the export")
    if not overwrite:
        raise UserInputError(
            f"{path} already exists. To replace it, pass --overwrite (command line) or "
            "confirm overwriting, or choose another name."
        )
    if not (_looks_like_zarr(path) or not any(path.iterdir())):
        raise UserInputError(
            f"{path} is a folder but not a zarr dataset; refusing to replace it. "
            "Choose another name for the export."
        )


def _looks_like_zarr(path: Path) -> bool:
    return any((path / name).is_file() for name in ("zarr.json", ".zgroup", ".zattrs", ".zarray"))


def _asides(path: Path) -> list[Path]:
    return sorted(path.parent.glob(f".{glob.escape(path.name)}.replaced-*"),
                  key=lambda p: p.stat().st_mtime)


def _recover_interrupted_swap(path: Path) -> None:
    """If a previous write died between moving the old dataset aside and the swap, restore it."""
    if path.exists() or not path.parent.is_dir():
        return
    asides = _asides(path)
    if asides:
        LOGGER.warning("restoring %s from %s (an earlier export was interrupted)", path, asides[-1])
        os.replace(asides[-1], path)


def _swap_into_place(tmp: Path, path: Path) -> None:
    aside = None
    if path.exists() or path.is_symlink():
        aside = path.with_name(f".{path.name}.replaced-{uuid.uuid4().hex[:8]}")
        os.replace(path, aside)
    try:
        os.replace(tmp, path)
    except BaseException:
        if aside is not None:
            os.replace(aside, path)
        raise
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)


def _disk_error(exc: BaseException, path: Path) -> UserInputError | None:
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError):
            unchanged = f" Nothing was changed at {path}."
            if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
                return UserInputError(
                    f"Not enough disk space to export {path.name}: free some space or choose "
                    "another location." + unchanged)
            if isinstance(exc, PermissionError) or exc.errno in (errno.EACCES, errno.EROFS):
                return UserInputError(
                    f"Cannot write to {path.parent} (permission denied or read-only): choose "
                    "another folder." + unchanged)
        exc = exc.__cause__ or exc.__context__
    return None


# --------------------------------------------------------------------------- reading


def is_ome_zarr_image(path: str | os.PathLike) -> bool:
    """True if `path` is a zarr group holding an OME-Zarr (NGFF) multiscale image."""
    try:
        root = _open_group(Path(path))
        return bool(_ome(_image_group(root)).get("multiscales"))
    except Exception:
        return False


def is_napari_unet_dataset(path: str | os.PathLike) -> bool:
    """True if `path` is an OME-Zarr dataset written by `write_dataset`."""
    try:
        root = _open_group(Path(path))
        info = root.attrs.get(METADATA_KEY)
        return isinstance(info, dict) and "format_version" in info and bool(_ome(root).get("multiscales"))
    except Exception:
        return False


def read_dataset(path: str | os.PathLike) -> tuple[ImageEntry, list[LabelsEntry], dict]:
    """Read a dataset written by `write_dataset`, or any OME-Zarr image with labels.

    Returns (image, labels, provenance). Arrays are lazy (dask) full-resolution
    arrays in napari's layout; `entry.levels` lists every pyramid level. provenance is
    {} for datasets not written by napari_unet. Raises UserInputError for anything
    that is not a readable OME-Zarr image.
    """
    path = Path(path).expanduser().absolute()
    root = _open_group(path)
    group = _image_group(root)
    ome = _ome(group)
    if not ome.get("multiscales"):
        if ome.get("plate") or ome.get("well"):
            raise UserInputError(f"{path} is an OME-Zarr plate/well, not a single image: open one of its images")
        raise UserInputError(
            f"{path} is a zarr store but not an OME-Zarr image (no 'multiscales' metadata); "
            "open a dataset exported by napari-unet or another OME-Zarr image"
        )
    info = group.attrs.get(METADATA_KEY) if group is root else None
    info = info if isinstance(info, dict) else {}
    image_info = info.get("image") if isinstance(info.get("image"), dict) else {}
    try:
        axes, levels, scale, translate, units, name = _read_multiscale(group, ome, path)
        image = _image_entry(axes, levels, scale, translate, units, name, image_info, path)
        labels = []
        if "labels" in group:
            labels_group = group["labels"]
            for label_path in _ome(labels_group).get("labels", []) or []:
                if label_path not in labels_group:
                    raise UserInputError(
                        f"{path} is damaged: labels/{label_path} is listed but missing")
                labels.append(_labels_entry(labels_group[label_path], label_path, path))
    except UserInputError:
        raise
    except Exception as exc:
        raise UserInputError(f"{path} is damaged or not a supported OME-Zarr image ({exc})") from exc
    provenance = info.get("provenance") if isinstance(info.get("provenance"), dict) else {}
    return image, labels, dict(provenance)


def dataset_training_pairs(path: str | os.PathLike) -> list[TrainingPair]:
    """Training data in a dataset: (image, annotations, accepted) per Labels layer with
    role "annotations"; accepted is the dataset's "accepted" labels layer, or None.

    Arrays are loaded into memory (numpy). Class names, if needed, are in
    `read_dataset(path)[1][i].class_names`.
    """
    image, labels, _ = read_dataset(path)
    annotations = [e for e in labels if e.role == ROLE_ANNOTATIONS]
    if not annotations:
        raise UserInputError(
            f"{path} has no annotations layer (role '{ROLE_ANNOTATIONS}'): export a dataset "
            "that includes the annotations you painted"
        )
    accepted = next((e for e in labels if e.role == ROLE_ACCEPTED), None)
    pixels = _load(image.data, path)
    accepted_ids = None if accepted is None else _load(accepted.data, path)
    return [TrainingPair(pixels, _load(entry.data, path), accepted_ids) for entry in annotations]


def _load(data, path) -> np.ndarray:
    try:
        return np.asarray(data)
    except Exception as exc:
        raise UserInputError(f"{path} is damaged: its pixels cannot be read ({exc})") from exc


def _open_group(path: Path) -> zarr.Group:
    if not path.exists():
        raise UserInputError(f"{path} does not exist")
    if not path.is_dir():
        raise UserInputError(f"{path} is a file, not an OME-Zarr dataset (a .zarr folder)")
    try:
        node = zarr.open(store=str(path), mode="r")
    except Exception as exc:
        if not _looks_like_zarr(path):
            raise UserInputError(f"{path} is not a zarr dataset (no zarr metadata found)") from exc
        raise UserInputError(f"{path} is damaged: its zarr metadata cannot be read ({exc})") from exc
    if not isinstance(node, zarr.Group):
        raise UserInputError(f"{path} is a plain zarr array, not an OME-Zarr image")
    return node


def _ome(group: zarr.Group) -> dict:
    """NGFF attributes: under "ome" (0.5, zarr v3) or at the top level (<= 0.4)."""
    attrs = group.attrs.asdict()
    ome = attrs.get("ome")
    return ome if isinstance(ome, dict) else attrs


def _image_group(root: zarr.Group) -> zarr.Group:
    """The image group: the root, or its first series for bioformats2raw layouts."""
    ome = _ome(root)
    if not ome.get("multiscales") and ome.get("bioformats2raw.layout") and "0" in root:
        node = root["0"]
        if isinstance(node, zarr.Group):
            return node
    return root


def _read_multiscale(group: zarr.Group, ome: dict, path: Path):
    multiscale = ome["multiscales"][0]
    axes = [a["name"] if isinstance(a, dict) else str(a) for a in multiscale.get("axes") or []]
    units = {a["name"]: a["unit"] for a in multiscale.get("axes") or []
             if isinstance(a, dict) and a.get("unit")}
    datasets = multiscale["datasets"]
    levels = []
    for dataset in datasets:
        if dataset["path"] not in group:
            raise UserInputError(f"{path} is damaged: array {group.path}/{dataset['path']} is missing")
        array = group[dataset["path"]]
        if not isinstance(array, zarr.Array):
            raise UserInputError(f"{path} is damaged: {dataset['path']} is not an array")
        levels.append(da.from_zarr(array))
    if not levels:
        raise UserInputError(f"{path} is damaged: its image has no arrays")
    ndim = levels[0].ndim
    if not axes:  # NGFF <= 0.3: always 5D tczyx
        axes = list("tczyx")[-ndim:]
    if len(axes) != ndim:
        raise UserInputError(f"{path} is damaged: {len(axes)} axes for {ndim}-D arrays")
    scale, translate = [1.0] * ndim, [0.0] * ndim
    for transform in datasets[0].get("coordinateTransformations") or []:
        if transform.get("type") == "scale" and "scale" in transform:
            scale = [float(v) for v in transform["scale"]]
        elif transform.get("type") == "translation" and "translation" in transform:
            translate = [float(v) for v in transform["translation"]]
    for transform in multiscale.get("coordinateTransformations") or []:  # global, applied after
        if transform.get("type") == "scale" and "scale" in transform:
            g = [float(v) for v in transform["scale"]]
            scale = [s * k for s, k in zip(scale, g)]
            translate = [t * k for t, k in zip(translate, g)]
        elif transform.get("type") == "translation" and "translation" in transform:
            translate = [t + float(d) for t, d in zip(translate, transform["translation"])]
    return axes, levels, scale, translate, units, multiscale.get("name")


def _image_entry(axes, levels, scale, translate, units, name, info, path) -> ImageEntry:
    rgb = channel_axis = None
    if "c" in axes:
        ci = axes.index("c")
        size = levels[0].shape[ci]
        target = info.get("channel_axis")
        if info.get("rgb") and size in (3, 4):  # back to napari's RGB(A) last axis
            rgb, levels = True, [da.moveaxis(level, ci, -1) for level in levels]
        elif isinstance(target, int):  # back where the channels were
            channel_axis = target % levels[0].ndim
            levels = [da.moveaxis(level, ci, channel_axis) for level in levels]
        elif size == 1:  # a single channel (other writers): a plain grey image
            levels = [da.squeeze(level, ci) for level in levels]
        else:
            channel_axis = ci
        del scale[ci], translate[ci]
        axes = [a for a in axes if a != "c"]
    return ImageEntry(
        data=levels[0],
        name=str(info.get("name") or name or path.stem),
        axes="".join(axes),
        scale=scale,
        translate=translate,
        units=[units.get(a) for a in axes] if units else None,
        channel_axis=channel_axis,
        rgb=bool(rgb),
        contrast_limits=info.get("contrast_limits"),
        display=dict(info.get("display") or {}),
        metadata=dict(info.get("metadata") or {}),
        levels=levels,
    )


def _labels_entry(group: zarr.Group, label_path: str, path: Path) -> LabelsEntry:
    if not isinstance(group, zarr.Group):
        raise UserInputError(f"{path} is damaged: labels/{label_path} is not a group")
    ome = _ome(group)
    if not ome.get("multiscales"):
        raise UserInputError(f"{path} is damaged: labels/{label_path} has no multiscales metadata")
    axes, levels, scale, translate, units, name = _read_multiscale(group, ome, path)
    if "c" in axes and levels[0].shape[axes.index("c")] == 1:
        ci = axes.index("c")
        levels = [da.squeeze(level, ci) for level in levels]
        del scale[ci], translate[ci]
        axes = [a for a in axes if a != "c"]
    if levels[0].dtype.kind not in "iub":
        raise UserInputError(f"{path}: labels/{label_path} holds {levels[0].dtype} values, not integer labels")
    info = group.attrs.get(METADATA_KEY)
    info = info if isinstance(info, dict) else {}
    image_label = ome.get("image-label") if isinstance(ome.get("image-label"), dict) else {}

    colors: dict[int | None, RGBA] = {}
    exact = info.get("colors") or {}
    for item in image_label.get("colors") or []:
        if not isinstance(item, dict) or "label-value" not in item or not item.get("rgba"):
            continue
        value = int(item["label-value"])
        rgba = [int(c) for c in item["rgba"]]
        precise = exact.get(str(value))
        if precise is not None and [int(round(c * 255)) for c in precise] == rgba:
            colors[value] = tuple(float(c) for c in precise)  # the exact colour, unchanged since
        else:
            colors[value] = tuple(c / 255 for c in rgba)
    if colors and info.get("default_color") is not None:
        colors[None] = tuple(float(c) for c in info["default_color"])

    classes = {}
    for item in image_label.get("properties") or []:
        if isinstance(item, dict) and "label-value" in item and "class" in item:
            classes[int(item["label-value"])] = str(item["class"])
    class_names = None
    if classes:
        top = class_index(max(classes)) + 1
        class_names = [classes.get(label_value(i), f"class {label_value(i)}") for i in range(top)]

    return LabelsEntry(
        data=levels[0],
        name=str(info.get("name") or name or label_path),
        role=info.get("role"),
        class_names=class_names,
        colors=colors or None,
        scale=scale,
        translate=translate,
        units=[units.get(a) for a in axes] if units else None,
        display=dict(info.get("display") or {}),
        metadata=dict(info.get("metadata") or {}),
        levels=levels,
    )
