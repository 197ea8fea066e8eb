"""Small napari-unet OME-Zarr datasets for the dataset IO tests (test_ome_zarr_io, test_ome_zarr_atomic)."""

from __future__ import annotations

import numpy as np

from napari_unet.conventions import ROLE_ANNOTATIONS
from napari_unet.io import ome_zarr_dataset as io
from napari_unet.io.ome_zarr_dataset import ImageEntry, LabelsEntry


def random_annotations(shape, seed=1) -> np.ndarray:
    """Labels 0-3 everywhere: every pixel annotated or not, at random."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 4, shape).astype(np.uint8)


def listing(folder) -> list[str]:
    """The names in `folder`, sorted: what a write left there (no temporary or moved-aside folder)."""
    return sorted(p.name for p in folder.iterdir())


def simple_dataset(folder, value=7, name="ds.zarr", **kwargs):
    """`folder/name`: a 40 x 50 image filled with `value` and its annotations (one square of class 2)."""
    image = np.full((40, 50), value, np.uint16)
    ann = np.zeros((40, 50), np.uint8)
    ann[5:10, 5:10] = 2
    return io.write_dataset(
        folder / name, ImageEntry(image, name="img"),
        [LabelsEntry(ann, "img annotations", role=ROLE_ANNOTATIONS, class_names=["background", "cell"])],
        **kwargs,
    )
