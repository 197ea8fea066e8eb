import math

import numpy as np
import pytest
from scipy import ndimage
from scipy.optimize import linear_sum_assignment

from napari_unet.errors import UserInputError
from napari_unet.functionals.metrics import (
    DEFAULT_THRESHOLDS,
    average_precision,
    instance_counts,
    instance_scores,
    match_instances,
    semantic_iou,
)


def intervals(*spans: tuple[int, int], width: int = 30) -> np.ndarray:
    """One-row label image with object i+1 on columns [start, stop) of spans[i]."""
    row = np.zeros((1, width), dtype=np.int32)
    for i, (start, stop) in enumerate(spans):
        row[0, start:stop] = i + 1
    return row


def square(shape=(20, 20), top=0, left=0, size=10, value=1) -> np.ndarray:
    img = np.zeros(shape, dtype=np.uint16)
    img[top : top + size, left : left + size] = value
    return img


def random_labels(rng: np.random.Generator, shape=(64, 64)) -> np.ndarray:
    """Blobby objects with shuffled, non-sequential ids."""
    noise = ndimage.gaussian_filter(rng.normal(size=shape), 2)
    labels, n = ndimage.label(noise > 0.05)
    ids = np.concatenate([[0], rng.choice(10 * n + 10, size=n, replace=False) + 1])
    return ids[labels]


def brute_force_iou(truth, pred):
    true_ids = [i for i in np.unique(truth) if i]
    pred_ids = [j for j in np.unique(pred) if j]
    iou = np.zeros((len(true_ids), len(pred_ids)))
    for a, i in enumerate(true_ids):
        for b, j in enumerate(pred_ids):
            inter = np.sum((truth == i) & (pred == j))
            union = np.sum((truth == i) | (pred == j))
            iou[a, b] = inter / union
    return iou


def stardist_tp(iou: np.ndarray, thr: float) -> int:
    """TP as StarDist's `matching` computes it: optimal assignment with IoU tie-break."""
    if iou.size == 0:
        return 0
    costs = -(iou >= thr).astype(float) - iou / (2 * min(iou.shape))
    rows, cols = linear_sum_assignment(costs)
    return int(np.count_nonzero(iou[rows, cols] >= thr))


def test_identical_images_score_one():
    truth = np.zeros((30, 30), dtype=np.int32)
    truth[2:8, 2:8] = 5
    truth[10:20, 3:9] = 17
    truth[22:29, 20:28] = 3
    scores = instance_scores([truth], [truth.copy()])
    assert scores.ap == dict.fromkeys(DEFAULT_THRESHOLDS, 1.0)
    assert scores.mean_ap == 1.0
    assert set(scores.tp.values()) == {3}
    assert set(scores.fp.values()) == set(scores.fn.values()) == {0}


def test_shifted_object_has_exact_iou():
    truth = square()
    pred = square(left=2, value=9)  # overlap 10x8, union 10x12 -> IoU 2/3
    overlap = match_instances(truth, pred)
    assert list(overlap.true_ids) == [1] and list(overlap.pred_ids) == [9]
    assert overlap.iou.shape == (1, 1) and overlap.iou[0, 0] == pytest.approx(2 / 3)
    counts = instance_counts(truth, pred, thresholds=(0.5, 0.65, 0.7))
    assert counts == {0.5: (1, 0, 0), 0.65: (1, 0, 0), 0.7: (0, 1, 1)}


def test_split_object_matches_one_half_only():
    truth = intervals((0, 20))
    pred = intervals((0, 10), (10, 20))  # each half has IoU exactly 0.5
    counts = instance_counts(truth, pred, thresholds=(0.5, 0.55))
    assert counts == {0.5: (1, 1, 0), 0.55: (0, 2, 1)}


def test_merged_objects_match_one_truth_only():
    truth = intervals((0, 10), (10, 20))
    pred = intervals((0, 20))
    assert instance_counts(truth, pred, thresholds=(0.5,)) == {0.5: (1, 0, 1)}


def test_low_threshold_uses_optimal_not_greedy_matching():
    # The best pair A-X (IoU 6/13) would block both B-X (0.3) and A-Y (0.4);
    # the one-to-one optimum matches A-Y and B-X instead.
    truth = intervals((0, 10), (10, 14))
    pred = intervals((4, 13), (0, 4))
    assert instance_counts(truth, pred, thresholds=(0.25,)) == {0.25: (2, 0, 0)}


def test_counts_are_summed_over_images_not_averaged():
    perfect = square(value=4)
    missed = np.zeros((20, 20), dtype=np.int32)
    missed[0:3, 0:3], missed[5:8, 5:8], missed[10:13, 10:13] = 1, 2, 3
    nothing = np.zeros_like(missed)
    scores = instance_scores([perfect, missed], [perfect, nothing], thresholds=(0.5,))
    assert (scores.tp[0.5], scores.fp[0.5], scores.fn[0.5]) == (1, 0, 3)
    assert scores.ap[0.5] == pytest.approx(0.25)  # the mean of per-image APs would be 0.5
    assert average_precision([perfect, missed], [perfect, nothing], (0.5,)) == {0.5: 0.25}


def test_empty_truth_and_prediction_score_one():
    empty = np.zeros((8, 8), dtype=np.uint8)
    assert average_precision([empty], [empty]) == dict.fromkeys(DEFAULT_THRESHOLDS, 1.0)
    assert average_precision([empty], [square((8, 8), size=3)], (0.5,)) == {0.5: 0.0}
    assert average_precision([square((8, 8), size=3)], [empty], (0.5,)) == {0.5: 0.0}


def test_ids_need_not_be_sequential_and_types_are_flexible():
    truth = square(value=1)
    huge = square(left=2).astype(np.int64) * 10**12
    assert instance_counts(truth, huge, (0.5,)) == {0.5: (1, 0, 0)}
    assert instance_counts(truth.astype(bool), truth.astype(np.float32), (0.5,)) == {
        0.5: (1, 0, 0)
    }


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.full((20, 20), 0.5), "integer"),
        (np.full((20, 20), -1), "non-negative"),
        (np.zeros((20, 21)), "shape"),
    ],
)
def test_bad_predictions_raise_user_input_error(bad, message):
    with pytest.raises(UserInputError, match=message):
        instance_counts(square(), bad)


def test_mismatched_image_counts_and_thresholds_raise():
    with pytest.raises(UserInputError, match="2 ground-truth images but 1"):
        average_precision([square(), square()], [square()])
    with pytest.raises(UserInputError, match="thresholds"):
        instance_counts(square(), square(), thresholds=(0.0,))


def test_iou_and_counts_agree_with_brute_force_on_random_labels():
    rng = np.random.default_rng(1)
    for _ in range(4):
        truth = random_labels(rng)
        pred = np.roll(random_labels(rng) if rng.random() < 0.3 else truth, 2, axis=1)
        pred = np.where(rng.random(pred.shape) < 0.1, 0, pred)  # ragged edges
        expected = brute_force_iou(truth, pred)
        overlap = match_instances(truth, pred)
        np.testing.assert_allclose(overlap.iou.toarray(), expected)
        thresholds = (0.1, 0.3, 0.5, 0.7, 0.9)
        n_true, n_pred = expected.shape
        for thr, (tp, fp, fn) in instance_counts(truth, pred, thresholds).items():
            assert tp == stardist_tp(expected, thr)
            assert (fp, fn) == (n_pred - tp, n_true - tp)


def test_table_lists_every_threshold_and_the_mean():
    scores = instance_scores([square()], [square(left=2)], thresholds=(0.5, 0.7))
    lines = scores.table().splitlines()
    assert lines[0].split() == ["IoU", "AP", "TP", "FP", "FN"]
    assert lines[1].split() == ["0.50", "1.000", "1", "0", "0"]
    assert lines[2].split() == ["0.70", "0.000", "0", "1", "1"]
    assert lines[3].split() == ["mean", "0.500"]


def test_semantic_iou_known_values_ignoring_unannotated_pixels():
    truth = np.array([[0, 1, 1, 2], [2, 2, 3, 0]])
    pred = np.array([[3, 1, 2, 2], [2, 1, 3, 3]])
    # Unannotated pixels (truth 0) are left out, whatever was predicted there.
    # class 1: truth {01,02}, pred {01,11} -> 1/3; class 2: truth {03,10,11},
    # pred {02,03,10} -> 2/4; class 3: truth {12}, pred {12} -> 1.
    iou = semantic_iou(truth, pred, labels=[1, 2, 3, 4])
    assert iou[1] == pytest.approx(1 / 3)
    assert iou[2] == pytest.approx(0.5)
    assert iou[3] == 1.0
    assert math.isnan(iou[4])
    assert semantic_iou(truth, pred).keys() == {1, 2, 3}


def test_semantic_iou_without_ignore_and_shape_check():
    truth = np.array([[0, 0, 1, 1]])
    pred = np.array([[0, 1, 1, 1]])
    assert semantic_iou(truth, pred, ignore=None) == {0: 0.5, 1: 2 / 3}
    with pytest.raises(UserInputError, match="shape"):
        semantic_iou(truth, pred.T)
