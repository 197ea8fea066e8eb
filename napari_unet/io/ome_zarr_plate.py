"""OME-Zarr (NGFF) plates as batch inputs: every field of every well, named by row, column and field.

A plate (`plate.zarr`) lists its wells (`A/1`, ...) and each well its fields (`A/1/0`, ...);
every field is an ordinary OME-Zarr image group. Batch prediction gives each field its own
task, reads it with its named axes (channels where the metadata says, single t / z planes
dropped), and names its outputs `<plate>_<row><column>_field<k>`; the labels can also be
written back into the field as an OME-Zarr labels group.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zarr

from napari_unet.conventions import METADATA_KEY
from napari_unet.errors import UserInputError
from napari_unet.functionals.layout import ImageLayout

PLATE_DEPTH = 3  # plate.zarr/<row>/<column>/<field>


def _attrs(path: Path) -> dict:
    """NGFF attributes of the group at `path` ({} for anything else): under "ome" (0.5) or top-level (0.4)."""
    try:
        node = zarr.open_group(store=str(path), mode="r")
    except (OSError, ValueError):  # no group there, or unreadable metadata
        return {}
    attrs = node.attrs.asdict()
    return attrs["ome"] if isinstance(attrs.get("ome"), dict) else attrs


def is_plate(path: str | os.PathLike) -> bool:
    """True if `path` is an OME-Zarr plate."""
    path = Path(path)
    return path.is_dir() and isinstance(_attrs(path).get("plate"), dict)


def plate_fields(path: str | os.PathLike) -> list[Path]:
    """The image group of every field of every well of the plate at `path`, well by well."""
    path = Path(path)
    plate = _attrs(path).get("plate")
    wells = plate.get("wells") if isinstance(plate, dict) else None
    if not isinstance(wells, list) or not wells:
        raise UserInputError(f"{path} is an OME-Zarr plate without wells")
    fields = []
    for well in wells:
        well_path = path / str(well.get("path", "")) if isinstance(well, dict) else None
        images = _attrs(well_path).get("well", {}).get("images") if well_path is not None else None
        if not isinstance(images, list):
            raise UserInputError(f"{path} is damaged: well {well!r} has no readable 'well' metadata")
        fields += [well_path / str(image["path"]) for image in images if isinstance(image, dict) and "path" in image]
    if not fields:
        raise UserInputError(f"{path} is an OME-Zarr plate whose wells hold no fields")
    return fields


def plate_of(field: str | os.PathLike) -> Path | None:
    """The plate a field's image group belongs to (`plate.zarr/A/1/0` -> `plate.zarr`), or None."""
    field = Path(field)
    if len(field.parts) <= PLATE_DEPTH:
        return None
    plate = field.parents[PLATE_DEPTH - 1]
    return plate if plate.suffix.lower() == ".zarr" and is_plate(plate) else None


def field_name(field: Path) -> str:
    """What a field's outputs are called: `<plate stem>_<row><column>_field<k>` (e.g. plate_B3_field0)."""
    row, column, index = field.parts[-PLATE_DEPTH:]
    return f"{field.parents[PLATE_DEPTH - 1].stem}_{row}{column}_field{index}"


@dataclass(frozen=True)
class FieldImage:
    """A field's pixels (lazy, in napari's layout with single t / z planes dropped) and their layout;
    `shape` is the labels shape the field itself has, for writing labels back."""

    data: object
    layout: ImageLayout
    labels_shape: tuple[int, ...]


def read_field(field: Path) -> FieldImage:
    """A field's full-resolution image, channels where its axes say, single t / z planes dropped."""
    from napari_unet.io.ome_zarr_read import read_dataset

    entry = read_dataset(field)[0]
    full = ImageLayout.stored(entry.data.shape, rgb=entry.rgb, channel_axis=entry.channel_axis, name=str(field))
    single = [a for a in full.stack_axes if full.data_shape[a] == 1]
    data = entry.data[tuple(0 if a in single else slice(None) for a in range(len(full.data_shape)))]
    channel_axis = None if full.channel_axis is None else full.channel_axis - sum(a < full.channel_axis for a in single)
    layout = ImageLayout.stored(data.shape, rgb=entry.rgb, channel_axis=channel_axis, name=str(field))
    if len(layout.stack_shape) > 1:
        raise UserInputError(f"{field} has axes {entry.axes} with more than one stack axis (t and z): "
                             "only one is supported")
    return FieldImage(data, layout, full.labels_shape)


def has_field_labels(field: Path, name: str) -> bool:
    """True if the field holds the label image `labels/<name>` written to the end by `write_field_labels`."""
    try:
        group = zarr.open_group(store=str(field), path=f"labels/{name}", mode="r")
    except (OSError, ValueError):  # no group there, or unreadable metadata
        return False
    return bool((group.attrs.get(METADATA_KEY) or {}).get("complete"))


def write_field_labels(field: Path, name: str, labels: np.ndarray, labels_shape: tuple[int, ...]) -> None:
    """Write `labels` into the field as the OME-Zarr label image `labels/<name>` (replacing one of that
    name), on the field's pixel grid; marked complete last, so a killed write is redone on resume."""
    from ome_zarr.format import FormatV04, FormatV05
    from ome_zarr.writer import write_labels

    from napari_unet.io.ome_zarr_read import read_dataset

    entry = read_dataset(field)[0]
    group = zarr.open_group(store=str(field), mode="a")
    fmt = FormatV05() if group.metadata.zarr_format == 3 else FormatV04()
    layout = ImageLayout.stored(entry.data.shape, rgb=entry.rgb, channel_axis=entry.channel_axis,
                                axes=entry.axes, name=str(field))
    ngff = layout.labels_to_ngff(np.asarray(labels).reshape(labels_shape))
    write_labels(ngff, group, name=name, scaler=None, scale_factors=[], axes=layout.ngff_axes, fmt=fmt,
                 scale=dict(zip(layout.ngff_axes, layout.to_ngff_values(entry.scale, 1.0))), label_metadata={"source": {"image": "../../"}})
    written = group["labels"][name]
    written.attrs[METADATA_KEY] = {"role": name, "complete": True}
