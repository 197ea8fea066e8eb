"""Export and import of annotated images as one OME-Zarr dataset: the public entry points.

Qt-free core: no napari, Qt or magicgui imports. The napari reader and writer
(`napari/reader.py`, `napari/writer.py`), the export dock and the command line translate
layers to and from the entries defined here. The `ome-zarr` library writes the NGFF
image, labels and pyramids (`ome_zarr_write`); what is ours is the validation, the
napari-unet attributes, progress and cancel, and the crash-safe swap (`atomic`).

Layout of a dataset written by `write_dataset` (``<name>.zarr``), NGFF 0.5 on zarr v3 by
default, or NGFF 0.4 on zarr v2 (``ngff="0.4"``, same layout, attributes at the top
level of each group instead of under "ome")::

    <name>.zarr/                 NGFF multiscale image; attributes "ome" (version,
                                 multiscales with type and metadata, omero) and
                                 "napari_unet" (see below)
        s0, s1, ...              image pyramid, full resolution first; axes in NGFF
                                 order ([t,] [c,] [z,] y, x); y/x halved per level
                                 (local mean) until both are <= 1024; chunks from
                                 io.chunking
        labels/                  "ome": {"labels": [<path>, ...]} in layer order
            <path>/              one NGFF label image per Labels layer, same axes and
                                 as many levels as the image (a size-1 "c" axis where
                                 the image has channels); nearest downsampling
                zarr.json        "ome": multiscales + "image-label" (colors as 0-255
                                 RGBA, properties {"label-value", "class"} with the
                                 class names, source {"image": "../../"});
                                 "napari_unet": layer name, role, exact float
                                 colours, display settings, layer metadata

    root "napari_unet" attributes:
        format_version   1 (a dataset with a newer one is refused on load)
        provenance       {"plugin_version", "created" (UTC ISO 8601), **caller's dicts}
        image            {"name", "rgb", "channel_axis", "contrast_limits", "display",
                          "metadata"}
"""

from napari_unet.io.ome_zarr_entries import (
    FORMAT_VERSION,
    NGFF_VERSIONS,
    RGBA,
    ImageEntry,
    LabelsEntry,
    TrainingPair,
)
from napari_unet.io.ome_zarr_read import (
    dataset_training_pairs,
    is_napari_unet_dataset,
    read_dataset,
)
from napari_unet.io.ome_zarr_write import WriteStopped, write_dataset

__all__ = [
    "FORMAT_VERSION",
    "NGFF_VERSIONS",
    "RGBA",
    "ImageEntry",
    "LabelsEntry",
    "TrainingPair",
    "WriteStopped",
    "dataset_training_pairs",
    "is_napari_unet_dataset",
    "read_dataset",
    "write_dataset",
]
