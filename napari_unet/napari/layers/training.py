"""The training pairs of every annotated plane in the viewer, for the core's trainer."""

from __future__ import annotations

from napari_unet import conventions as c
from napari_unet.errors import UserInputError
from napari_unet.functionals.data import TrainingImage
from napari_unet.functionals.data import training_items as items_of_image
from napari_unet.napari.layers.layout import check_pair, image_data, layout_in
from napari_unet.napari.layers.pixels import check_finite
from napari_unet.napari.layers.roles import find_paired, image_layers


def training_items(viewer) -> list[TrainingImage]:
    """Training pairs of every annotated plane of every image that has an annotations layer."""
    items: list[TrainingImage] = []
    found_layer = False
    for image in image_layers(viewer):
        annotations = find_paired(viewer, image.name, c.ROLE_ANNOTATIONS)
        if annotations is None:
            continue
        found_layer = True
        layout = layout_in(viewer, image)
        check_pair(image, annotations, layout)
        accepted = find_paired(viewer, image.name, c.ROLE_ACCEPTED)
        items += items_of_image(image_data(image), layout, annotations.data,
                                accepted.data if accepted is not None else None, name=image.name)
    if not items:
        if not found_layer:
            raise UserInputError(
                "no annotations yet: pick an image in step 1, then paint background (1) and a class (2) "
                "in its annotations layer"
            )
        raise UserInputError(
            "the annotations layers are empty: paint a few strokes of background (label 1) and of a class (label 2+)"
        )
    for item in items:  # copies read at the click: a NaN stops here, not in the job
        check_finite(item.image, item.source, item.plane)
        if item.stats_sample is not None:
            check_finite(item.stats_sample, item.source, item.plane)
    return items
