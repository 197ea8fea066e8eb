"""3D objects: a stack's per-plane predictions give one id per object across planes."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic import ellipsoids

from napari_unet.functionals.instances import InstanceParams, instances_from_prediction
from napari_unet.functionals.instances3d import instances_3d, split_fraction
from napari_unet.functionals.metrics import instance_scores
from napari_unet.functionals.prediction import Prediction
from napari_unet.functionals.targets import ideal_prediction


def _plane_predictions(labels: np.ndarray) -> list[Prediction]:
    """What a perfect 2D network says about each plane of a labelled stack."""
    return [ideal_prediction(plane) for plane in labels]


@pytest.mark.parametrize("heads", [True, False])
def test_stack_gives_one_id_per_object_across_planes(heads):
    truth = ellipsoids(shape=(12, 64, 64), n=10, z_anisotropy=3.0, seed=1)
    predictions = _plane_predictions(truth)
    labels = instances_3d(predictions, InstanceParams(min_size=20), use_instance_heads=heads, z_anisotropy=3.0)
    assert labels.shape == truth.shape and labels.dtype == np.uint32
    assert split_fraction(truth, labels) <= 0.1
    spanning = [i for i in np.unique(truth)[1:] if np.count_nonzero(np.any(truth == i, axis=(1, 2))) >= 3]
    assert spanning, "the synthetic stack must hold objects spanning planes"
    # the same object in different planes: one id
    for i in spanning:
        ids, counts = np.unique(labels[truth == i], return_counts=True)
        assert counts.max() / counts.sum() > 0.8, f"object {i} split into {dict(zip(ids, counts))}"
    # per plane, ids restart: the 2D recipe splits nearly every spanning object
    per_plane = np.stack([instances_from_prediction(p, InstanceParams(min_size=5)) for p in predictions])
    assert split_fraction(truth, per_plane) > 0.5
    assert instance_scores([truth], [labels], thresholds=[0.5]).ap[0.5] > 0.8


def test_min_confidence_drops_faint_3d_objects_as_wholes():
    truth = ellipsoids(shape=(12, 64, 64), n=10, z_anisotropy=3.0, seed=1)
    predictions = _plane_predictions(truth)
    faint = int(np.unique(truth)[1])
    for plane, prediction in zip(truth, predictions):  # one object the network is unsure of, in every plane
        prediction.probabilities[1][plane == faint] = 0.6
        prediction.probabilities[0] = 1 - prediction.probabilities[1]
    every = instances_3d(predictions, InstanceParams(min_size=20, min_confidence=0.0), z_anisotropy=3.0)
    sure = instances_3d(predictions, InstanceParams(min_size=20), z_anisotropy=3.0)  # the default, 0.85 of 1.0
    assert every[truth == faint].any() and not sure[truth == faint].any()
    assert sure.max() == every.max() - 1  # only that one, and the ids stay dense
    assert sorted(np.unique(sure))[-1] == len(np.unique(sure)) - 1


def test_split_fraction_counts_objects_cut_between_planes():
    truth = np.zeros((4, 8, 8), np.int32)
    truth[:, 2:6, 2:6] = 1
    pred = truth.astype(np.uint32).copy()
    assert split_fraction(truth, pred) == 0.0
    pred[2:] = 2
    assert split_fraction(truth, pred) == 1.0
