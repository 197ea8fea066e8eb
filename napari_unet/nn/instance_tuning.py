"""Tune a trained model's instance settings on its training images' outlined objects.

Predicts each image with outlined objects (dense instance labels, accepted regions) once, at
its own objects' diameter as training saw it, then hands the outputs to
`functionals.instance_tuning`, which repeats only the instance step. With too few outlined
objects to change the settings it still counts the mistakes the model's settings leave on them
(after a correction round, whether the corrected kind of mistake is gone). A generator, so the
training loop can report each step as progress.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import replace

import numpy as np

from napari_unet.functionals.data import TrainingImage
from napari_unet.functionals.instances import InstanceParams
from napari_unet.functionals.instance_tuning import (
    InstanceTuning,
    TuningCase,
    mistakes_at,
    settings_in_use,
    too_few,
    tune_instance_params,
)
from napari_unet.nn.segmenter import Segmenter

MAX_PIXELS = 8_000_000  # outputs kept for the search (16 bytes a pixel): images past this are not used


def tuning_steps(
    segmenter: Segmenter, items: Sequence[TrainingImage], diameter: float | None = None
) -> Generator[str, None, InstanceTuning]:
    """Yields what it is doing ("predicting image 2/12"); returns what tuning picked (or why not).

    `diameter`: the objects' size the user gave training, else each image's own, as training used.
    """
    outlined = [item for item in items if item.instances is not None
                and (item.instance_mask is None or np.any(item.instance_mask))]
    if outlined and not segmenter.instance_heads_trained:
        return InstanceTuning(InstanceParams(), False,
                              reason="the model's instance heads are not trained: objects come from its foreground")
    chosen, pixels = [], 0
    for item in outlined:
        size = int(np.prod(item.annotations.shape))
        if pixels + size <= MAX_PIXELS:
            chosen.append(item)
            pixels += size
    if outlined and not chosen:
        return InstanceTuning(settings_in_use(segmenter.instance_tuning), False,
                              reason=f"the images with outlined objects are each larger than {MAX_PIXELS / 1e6:g} Mpx")
    objects = sum(_objects(item) for item in chosen)
    refused = too_few(objects, len(chosen), segmenter.instance_tuning)
    if refused is not None and objects == 0:
        return refused
    cases = []
    for i, item in enumerate(chosen, start=1):
        yield f"{'counting mistakes' if refused else 'tuning instance settings'}: predicting image {i}/{len(chosen)}"
        cases.append(tuning_case(segmenter, item, diameter))
    if refused is not None:  # too few objects to change the settings, enough to say what they get wrong
        return replace(refused, errors=mistakes_at(cases, segmenter.instances, refused.params))
    yield f"tuning instance settings: comparing settings on {objects} objects"
    return tune_instance_params(cases, segmenter.instances, segmenter.instance_tuning)


def tuning_case(segmenter: Segmenter, item: TrainingImage, diameter: float | None = None) -> TuningCase:
    """The model's outputs on one image with outlined objects, at the size training saw it, and its objects."""
    prediction = segmenter.predict(item.image, diameter=diameter or item.object_diameter())
    known = None if item.instance_mask is None or item.instance_mask.all() else item.instance_mask
    return TuningCase(prediction, np.asarray(item.instances), known)


def _objects(item: TrainingImage) -> int:
    ids = np.unique(item.instances if item.instance_mask is None else item.instances[item.instance_mask])
    return int(np.count_nonzero(ids))
