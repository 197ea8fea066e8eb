"""The kind of mistake behind each unmatched object, on hand-made label images."""

import numpy as np
import pytest

from napari_unet.functionals.error_kinds import ErrorKinds, error_kinds, total_error_kinds
from napari_unet.functionals.metrics import average_precision


def blank() -> np.ndarray:
    return np.zeros((40, 60), dtype=np.int32)


def test_each_kind_of_mistake_is_named():
    truth, pred = blank(), blank()
    truth[2:10, 2:10] = 1; pred[2:10, 2:10] = 7  # matched
    truth[2:10, 20:28] = 2  # missed: nothing predicted there
    truth[15:25, 2:23] = 3; pred[15:25, 2:9], pred[15:25, 9:16], pred[15:25, 16:23] = 8, 9, 10  # cut in three
    truth[15:25, 30:35], truth[15:25, 35:40], truth[15:25, 40:45] = 4, 5, 13; pred[15:25, 30:45] = 14  # three fused
    truth[30:38, 2:20] = 6; pred[30:38, 8:30] = 11  # found, but the outline is off (IoU 0.43)
    pred[30:36, 40:50] = 12  # nothing there in the truth
    kinds = error_kinds(truth, pred)
    assert kinds == ErrorKinds(matched=1, missed=1, split=1, merged=3, misshapen=1, false=1, on_objects=5)
    assert kinds.ap50 == pytest.approx(average_precision([truth], [pred], (0.5,))[0.5])


def test_a_split_into_equal_halves_matches_once_like_the_metric():
    truth, pred = blank(), blank()
    truth[:, 0:20] = 1
    pred[:, 0:10], pred[:, 10:20] = 2, 3  # each half has IoU exactly 0.5
    kinds = error_kinds(truth, pred)
    assert (kinds.matched, kinds.on_objects, kinds.split) == (1, 1, 0)
    assert kinds.ap50 == pytest.approx(average_precision([truth], [pred], (0.5,))[0.5])


def test_counts_add_over_images_and_empty_images_are_perfect():
    truth, pred = blank(), blank()
    truth[5:15, 5:15] = 1
    assert error_kinds(blank(), blank()) == ErrorKinds()
    assert ErrorKinds().ap50 == 1.0
    both = total_error_kinds([(truth, pred), (truth, truth), (blank(), truth)])
    assert both == ErrorKinds(matched=1, missed=1, false=1)
    assert both.as_dict()["missed"] == 1


def test_agrees_with_the_metric_on_random_labels():
    rng = np.random.default_rng(3)
    for _ in range(5):
        truth = blank()
        for i in range(1, 15):
            y, x = rng.integers(0, 34), rng.integers(0, 54)
            truth[y : y + rng.integers(3, 9), x : x + rng.integers(3, 9)] = i
        pred = np.roll(truth, rng.integers(-2, 3), axis=1) * 3
        pred[rng.random(pred.shape) < 0.15] = 0
        kinds = error_kinds(truth, pred)
        n_true = np.unique(truth).size - 1
        assert kinds.matched + kinds.missed + kinds.split + kinds.merged + kinds.misshapen == n_true
        assert kinds.ap50 == pytest.approx(average_precision([truth], [pred], (0.5,))[0.5])


def test_report_names_the_most_common_mistake_and_its_remedy():
    report = ErrorKinds(matched=10, missed=1, merged=4, false=2, on_objects=2).report()
    assert "of 15 true objects: 10 matched, 1 missed, 0 split, 4 merged" in report
    assert "Most common: merged (4)" in report and "seed prominence" in report
    assert "Most common" not in ErrorKinds(matched=3).report()
    assert "(--seed-prominence, --border-evidence)." in report  # the CLI's options for it


def test_summary_is_one_line_of_the_mistakes_that_occur():
    kinds = ErrorKinds(matched=10, missed=1, merged=4, false=2, on_objects=2)
    line = kinds.summary()
    assert line == ("10 matched; 1 missed, 4 merged, 2 false objects, 2 unmatched pieces on objects. Most common, "
                    "merged: a lower seed prominence or border evidence separates touching objects")
    assert kinds.summary(options=True).endswith("(--seed-prominence, --border-evidence)")
    assert ErrorKinds(matched=3).summary() == "all 3 objects matched"
    assert ErrorKinds(matched=3, missed=2, split=2).most_common() == "missed"  # a tie goes to the earlier kind
