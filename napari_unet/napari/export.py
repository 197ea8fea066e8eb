"""Layers -> export jobs: which Labels layers go with each image, and snapshots of them to write.

napari but no Qt: the export dock reads its tick boxes and calls these; `io/export.py` writes
the jobs. A job holds copies of the layers' data and metadata, so painting can go on while
a worker writes it.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
from napari.layers import Image, Labels

from napari_unet import conventions as c
from napari_unet.errors import UserInputError
from napari_unet.io.export import ExportJob
from napari_unet.napari import layers as lb
from napari_unet.napari.writer import image_entry_from_layer, labels_entry_from_layer

EXPORT_ROLES = (c.ROLE_ANNOTATIONS, c.ROLE_SEMANTIC, c.ROLE_INSTANCES, c.ROLE_ACCEPTED)

# image name -> [(role, Labels layer name), ...] for each image layer, in layer order
Structure = list[tuple[str, list[tuple[str, str]]]]


def export_structure(viewer) -> Structure:
    """Every image layer with the Labels layers paired with it, by role."""
    out = []
    for image in lb.image_layers(viewer):
        pairs = []
        for role in EXPORT_ROLES:
            layer = lb.find_paired(viewer, image.name, role)
            if layer is not None:
                pairs.append((role, layer.name))
        out.append((image.name, pairs))
    return out


def chosen_layers(viewer, images: dict[str, list[str]]) -> list[tuple[Image, list[Labels]]]:
    """The image layers named by `images` (name -> roles to include) with their Labels layers in
    the viewer's order (which reopening restores); UserInputError for a missing image or none."""
    layers = {layer.name: layer for layer in lb.image_layers(viewer)}
    chosen = []
    for name, roles in images.items():
        image = layers.get(name)
        if image is None:
            raise UserInputError(f"there is no image layer '{name}' to export")
        labels = [lb.find_paired(viewer, name, role) for role in roles]
        labels = sorted((layer for layer in labels if layer is not None), key=viewer.layers.index)
        chosen.append((image, labels))
    if not chosen:
        raise UserInputError("no image selected: tick at least one image under 'Images and layers'")
    return chosen


def _snapshot_meta(meta: dict) -> dict:
    meta = dict(meta)
    try:
        meta["metadata"] = copy.deepcopy(meta.get("metadata") or {})
    except Exception:  # metadata that cannot be copied: a shallow copy still freezes its keys
        meta["metadata"] = dict(meta.get("metadata") or {})
    return meta


def job_from_layers(image: Image, labels: list[Labels], path: Path, overwrite: bool = False,
                    ngff: str = "0.5") -> ExportJob:
    """A snapshot of `image` and its `labels` (data copied where painting may change it) to write at `path`."""
    data, meta, _ = image.as_layer_data_tuple()
    image_entry = image_entry_from_layer(data, _snapshot_meta(meta))
    entries, layer_provenance, accepted = [], {}, None
    for layer in labels:
        ldata, lmeta, _ = layer.as_layer_data_tuple()
        if isinstance(ldata, np.ndarray):  # painting goes on while the export runs
            ldata = ldata.copy()
        entry = labels_entry_from_layer(ldata, _snapshot_meta(lmeta))
        entries.append(entry)
        own = lb.meta(layer).get("provenance")
        if own:
            layer_provenance[layer.name] = copy.deepcopy(own)
        if entry.role == c.ROLE_ACCEPTED and accepted is None:
            accepted = entry.data
    provenance = copy.deepcopy(dict(lb.meta(image).get("provenance") or {}))
    if layer_provenance:
        provenance["layers"] = layer_provenance
    return ExportJob(image.name, path, image_entry, entries, provenance, overwrite, accepted, ngff=ngff)
