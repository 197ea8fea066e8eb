"""`napari-unet train`'s inputs as training pairs: image files with their labels, exported datasets."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from napari_unet.errors import UserInputError


def training_items_of(args) -> list:
    """The training pairs `train` was given: --image with --instances/--scribbles, and --dataset."""
    pairs = args.labels or []
    if len(args.image) != len(pairs):
        raise UserInputError(
            f"got {len(args.image)} --image but {len(pairs)} --instances/--scribbles: give one labels file per image, "
            "in the same order"
        )
    if not args.image and not args.dataset:
        raise UserInputError("nothing to train on: give --image with --instances or --scribbles, or --dataset")
    from napari_unet.io.images import read_labels

    items = []
    for image_path, (kind, labels_path) in zip(args.image, pairs):
        items += _file_items(image_path, kind, read_labels(labels_path), args.channel_axis)
    items += _dataset_items(args.dataset)
    return items


def _file_items(image_path: str, kind: str, labels, channel_axis: int | None) -> list:
    """Training pairs of one image file: each plane of a stack (3-D file) is one 2D pair."""
    from napari_unet.functionals.data import TrainingImage, training_items
    from napari_unet.functionals.layout import plane_label
    from napari_unet.io.images import read_image
    from napari_unet.nn.volume import layout_of_file

    name = Path(image_path).name
    image = read_image(image_path)
    layout = layout_of_file(tuple(image.shape), channel_axis, name)
    if tuple(labels.shape) != layout.labels_shape and _singles_dropped(labels.shape) == _singles_dropped(
            layout.labels_shape):  # a one-frame stack with 2D labels, or the reverse: the same pixels
        labels = labels.reshape(layout.labels_shape)
    if tuple(labels.shape) != layout.labels_shape:
        raise UserInputError(f"{name} is {tuple(image.shape)} but its labels are {tuple(labels.shape)}: "
                             f"they must have the same height and width (and planes): {layout.labels_shape}")
    if kind == "scribbles" and layout.stack_shape:
        return training_items(image, layout, labels, name=name)  # the annotated planes
    if kind == "scribbles":
        return [TrainingImage.from_scribbles(np.array(layout.image_plane(image, ())), labels, name=name)]
    return [TrainingImage.from_instances(np.array(layout.image_plane(image, plane)), np.array(labels[plane]),
                                         name=f"{name} {plane_label(plane)}".strip())
            for plane in layout.planes()]


def _singles_dropped(shape) -> tuple[int, ...]:
    """`shape` without its leading axes of length 1 (a stack of one plane is that plane)."""
    shape = tuple(shape)
    while len(shape) > 2 and shape[0] == 1:
        shape = shape[1:]
    return shape


def _dataset_items(paths: list[str]) -> list:
    """Training pairs from exported napari-unet OME-Zarr datasets (annotations and accepted regions)."""
    if not paths:
        return []
    from napari_unet.functionals.data import annotated_planes
    from napari_unet.io.ome_zarr_dataset import dataset_training_pairs, read_dataset

    items = []
    for path in paths:
        layout = read_dataset(path)[0]
        for pair in dataset_training_pairs(path):
            items += annotated_planes(pair.image, pair.annotations, pair.accepted, rgb=layout.rgb,
                                      channel_axis=layout.channel_axis, name=Path(path).name)
    return items
