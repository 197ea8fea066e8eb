"""The images a benchmark's simulated user annotates and is scored on: DSB2018 nuclei drawn by split, modality,
object size or image size, and ISBI 2012 EM sections, each with its true instances."""

from __future__ import annotations

import csv
from dataclasses import dataclass

import numpy as np
import tifffile
from common import shared_data
from scipy import ndimage as ndi


@dataclass
class Sample:
    """One 2D image (C, H, W) with its true instances (H, W)."""

    name: str
    image: np.ndarray
    truth: np.ndarray


def gray(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image, np.float32)
    return (image[..., :3].mean(axis=-1) if image.ndim == 3 else image)[None]


def dsb_samples(split: str, n: int, seed: int, modality: str = "fluorescence", min_area: float = 0,
                shape: str | None = None) -> list[Sample]:
    """n images of one modality and split of the DSB2018 stage-1 set, drawn with `seed`; with `min_area`, only
    images whose median object area is at least that (pixels); with `shape` ("360x360"), only images of that
    size: in DSB2018 a size is mostly one experiment, as a user's own images are."""
    root = shared_data("dsb2018-stage1-train")
    with open(root / "index.csv") as f:
        ids = sorted(row["id"] for row in csv.DictReader(f) if row["split"] == split and row["modality"] == modality
                     and float(row["median_area"]) >= min_area
                     and shape in (None, f"{row['height']}x{row['width']}"))
    if not ids:
        raise SystemExit(f"no {modality} {split} images with median object area >= {min_area} and size {shape}")
    chosen = np.random.default_rng(seed).choice(len(ids), size=min(n, len(ids)), replace=False)
    return [Sample(ids[i], gray(tifffile.imread(root / "images" / f"{ids[i]}.tif")),
                   tifffile.imread(root / "labels" / f"{ids[i]}.tif").astype(np.int32)) for i in sorted(chosen)]


def isbi_samples(indices: list[int]) -> list[Sample]:
    """ISBI 2012 EM sections; cells (connected interiors) are the objects."""
    from skimage.io import imread

    root = shared_data("isbi2012-membranes")
    out = []
    for i in indices:
        cells, _ = ndi.label(imread(root / f"{i}_labels.png") > 0)
        out.append(Sample(f"isbi {i}", gray(imread(root / f"{i}_image.png")), cells.astype(np.int32)))
    return out
