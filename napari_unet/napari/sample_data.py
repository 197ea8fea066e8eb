"""npe2 sample data: an image plus a sparse-scribble annotations layer.

Each function returns napari LayerData tuples, ready for ``viewer.open_sample``:
the image, then its annotations Labels layer (0 = not annotated, 1 = background,
2 = the object class) named and tagged as napari_unet's widgets expect. No Qt.
"""

from __future__ import annotations

from napari_unet import conventions as c
from napari_unet.io.resources import (
    EM_IMAGE,
    EM_SCRIBBLES,
    NUCLEI_IMAGE,
    NUCLEI_SCRIBBLES,
    read_tif,
)

NUCLEI_NAME = "nuclei (DSB2018)"
EM_NAME = "EM membranes (ISBI 2012)"

def _pair(image, image_name, scribbles, class_names, image_kwargs=None):
    image_kwargs = {"name": image_name, **(image_kwargs or {})}
    labels_kwargs = {
        "name": c.layer_name(image_name, c.ROLE_ANNOTATIONS),
        "metadata": {
            c.METADATA_KEY: {
                "role": c.ROLE_ANNOTATIONS,
                "image": image_name,
                "class_names": list(class_names),
            }
        },
        "colormap": c.class_color_dict([c.class_color(i) for i in range(len(class_names))]),
        "opacity": 0.8,
    }
    return [(image, image_kwargs, "image"), (scribbles, labels_kwargs, "labels")]


def nuclei_sample():
    """Fluorescence nuclei (2018 Data Science Bowl, via StarDist) with scribbles."""
    image = read_tif(NUCLEI_IMAGE)
    return _pair(
        image,
        NUCLEI_NAME,
        read_tif(NUCLEI_SCRIBBLES),
        ["background", "nucleus"],
        {"colormap": "gray", "contrast_limits": (float(image.min()), float(image.max()))},
    )


def em_sample():
    """Serial-section EM of neural tissue (ISBI 2012) with scribbles on membranes (background) and cells."""
    return _pair(
        read_tif(EM_IMAGE),
        EM_NAME,
        read_tif(EM_SCRIBBLES),
        ["membrane (background)", "cell"],
        {"colormap": "gray"},
    )
