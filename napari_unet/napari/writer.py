"""npe2 writer: one image layer plus any Labels layers -> one napari-unet OME-Zarr dataset.

`viewer.layers.save("cells.zarr", selected=True, plugin="napari-unet")` with the image
and its Labels layers selected. Layer names, scale, translate, display settings,
Labels colours, and `metadata["napari_unet"]` (role, class names) are kept; see
`io.ome_zarr_dataset` for the layout on disk. Provenance recorded with the dataset comes from
the image layer's `metadata["napari_unet"]["provenance"]` (a free-form dict, e.g. the
model checkpoint hash), next to the plugin version and the date.

Saving replaces an existing dataset at the path (napari's save dialog asks first);
only a zarr store is ever replaced, and the replacement is atomic.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from napari_unet.conventions import METADATA_KEY
from napari_unet.errors import UserInputError
from napari_unet.io.ome_zarr_dataset import ImageEntry, LabelsEntry, write_dataset

IMAGE_DISPLAY_KEYS = ("colormap", "gamma", "opacity", "blending", "visible", "interpolation2d")
LABELS_DISPLAY_KEYS = ("opacity", "blending", "visible")


class DatasetSaveError(RuntimeError):
    """A save failed for a reason the user can fix; the message says what to do.

    napari treats a ValueError raised by a writer as "this writer does not apply"
    and hides the message, so the writer re-raises UserInputError as this type.
    """


def write_layers(path: str, layer_data: list[tuple[Any, dict, str]]) -> list[str]:
    """npe2 multi-layer writer: exactly one image layer and any number of Labels layers.

    The manifest offers this writer for any selection saved as ``.zarr`` so that a
    selection it cannot save (two images, a Points layer, labels without their image)
    is told why here, in our words, instead of napari's generic "no writer found".
    """
    try:
        if not str(path).lower().rstrip("/\\").endswith(".zarr"):
            raise UserInputError(
                f"napari-unet saves a dataset as a .zarr folder, not {Path(path).name!r}: "
                f"name it {Path(path).stem or 'dataset'}.zarr")
        image, labels, provenance = layers_to_entries(layer_data)
        written = write_dataset(path, image, labels, provenance=provenance, overwrite=True)
    except UserInputError as exc:
        raise DatasetSaveError(str(exc)) from exc
    return [str(written)]


def layers_to_entries(
    layer_data: list[tuple[Any, dict, str]],
) -> tuple[ImageEntry, list[LabelsEntry], dict]:
    """Translate napari LayerData tuples to core entries (and the provenance to record)."""
    images = [(d, m) for d, m, t in layer_data if t == "image"]
    labels = [(d, m) for d, m, t in layer_data if t == "labels"]
    others = sorted({t for _, _, t in layer_data if t not in ("image", "labels")})
    if others:
        raise UserInputError(
            f"a napari-unet dataset holds one image and its Labels layers, not {', '.join(others)} "
            "layers: select only the image and its Labels layers")
    if not images:
        raise UserInputError(
            "a napari-unet dataset needs the image its labels belong to: select the image layer "
            "together with its Labels layers")
    if len(images) != 1:
        raise UserInputError(
            "select exactly one image layer (with its Labels layers) to save a napari-unet "
            f"dataset; {len(images)} image layers were selected: save each image separately")
    data, meta = images[0]
    return image_entry_from_layer(data, meta), [labels_entry_from_layer(d, m) for d, m in labels], \
        dict(_own(meta).get("provenance") or {})


def image_entry_from_layer(data, meta: dict) -> ImageEntry:
    """ImageEntry from an Image layer's (data, meta), as in `layer.as_layer_data_tuple()`."""
    rgb = bool(meta.get("rgb", False))
    if meta.get("multiscale") or isinstance(data, list | tuple):
        data = data[0]  # the pyramid is rebuilt from full resolution
    display = {k: meta[k] for k in IMAGE_DISPLAY_KEYS if k in meta}
    if "colormap" in display:
        display["colormap"] = _colormap_name(display["colormap"])
        if display["colormap"] is None:
            del display["colormap"]
    metadata = dict(meta.get("metadata") or {})
    if isinstance(metadata.get(METADATA_KEY), dict):  # provenance is recorded separately
        metadata[METADATA_KEY] = {k: v for k, v in metadata[METADATA_KEY].items() if k != "provenance"}
        if not metadata[METADATA_KEY]:
            del metadata[METADATA_KEY]
    return ImageEntry(
        data=data,
        name=str(meta.get("name") or "image"),
        scale=meta.get("scale"),
        translate=meta.get("translate"),
        units=_units(meta.get("units")),
        rgb=rgb,
        contrast_limits=meta.get("contrast_limits"),
        display=display,
        metadata=metadata,
    )


def labels_entry_from_layer(data, meta: dict) -> LabelsEntry:
    """LabelsEntry from a Labels layer's (data, meta): role and class names come from
    `metadata["napari_unet"]`, fixed colours from a DirectLabelColormap."""
    if meta.get("multiscale") or isinstance(data, list | tuple):
        data = data[0]
    metadata = dict(meta.get("metadata") or {})
    own = dict(metadata.get(METADATA_KEY) or {})
    role = own.pop("role", None)
    class_names = own.pop("class_names", None)
    if METADATA_KEY in metadata:
        metadata[METADATA_KEY] = own
    return LabelsEntry(
        data=data,
        name=str(meta.get("name") or "labels"),
        role=role,
        class_names=[str(n) for n in class_names] if class_names else None,
        colors=_direct_colors(meta.get("colormap")),
        scale=meta.get("scale"),
        translate=meta.get("translate"),
        units=_units(meta.get("units")),
        display={k: meta[k] for k in LABELS_DISPLAY_KEYS if k in meta},
        metadata=metadata,
    )


def _own(meta: dict) -> dict:
    own = (meta.get("metadata") or {}).get(METADATA_KEY)
    return own if isinstance(own, dict) else {}


def _direct_colors(colormap) -> dict | None:
    """{label: RGBA} (None: colour of other labels) of a DirectLabelColormap, else None."""
    color_dict = getattr(colormap, "color_dict", None)
    if color_dict is None and isinstance(colormap, dict):
        color_dict = colormap
    if not color_dict:
        return None
    return {(None if k is None else int(k)): tuple(float(c) for c in v) for k, v in color_dict.items()}


def _colormap_name(colormap) -> str | None:
    if isinstance(colormap, str):
        return colormap
    if isinstance(colormap, dict):
        return colormap.get("name")
    return getattr(colormap, "name", None)


def _units(units) -> list[str] | None:
    if units is None:
        return None
    return [str(u) for u in units]
