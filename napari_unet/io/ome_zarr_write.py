"""Writing a napari-unet OME-Zarr dataset: the `ome-zarr` library writes the NGFF image,
labels and pyramids (as delayed dask writes); this module validates the layers first, adds
our attributes, reports progress, honours cancel, and swaps the result into place.

The layout on disk is described in `io.ome_zarr_dataset`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import dask
import numpy as np
import zarr
from dask.callbacks import Callback
from ome_zarr.format import FormatV04, FormatV05
from ome_zarr.scale import Methods, method_dispatch
from ome_zarr.writer import write_image, write_labels

from napari_unet import __version__
from napari_unet.conventions import METADATA_KEY, label_value
from napari_unet.errors import UserInputError
from napari_unet.io import atomic
from napari_unet.io.chunking import PLANE_CHUNK, chunk_shape
from napari_unet.io.names import unique_name
from napari_unet.io.ome_zarr_entries import (
    FORMAT_VERSION,
    NGFF_VERSIONS,
    ImageEntry,
    LabelsEntry,
    jsonable,
)
from napari_unet.io.ome_zarr_plan import LayerPlan, plan_layers

PYRAMID_MAX_SIZE = PLANE_CHUNK  # add half-size levels until y and x are both <= this
IMAGE_METHOD, LABELS_METHOD = Methods.LOCAL_MEAN, Methods.NEAREST
_WRITE_THREADS = max(1, min(4, os.cpu_count() or 1))
_FORMATS = {"0.5": FormatV05, "0.4": FormatV04}


class WriteStopped(UserInputError):
    """`should_stop` asked to stop: nothing was written, a previous dataset is intact."""


class _Stop(BaseException):
    """Internal: raised inside the dask computation to abort it."""


def write_dataset(
    path: str | os.PathLike,
    image: ImageEntry,
    labels: Sequence[LabelsEntry] = (),
    provenance: dict | None = None,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    ngff: str = "0.5",
) -> Path:
    """Write `image` and its `labels` as one OME-Zarr dataset at `path`, atomically.

    provenance: free-form JSON dicts recorded in the root attributes next to the
        plugin version and the date (e.g. {"model": {"sha256": ...},
        "training": {...}}).
    overwrite: replace an existing dataset at `path`; without it, an existing path
        raises UserInputError. Only a zarr store (or an empty folder) is replaced.
    progress: called as progress(done, total) with write tasks done so far, from the
        calling thread.
    should_stop: polled from the calling thread while writing; when it returns True
        the write stops with WriteStopped and nothing changes at `path`.
    ngff: "0.5" (zarr v3, default) or "0.4" (zarr v2, for tools without zarr v3).

    Returns the absolute path written. Raises UserInputError for inputs, targets or
    disk errors a user can fix (a full disk included). A kill at any instant leaves
    the previous dataset or the new one (see `io.atomic`).
    """
    path = Path(path).expanduser().absolute()
    if ngff not in NGFF_VERSIONS:
        raise UserInputError(f"NGFF version {ngff!r} cannot be written: choose one of {', '.join(NGFF_VERSIONS)}")
    fmt = _FORMATS[ngff]()
    plan = plan_layers(image, list(labels))
    if path.parent.is_dir():
        atomic.recover(path.parent)
    _check_target(path, overwrite)
    monitor = _Monitor(progress, should_stop)
    tmp = atomic.sibling(path, atomic.WRITING)
    try:
        monitor.poll()
        path.parent.mkdir(parents=True, exist_ok=True)
        root = zarr.open_group(str(tmp), mode="w-", zarr_format=fmt.zarr_format)
        _write_all(root, plan, list(labels), image, fmt, monitor)
        root.attrs[METADATA_KEY] = {
            "format_version": FORMAT_VERSION,
            "provenance": {
                **jsonable(provenance or {}, "provenance"),
                "plugin_version": __version__,
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            },
            "image": {
                "name": str(image.name),
                "rgb": bool(image.rgb),
                "channel_axis": None if image.rgb else plan[0].channel_axis,
                "contrast_limits": _floats(image.contrast_limits),
                "display": jsonable(image.display, "image display"),
                "metadata": jsonable(image.metadata, "image metadata"),
            },
        }
        monitor.poll()
        atomic.replace(tmp, path)
    except BaseException as exc:
        atomic.remove(tmp)
        if isinstance(exc, _Stop):
            raise WriteStopped(
                f"Export to {path} stopped: nothing was written"
                + (" and the existing dataset there is unchanged." if path.exists() else ".")
            ) from None
        user_error = atomic.disk_error(exc, path)
        if user_error is not None:
            raise user_error from exc
        raise
    return path


def _scale_factors(plan: LayerPlan) -> list[dict[str, int]]:
    """y/x halved per level until both are <= PYRAMID_MAX_SIZE; one list for the image
    and all its labels, so every layer has the same levels."""
    size = max(plan.data.shape[plan.axes.index("y")], plan.data.shape[plan.axes.index("x")])
    factors = []
    while size > PYRAMID_MAX_SIZE:
        size //= 2
        factors.append({"y": 2 ** (len(factors) + 1), "x": 2 ** (len(factors) + 1)})
    return factors


def _write_all(root: zarr.Group, plan: list[LayerPlan], labels: list[LabelsEntry], image: ImageEntry,
               fmt, monitor: _Monitor) -> None:
    """Lay out every array and its metadata with the library, then run the delayed writes."""
    image_plan, *label_plans = plan
    factors = _scale_factors(image_plan)
    delayed = write_image(
        image_plan.data, root, scale_factors=factors, method=IMAGE_METHOD, fmt=fmt,
        axes=image_plan.axes, scale=dict(zip(image_plan.axes, image_plan.scale)),
        axes_units=image_plan.units or None, name=image_plan.name,
        storage_options=_storage(image_plan, factors), compute=False,
    )
    _amend_multiscale(root, image_plan, IMAGE_METHOD, fmt)
    _write_omero(root, image_plan, image, fmt)
    used: set[str] = set()
    for entry, lplan in zip(labels, label_plans):
        name = unique_name(entry.name, used)
        colors, properties, ours = _labels_metadata(entry)
        delayed += write_labels(
            lplan.data, root, name=name, scaler=None, scale_factors=factors, method=LABELS_METHOD,
            fmt=fmt, axes=lplan.axes, scale=dict(zip(lplan.axes, lplan.scale)),
            axes_units=lplan.units or None, storage_options=_storage(lplan, factors), compute=False,
            label_metadata={**({"colors": colors} if colors else {}),
                            **({"properties": properties} if properties else {}),
                            "source": {"image": "../../"}},
        )
        group = root["labels"][name]
        _amend_multiscale(group, lplan, LABELS_METHOD, fmt)
        group.attrs[METADATA_KEY] = ours
    if label_plans and fmt.zarr_format == 3:  # NGFF 0.5: every "ome" object carries the version
        labels_group = root["labels"]
        labels_group.attrs["ome"] = {"version": fmt.version, **labels_group.attrs["ome"]}
    monitor.run(delayed)


def _storage(plan: LayerPlan, factors: list[dict[str, int]]) -> list[dict]:
    """The chunking policy (io.chunking), level by level."""
    shapes = [tuple(plan.data.shape)]
    for factor in factors:
        shapes.append(tuple(s // factor.get(a, 1) for s, a in zip(plan.data.shape, plan.axes)))
    return [{"chunks": chunk_shape(shape, "".join(plan.axes))} for shape in shapes]


def _amend_multiscale(group: zarr.Group, plan: LayerPlan, method: Methods, fmt) -> None:
    """What the library leaves out: the layer's name (labels get their folder name) and
    translate, and how the pyramid was made (NGFF `type` and `metadata`)."""
    attrs = group.attrs.asdict()
    ome = attrs["ome"] if fmt.zarr_format == 3 else attrs
    (multiscale,) = ome["multiscales"]
    multiscale["name"] = plan.name
    for dataset in multiscale["datasets"]:
        transforms = dataset["coordinateTransformations"]
        if not any(t["type"] == "translation" for t in transforms):  # ome-zarr < 0.18 writes none
            transforms.append({"type": "translation", "translation": [0.0] * len(plan.axes)})
        for transform in transforms:
            if transform["type"] == "translation":
                transform["translation"] = [t + d for t, d in zip(plan.translate, transform["translation"])]
    dispatch = method_dispatch[method]
    multiscale["type"] = method.value
    multiscale["metadata"] = {"method": dispatch["used_function"], "version": str(dispatch["version"])}
    if fmt.zarr_format == 3:
        group.attrs["ome"] = ome
    else:
        group.attrs["multiscales"] = ome["multiscales"]


def _write_omero(root: zarr.Group, plan: LayerPlan, image: ImageEntry, fmt) -> None:
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
    omero = {"channels": channels, "rdefs": {"model": "color" if n_channels > 1 else "greyscale"}}
    if fmt.zarr_format == 3:
        root.attrs["ome"] = {**root.attrs["ome"], "omero": omero}
    else:
        root.attrs["omero"] = omero


def _labels_metadata(entry: LabelsEntry) -> tuple[list | None, list | None, dict]:
    """NGFF image-label colours and properties, and our exact attributes, of one layer."""
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
    if colors and properties:  # NGFF: both lists name the same label values
        with_color = {c["label-value"] for c in colors}
        with_class = {p["label-value"] for p in properties}
        fill = [int(round(c * 255)) for c in (default_color or (0.0, 0.0, 0.0, 0.0))]
        colors += [{"label-value": v, "rgba": fill} for v in sorted(with_class - with_color)]
        properties += [{"label-value": v} for v in sorted(with_color - with_class)]
        colors.sort(key=lambda c: c["label-value"])
        properties.sort(key=lambda p: p["label-value"])
    ours = {
        "name": str(entry.name),
        "role": entry.role,
        "colors": exact or None,
        "default_color": default_color,
        "display": jsonable(entry.display, f"labels {entry.name!r} display"),
        "metadata": jsonable(entry.metadata, f"labels {entry.name!r} metadata"),
    }
    return colors or None, properties, ours


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


class _Monitor(Callback):
    """Runs the delayed writes on our own pool; counts finished tasks, polls should_stop
    and reports progress on the calling thread."""

    def __init__(self, progress, should_stop):
        super().__init__()
        self.done = self.total = 0
        self._progress = progress
        self._should_stop = should_stop
        self._reported = -1

    def poll(self) -> None:
        if self._should_stop is not None and self._should_stop():
            raise _Stop()
        if self._progress is not None and self.done != self._reported:
            self._reported = self.done
            self._progress(self.done, self.total)

    def run(self, delayed: list) -> None:
        self.poll()
        with ThreadPoolExecutor(_WRITE_THREADS) as pool:
            try:  # our callback only (a global one would see other threads' dask work)
                dask.compute(*delayed, scheduler="threads", pool=pool, callbacks=[self._callback])
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)  # no write after the clean-up
                raise
        self.poll()

    def _start_state(self, dsk, state):
        self.total = sum(len(state[k]) for k in ("ready", "waiting", "running")) + len(state["finished"])

    def _posttask(self, key, result, dsk, state, worker_id):
        self.done = len(state["finished"])
        self.poll()


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
    if not (looks_like_zarr(path) or not any(path.iterdir())):
        raise UserInputError(
            f"{path} is a folder but not a zarr dataset; refusing to replace it. "
            "Choose another name for the export."
        )


def looks_like_zarr(path: Path) -> bool:
    """A folder with zarr metadata (v3 or v2) at its top."""
    return any((path / name).is_file() for name in ("zarr.json", ".zgroup", ".zattrs", ".zarray"))
