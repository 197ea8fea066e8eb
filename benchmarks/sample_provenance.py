"""Which DSB2018 image the shipped nuclei sample comes from, and in which split (train / val).

    python benchmarks/sample_provenance.py

The centre (up to 192x192) of every DSB2018 stage-1 image is matched into the sample
(normalised cross-correlation); the best match is then checked pixel by pixel: its ground
truth, cropped where the match puts the sample, must equal the sample's. A figure of the
shipped `nuclei` model on the sample is an unseen-image figure only if that image is in `val`.
"""

from __future__ import annotations

import csv
import sys

import numpy as np
import tifffile
from common import shared_data
from skimage.feature import match_template

from napari_unet.io.resources import NUCLEI_IMAGE, NUCLEI_INSTANCES, resource_path

PATCH = 192


def main() -> int:
    root = shared_data("dsb2018-stage1-train")
    sample = tifffile.imread(resource_path(NUCLEI_IMAGE)).astype(np.float32)
    truth = tifffile.imread(resource_path(NUCLEI_INSTANCES))
    with open(root / "index.csv") as f:
        rows = list(csv.DictReader(f))
    scores = []
    for row in rows:
        image = tifffile.imread(root / "images" / f"{row['id']}.tif").astype(np.float32)
        image = image[..., :3].mean(axis=-1) if image.ndim == 3 else image
        h, w = image.shape
        k = min(PATCH, h, w)
        y0, x0 = h // 2 - k // 2, w // 2 - k // 2
        patch = image[y0 : y0 + k, x0 : x0 + k]
        if patch.std() < 1:
            continue
        match = match_template(sample, patch)
        y, x = np.unravel_index(np.argmax(match), match.shape)
        scores.append((float(match[y, x]), row, (int(y0 - y), int(x0 - x))))  # the sample's origin in the DSB image
    scores.sort(key=lambda s: -s[0])
    for score, row, origin in scores[:3]:
        print(f"{row['id']} ({row['split']}, {row['modality']}, {row['height']}x{row['width']}): "
              f"correlation {score:.3f}, sample origin {origin}")
    score, row, (oy, ox) = scores[0]
    labels = tifffile.imread(root / "labels" / f"{row['id']}.tif")
    crop = labels[oy : oy + truth.shape[0], ox : ox + truth.shape[1]] if oy >= 0 and ox >= 0 else None
    same = crop is not None and crop.shape == truth.shape and np.array_equal(crop > 0, truth > 0)
    where = f"rows {oy}-{oy + truth.shape[0] - 1}, columns {ox}-{ox + truth.shape[1] - 1} of " if same else "NOT "
    print(f"the sample is {where}DSB2018 image {row['id']}, split `{row['split']}`"
          + ("" if same else " (no pixel-exact match of the ground truth)"))
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
