"""Reading a napari-unet OME-Zarr dataset (or another OME-Zarr image with labels) back into
entries in napari's layout, with every problem a one-line UserInputError naming the dataset."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import zarr
from ome_zarr.format import FormatV04, FormatV05
from ome_zarr.io import parse_url
from ome_zarr.reader import Label, Multiscales, Node, Reader

from napari_unet.conventions import (
    METADATA_KEY,
    ROLE_ACCEPTED,
    ROLE_ANNOTATIONS,
    class_index,
    label_value,
)
from napari_unet.errors import UserInputError
from napari_unet.functionals.layout import ImageLayout
from napari_unet.io import atomic
from napari_unet.io.ome_zarr_entries import (
    FORMAT_VERSION,
    RGBA,
    ImageEntry,
    LabelsEntry,
    TrainingPair,
)
from napari_unet.io.ome_zarr_write import looks_like_zarr


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
            raise UserInputError(f"{path} is an OME-Zarr plate/well, not a single image: open one of its images "
                                 "(e.g. plate.zarr/A/1/0), or predict every field with `napari-unet predict "
                                 "--image plate.zarr --out-dir DIR` (or --into-zarr)")
        raise UserInputError(
            f"{path} is a zarr store but not an OME-Zarr image (no 'multiscales' metadata); "
            "open a dataset exported by napari-unet or another OME-Zarr image"
        )
    info = group.attrs.get(METADATA_KEY) if group is root else None
    info = info if isinstance(info, dict) else {}
    _check_format_version(info, path)
    image_info = info.get("image") if isinstance(info.get("image"), dict) else {}
    try:
        _check_stored(group[ome["multiscales"][0]["datasets"][0]["path"]], path)
        image_node, label_nodes = _nodes(group, path)
        image = _image_entry(*_multiscale(image_node, ome, path), image_info, path)
        labels = []
        if "labels" in group:
            labels_group = group["labels"]
            for label_path in _ome(labels_group).get("labels", []) or []:
                if label_path not in labels_group or label_path not in label_nodes:
                    raise UserInputError(
                        f"{path} is damaged: labels/{label_path} is listed but missing or not an "
                        "OME-Zarr label image")
                entry = _labels_entry(label_nodes[label_path], labels_group[label_path], label_path, path)
                expected = ImageLayout.stored(image.data.shape, rgb=image.rgb, channel_axis=image.channel_axis,
                                              name=str(path)).labels_shape
                if info and tuple(entry.data.shape) != expected:
                    raise UserInputError(
                        f"{path} is damaged: labels/{label_path} is {tuple(entry.data.shape)} "
                        f"but the image is {expected}")
                labels.append(entry)
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
    pixels = load(image.data, path)
    accepted_ids = None if accepted is None else load(accepted.data, path)
    return [TrainingPair(pixels, load(entry.data, path), accepted_ids) for entry in annotations]


def load(data, path, what: str = "its pixels") -> np.ndarray:
    """`data` in memory; a chunk that cannot be read or decoded is a UserInputError that
    names the dataset (and `what` in it)."""
    try:
        return np.asarray(data)
    except Exception as exc:
        raise UserInputError(
            f"{path} is damaged: {what} cannot be read ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else 'corrupt chunk'})") from exc


def _check_format_version(info: dict, path: Path) -> None:
    """Refuse datasets written by a newer napari-unet: it may store what we would misread."""
    if not info:
        return
    version = info.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise UserInputError(f"{path} is damaged: its napari_unet format_version is {version!r}")
    if version > FORMAT_VERSION:
        raise UserInputError(
            f"{path} was written by a newer napari-unet (dataset format {version}; this version "
            f"reads format {FORMAT_VERSION}): update napari-unet to open it")


# A declared array larger than this is opened only if enough of its chunks are stored:
# tampered metadata must not hand napari a lazy array of many gigabytes of nothing.
DECLARED_BYTES_CHECKED = 1 << 30
MIN_STORED_FRACTION = 0.01


def _check_stored(array: zarr.Array, path: Path) -> None:
    if not isinstance(array, zarr.Array):
        return
    declared = math.prod(array.shape) * array.dtype.itemsize
    if declared <= DECLARED_BYTES_CHECKED:
        return
    needed = math.ceil(MIN_STORED_FRACTION * array.nchunks)
    stored = _count_files(path / array.path, needed)
    if stored < needed:
        raise UserInputError(
            f"{path} is damaged or tampered with: its image declares {tuple(array.shape)} "
            f"({declared / 2**30:.1f} GiB) but only {stored} of {array.nchunks} chunks are stored; "
            "refusing to open it")


def _count_files(folder: Path, enough: int) -> int:
    """Chunk files under `folder` (metadata files aside), counting no further than `enough`
    (zarr's own count asks the store about every declared chunk: slow for huge shapes)."""
    count = 0
    for _, _, files in os.walk(folder):
        count += sum(1 for name in files if name not in (".zarray", ".zattrs", "zarr.json"))
        if count >= enough:
            break
    return count


def _open_group(path: Path) -> zarr.Group:
    if not path.exists():
        atomic.recover(path.parent)  # a write killed between its two renames hid it aside
    if not path.exists():
        raise UserInputError(f"{path} does not exist")
    if not path.is_dir():
        raise UserInputError(f"{path} is a file, not an OME-Zarr dataset (a .zarr folder)")
    try:
        node = zarr.open(store=str(path), mode="r")
    except Exception as exc:
        if not looks_like_zarr(path):
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


def _nodes(group: zarr.Group, path: Path) -> tuple[Node, dict[str, Node]]:
    """The image node and its label nodes (by folder name), as ome-zarr's Reader finds them."""
    fmt = FormatV05() if group.metadata.zarr_format == 3 else FormatV04()
    location = parse_url(str(path / group.path), fmt=fmt)
    if location is None:
        raise UserInputError(f"{path} is damaged: ome-zarr cannot open it")
    image, *others = Reader(location)()
    if image.load(Multiscales) is None:
        raise UserInputError(f"{path} is damaged: its image has no readable multiscales metadata")
    return image, {node.zarr.basename(): node for node in others if node.load(Label) is not None}


def _multiscale(node: Node, ome: dict, path: Path):
    """(axes, levels, scale, translate, units, name) of a node: the full-resolution level's
    transforms, then the multiscale's own (global) ones, which the Reader leaves to us."""
    levels = list(node.data)
    if not levels:
        raise UserInputError(f"{path} is damaged: its image has no arrays")
    axes_meta = node.metadata.get("axes") or []
    axes = [a["name"] if isinstance(a, dict) else str(a) for a in axes_meta]
    units = {a["name"]: a["unit"] for a in axes_meta if isinstance(a, dict) and a.get("unit")}
    ndim = levels[0].ndim
    if not axes:  # NGFF <= 0.3: always 5D tczyx
        axes = list("tczyx")[-ndim:]
    if len(axes) != ndim:
        raise UserInputError(f"{path} is damaged: {len(axes)} axes for {ndim}-D arrays")
    scale, translate = [1.0] * ndim, [0.0] * ndim
    for transform in (node.metadata.get("coordinateTransformations") or [[]])[0] or []:
        if transform.get("type") == "scale" and "scale" in transform:
            scale = [float(v) for v in transform["scale"]]
        elif transform.get("type") == "translation" and "translation" in transform:
            translate = [float(v) for v in transform["translation"]]
    for transform in ome["multiscales"][0].get("coordinateTransformations") or []:
        if transform.get("type") == "scale" and "scale" in transform:
            g = [float(v) for v in transform["scale"]]
            scale = [s * k for s, k in zip(scale, g)]
            translate = [t * k for t, k in zip(translate, g)]
        elif transform.get("type") == "translation" and "translation" in transform:
            translate = [t + float(d) for t, d in zip(translate, transform["translation"])]
    return axes, levels, scale, translate, units, ome["multiscales"][0].get("name")


def _image_entry(axes, levels, scale, translate, units, name, info, path) -> ImageEntry:
    """The stored image back in napari's layout: RGB(A) last, channels where they were written
    (other writers': where NGFF puts them), a single channel of another writer dropped."""
    stored = ImageLayout.on_disk(axes, levels[0].shape, name=str(path))
    layout = stored
    if "c" in axes:
        size, target = stored.n_channels, info.get("channel_axis")
        if info.get("rgb") and size in (3, 4):
            layout = stored.with_channels(rgb=True)
        elif isinstance(target, int):
            layout = stored.with_channels(target)
        elif size == 1:
            layout = stored.with_channels(None)
        scale, translate = _without_channels(scale, axes), _without_channels(translate, axes)
    levels = [stored.convert(level, layout) for level in levels]
    return ImageEntry(
        data=levels[0],
        name=str(info.get("name") or name or path.stem),
        axes=layout.axes,
        scale=scale,
        translate=translate,
        units=[units.get(a) for a in layout.axes] if units else None,
        channel_axis=layout.channel_axis,
        rgb=layout.rgb,
        contrast_limits=info.get("contrast_limits"),
        display=dict(info.get("display") or {}),
        metadata=dict(info.get("metadata") or {}),
        levels=levels,
    )


def _without_channels(values: list, axes: list[str]) -> list:
    """Per-axis `values` of the stored `axes` without the channel axis's."""
    return [v for v, a in zip(values, axes) if a != "c"]


def _labels_entry(node: Node, group: zarr.Group, label_path: str, path: Path) -> LabelsEntry:
    """A label image as ome-zarr's Reader found it (pyramid, colours, properties), with our
    attributes (exact colours, name, role, display) from its group."""
    axes, levels, scale, translate, units, name = _multiscale(node, _ome(group), path)
    stored = ImageLayout.on_disk(axes, levels[0].shape, name=f"{path}: labels/{label_path}")
    if "c" in axes and stored.n_channels == 1:  # NGFF gives labels the image's (size-1) channel axis
        levels = [stored.convert(level, stored.with_channels(None)) for level in levels]
        scale, translate = _without_channels(scale, axes), _without_channels(translate, axes)
        axes = _without_channels(axes, axes)
    if levels[0].dtype.kind not in "iub":
        raise UserInputError(f"{path}: labels/{label_path} holds {levels[0].dtype} values, not integer labels")
    info = group.attrs.get(METADATA_KEY)
    info = info if isinstance(info, dict) else {}

    colors: dict[int | None, RGBA] = {}
    exact = info.get("colors") or {}
    for value, rgba in (node.metadata.get("color") or {}).items():
        if rgba is None or (exact and str(int(value)) not in exact):
            continue  # no colour, or written by us only to pair with a class name (NGFF)
        precise = exact.get(str(int(value)))
        if precise is not None and [round(c * 255) for c in precise] == [round(c * 255) for c in rgba]:
            colors[int(value)] = tuple(float(c) for c in precise)  # the exact colour, unchanged since
        else:
            colors[int(value)] = tuple(float(c) for c in rgba)
    if colors and info.get("default_color") is not None:
        colors[None] = tuple(float(c) for c in info["default_color"])

    classes = {int(value): str(props["class"]) for value, props in (node.metadata.get("properties") or {}).items()
               if isinstance(props, dict) and "class" in props}
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
