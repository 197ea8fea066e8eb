"""A small held-out validation strip, used only when there is enough annotated data to spare.

The bottom rows of each image's annotated area are kept out of training and scored
periodically: semantic mean IoU on annotated pixels, and instance AP@0.5 where
instance identities are known. With little data everything goes to training.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from napari_unet.functionals.data import TrainingImage
from napari_unet.functionals.metrics import average_precision, semantic_iou

MIN_ANNOTATED_PIXELS = 4 * 256 * 256  # below this, all annotations train


@dataclass
class ValidationSplit:
    train: list[TrainingImage]
    validation: list[TrainingImage]


def split(items: list[TrainingImage], fraction: float) -> ValidationSplit:
    """Hold out the bottom `fraction` of each image's annotated rows, if the data is large enough."""
    annotated = sum(int(np.count_nonzero(item.annotations)) for item in items)
    if fraction <= 0 or annotated < MIN_ANNOTATED_PIXELS:
        return ValidationSplit(items, [])
    train, validation = [], []
    for item in items:
        rows = np.flatnonzero(np.asarray(item.annotations).any(axis=1))
        if rows.size < 64:
            train.append(item)
            continue
        cut = int(rows[-1] + 1 - round(fraction * (rows[-1] + 1 - rows[0])))
        top, bottom = _crop_rows(item, 0, cut), _crop_rows(item, cut, None)
        if len(np.unique(bottom.annotations[bottom.annotations > 0])) < 2:
            train.append(item)
            continue
        train.append(top)
        validation.append(bottom)
    return ValidationSplit(train, validation)


def _crop_rows(item: TrainingImage, start: int, stop: int | None) -> TrainingImage:
    rows = slice(start, stop)
    return TrainingImage(
        image=item.image[:, rows],
        annotations=item.annotations[rows],
        instances=None if item.instances is None else item.instances[rows],
        instance_mask=None if item.instance_mask is None else item.instance_mask[rows],
        name=f"{item.label} (validation)" if start else item.name,
    )


def score(segmenter, items: list[TrainingImage]) -> dict[str, float]:
    """Mean semantic IoU over annotated pixels, and AP@0.5 where instances are known."""
    ious, truths, preds = [], [], []
    for item in items:
        prediction = segmenter.predict(item.image)
        annotations = np.asarray(item.annotations)
        ious += [v for v in semantic_iou(annotations, prediction.semantic()).values() if np.isfinite(v)]
        if item.instances is not None:
            mask = np.ones(annotations.shape, bool) if item.instance_mask is None else item.instance_mask
            truths.append(np.where(mask, item.instances, 0))
            preds.append(np.where(mask, segmenter.instances(prediction), 0))
    result = {"mean_iou": float(np.mean(ious)) if ious else float("nan")}
    if truths:
        result["ap50"] = average_precision(truths, preds, thresholds=[0.5])[0.5]
    return result
