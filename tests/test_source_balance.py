"""Strokes and accepted regions are drawn as two equal sources of training patches (issue 9).

A small accepted region holds far more labelled pixels than the strokes; drawn per pixel it
crowded the strokes out of the round after a correction.
"""

import itertools

import numpy as np
import pytest

from napari_unet.functionals.data import PatchSampler, TrainingImage, prepare
from napari_unet.functionals.normalisation import Normalisation
from napari_unet.nn.patch_stream import batches
from napari_unet.nn.training import TrainConfig, Trainer

PATCH = 32


def _strokes_and_region(size: int = 240) -> TrainingImage:
    """Short strokes of both classes on the left; a dense accepted 64 px region with two objects far right."""
    rng = np.random.default_rng(0)
    image = rng.normal(size=(1, size, size)).astype(np.float32)
    annotations = np.zeros((size, size), np.uint8)
    annotations[20, 10:30] = 1  # background stroke
    annotations[60, 10:30] = 2  # object stroke
    image[0, 55:66, 8:32] += 3.0
    accepted = np.zeros((size, size), np.uint32)
    region = (slice(150, 214), slice(150, 214))
    accepted[region] = 1  # accepted background
    accepted[160:180, 160:180] = 2  # object 1
    accepted[190:205, 185:205] = 3  # object 2
    annotations[region] = np.where(accepted[region] > 1, 2, 1)
    image[0][accepted > 1] += 3.0
    return TrainingImage.from_annotations(image, annotations, accepted, name="toy")


def _share_from_region(balance: bool, patches: int = 600) -> float:
    """Fraction of annotated-centred patches drawn from the accepted region (its patches hold instance targets)."""
    prepared = [prepare(_strokes_and_region(), Normalisation(), margin=PATCH // 2)]
    stream = batches(prepared, PATCH, 50, np.random.default_rng(3), 3, 0, balance_sources=balance)
    drawn = list(itertools.islice(stream, patches // 50))
    stream.close()
    valid = np.concatenate([b.instance_valid for b in drawn])
    annotated = np.concatenate([(b.semantic >= 0).any(axis=(1, 2)) for b in drawn])
    from_region = valid.any(axis=(1, 2))
    return float(from_region[annotated].mean())


def test_accepted_region_is_marked_as_its_own_source():
    prepared = prepare(_strokes_and_region(), Normalisation(), margin=PATCH // 2)
    assert prepared.accepted.sum() == 64 * 64
    labelled = prepared.semantic >= 0
    strokes = labelled & ~prepared.accepted
    assert strokes.sum() == 40  # the two 20 px strokes
    assert (labelled & prepared.accepted).sum() > 90 * strokes.sum()


def test_strokes_and_accepted_region_are_drawn_equally_often():
    # per pixel the region's 4096 labels would drown the strokes' 40: nearly every patch from the region
    assert _share_from_region(balance=False) > 0.9
    assert _share_from_region(balance=True) == pytest.approx(0.5, abs=0.08)


def test_one_source_draws_exactly_as_before():
    """Scribbles alone (a first round) or dense labels alone: balancing changes nothing, patch for patch."""
    image = np.random.default_rng(1).normal(size=(1, 96, 96)).astype(np.float32)
    scribbles = np.zeros((96, 96), np.uint8)
    scribbles[10, 10:40], scribbles[50, 20:60] = 1, 2
    dense = np.zeros((96, 96), np.int32)
    dense[30:50, 30:50] = 1
    for item in (TrainingImage.from_scribbles(image, scribbles), TrainingImage.from_instances(image, dense)):
        prepared = [prepare(item, Normalisation(), margin=16)]
        on = PatchSampler(prepared, PATCH, rng=np.random.default_rng(7), balance_sources=True).sample(8)
        off = PatchSampler(prepared, PATCH, rng=np.random.default_rng(7), balance_sources=False).sample(8)
        assert np.array_equal(on.image, off.image) and np.array_equal(on.semantic, off.semantic)


def test_a_round_after_accepting_trains_with_both_sources():
    """Real tiny training on strokes + an accepted region: the setting reaches the sampler and the run."""
    item = _strokes_and_region(160 + 80)
    trainer = Trainer([item], TrainConfig(steps=3, batch_size=2, patch_size=PATCH, seed=0, device="cpu",
                                          validation_fraction=0.0))
    records = list(trainer.run())
    segmenter = trainer.segmenter
    assert [r.step for r in records] == [1, 2, 3] and all(np.isfinite(r.loss) for r in records)
    assert segmenter.instance_heads_trained  # the accepted objects trained the instance heads
    assert segmenter.history[-1]["config"]["balance_sources"] is True
    assert segmenter.history[-1]["steps"] == 3
