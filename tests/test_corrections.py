"""Correction helpers and region acceptance, on small hand-built label images."""

from __future__ import annotations

import numpy as np
import pytest

from napari_unet.conventions import ACCEPTED_BACKGROUND, BACKGROUND, FIRST_CLASS
from napari_unet.errors import UserInputError
from napari_unet.functionals.corrections import (
    accept_region,
    clear_accepted,
    keep_accepted,
    keep_accepted_classes,
    merge_objects,
    object_at,
    region_mask,
    relabel_sequential,
    remove_small_objects,
    split_object_by_line,
    split_object_by_seeds,
)
from napari_unet.functionals.data import TrainingImage


def _frozen(*arrays):
    """Inputs made read-only, so any in-place change raises."""
    for a in arrays:
        a.flags.writeable = False
    return arrays


def _blocks() -> np.ndarray:
    labels = np.zeros((6, 8), dtype=np.uint16)
    labels[0:2, 0:2] = 1
    labels[0:2, 4:6] = 3
    labels[4:6, 0:3] = 5
    labels[4:6, 6:8] = 7
    return labels


def _dumbbell() -> np.ndarray:
    """Two 7x7 blocks joined by a 3-pixel-high bar, id 4, plus an unrelated object 9."""
    labels = np.zeros((12, 24), dtype=np.int32)
    labels[2:9, 2:9] = 4
    labels[4:7, 9:14] = 4
    labels[2:9, 14:21] = 4
    labels[10:12, 0:2] = 9
    return labels


def _disk(shape, centre, radius):
    y, x = np.ogrid[: shape[0], : shape[1]]
    return (y - centre[0]) ** 2 + (x - centre[1]) ** 2 <= radius**2


def _iou(a, b):
    return (a & b).sum() / (a | b).sum()


# --------------------------------------------------------------------------- merge


def test_merge_three_ids_takes_the_smallest():
    labels = _blocks()
    (labels,) = _frozen(labels)
    out = merge_objects(labels, [7, 3, 5, 42])  # 42 is unknown: ignored
    expected = labels.copy()
    expected[np.isin(labels, [3, 5, 7])] = 3
    np.testing.assert_array_equal(out, expected)
    assert out.dtype == np.uint16


@pytest.mark.parametrize("ids", [[3], [3, 42], [0, 3], []])
def test_merge_needs_two_known_objects(ids):
    with pytest.raises(UserInputError, match="select at least two objects to merge"):
        merge_objects(_blocks(), ids)


# --------------------------------------------------------------------------- split by line


def test_split_dumbbell_by_line_through_the_bar():
    labels = _dumbbell()
    (labels,) = _frozen(labels)
    line = np.array([[0.2, 11.4], [6.0, 11.0], [11.6, 11.3]])  # a bent vertical cut through the bar
    out = split_object_by_line(labels, 4, line)
    assert out.dtype == np.int32
    # Exactly two objects cover the original pixels; nothing else changed.
    np.testing.assert_array_equal(out[labels != 4], labels[labels != 4])
    assert set(np.unique(out[labels == 4])) == {4, 10}  # new id above the max (9)
    # The cut sits in the bar, so each part holds one whole ball.
    assert (out[2:9, 2:9] == out[5, 3]).all() and (out[2:9, 14:21] == out[5, 20]).all()
    assert out[5, 3] != out[5, 20]
    # The largest part keeps the id.
    sizes = {i: int((out == i).sum()) for i in (4, 10)}
    assert sizes[4] >= sizes[10] and sizes[4] + sizes[10] == int((labels == 4).sum())


def test_split_line_may_extend_past_the_image():
    labels = _dumbbell()
    out = split_object_by_line(labels, 4, np.array([[-50.0, 11.0], [60.0, 11.0]]))
    assert set(np.unique(out[labels == 4])) == {4, 10}


def test_split_line_with_leading_plane_coordinate():
    labels = _dumbbell()
    out = split_object_by_line(labels, 4, np.array([[0.0, 0.0, 11.0], [0.0, 11.0, 11.0]]))
    assert set(np.unique(out[labels == 4])) == {4, 10}


@pytest.mark.parametrize(
    "line",
    [
        [[0.0, 22.5], [11.0, 22.5]],  # misses the object
        [[5.0, 3.0], [5.0, 20.0]],  # runs along it without cutting
        [[0.0, 11.0], [5.0, 11.0]],  # stops halfway across the bar
    ],
)
def test_line_that_does_not_cut_raises(line):
    with pytest.raises(UserInputError, match="the line does not cut object 4 in two"):
        split_object_by_line(_dumbbell(), 4, np.array(line))


def test_split_unknown_object_raises():
    with pytest.raises(UserInputError, match="no object 5"):
        split_object_by_line(_dumbbell(), 5, np.array([[0.0, 11.0], [11.0, 11.0]]))


# --------------------------------------------------------------------------- split by seeds


def test_split_two_touching_disks_by_seeds():
    shape = (40, 60)
    a, b = _disk(shape, (20, 18), 10), _disk(shape, (20, 36), 10)
    labels = np.zeros(shape, dtype=np.uint32)
    labels[a | b] = 2
    labels[0:3, 0:3] = 5
    (labels,) = _frozen(labels)
    out = split_object_by_seeds(labels, 2)
    assert out.dtype == np.uint32
    np.testing.assert_array_equal(out[labels != 2], labels[labels != 2])
    assert set(np.unique(out[labels == 2])) == {2, 6}
    parts = [out == 2, out == 6]
    for disk in (a, b):
        assert max(_iou(disk, p) for p in parts) > 0.8


def test_split_by_seeds_without_enough_centres_raises():
    labels = np.zeros((5, 5), dtype=np.uint8)
    labels[2, 2] = 1
    with pytest.raises(UserInputError, match="no 2 separate centres"):
        split_object_by_seeds(labels, 1)
    with pytest.raises(UserInputError):
        split_object_by_seeds(labels, 1, n_parts=1)


# --------------------------------------------------------------------------- small, relabel, pick


def test_remove_small_objects_and_relabel():
    labels = np.zeros((4, 6), dtype=np.uint64)
    labels[0, 0] = 3  # 1 pixel
    labels[2:4, 2:4] = 8  # 4 pixels
    labels[0, 4:6] = 5  # 2 pixels
    (labels,) = _frozen(labels)
    out = remove_small_objects(labels, 2)
    expected = labels.copy()
    expected[0, 0] = 0
    np.testing.assert_array_equal(out, expected)
    assert out.dtype == np.uint64
    np.testing.assert_array_equal(remove_small_objects(labels, 1), labels)

    seq = relabel_sequential(out)
    assert seq.dtype == np.uint64
    expected = np.zeros_like(labels)
    expected[0, 4:6] = 1
    expected[2:4, 2:4] = 2
    np.testing.assert_array_equal(seq, expected)


def test_object_at_rounds_and_clips():
    labels = _blocks()
    assert object_at(labels, (0.4, 4.6)) == 3
    assert object_at(labels, (-10.0, 100.0)) == 0  # clipped to (0, 7)
    assert object_at(labels, (100.0, -3.0)) == 5  # clipped to (5, 0)
    assert object_at(labels, (2.0, 1.2, 4.6)) == 3  # last two coordinates are (row, col)


# --------------------------------------------------------------------------- regions


def test_region_mask_kinds():
    assert region_mask((3, 4), None).all()
    view = region_mask((6, 8), (slice(-3, 2), slice(5, 20)))  # a view panned past the corner
    expected = np.zeros((6, 8), dtype=bool)
    expected[0:2, 5:8] = True
    np.testing.assert_array_equal(view, expected)
    # A napari rectangle partly outside the image, corners in any order.
    rect = np.array([[-2.0, 5.0], [-2.0, 11.0], [3.0, 11.0], [3.0, 5.0]])
    expected = np.zeros((6, 8), dtype=bool)
    expected[0:4, 5:8] = True
    np.testing.assert_array_equal(region_mask((6, 8), rect), expected)
    # Fractional corners: pixels whose centres are inside.
    rect = np.array([[0.6, 0.6], [0.6, 2.4], [2.2, 2.4], [2.2, 0.6]])
    expected = np.zeros((6, 8), dtype=bool)
    expected[1:3, 1:3] = True
    np.testing.assert_array_equal(region_mask((6, 8), rect), expected)


def test_region_outside_the_image_raises():
    with pytest.raises(UserInputError, match="covers no pixel"):
        region_mask((6, 8), np.array([[10.0, 10.0], [10.0, 20.0], [20.0, 20.0], [20.0, 10.0]]))
    with pytest.raises(UserInputError):
        region_mask((6, 8), np.array([[1.0, 2.0]]))


# --------------------------------------------------------------------------- accept


def _prediction():
    """Semantic (1 bg, 2 and 3 classes) and instances for a 6x8 image."""
    semantic = np.ones((6, 8), dtype=np.uint8)
    instances = np.zeros((6, 8), dtype=np.int32)
    semantic[0:3, 0:3] = 2
    instances[0:3, 0:3] = 4
    semantic[3:6, 4:8] = 3
    instances[3:6, 4:8] = 7
    instances[0, 6:8] = 2  # an object the semantic head calls background
    return semantic, instances


def test_accept_region_feeds_training_data():
    semantic, instances = _prediction()
    annotations = np.zeros((6, 8), dtype=np.uint8)
    annotations[5, 0] = 3  # a scribble outside the region stays
    mask = region_mask((6, 8), np.array([[0.0, 0.0], [0.0, 5.0], [5.0, 5.0], [5.0, 0.0]]))  # cols 0..5
    _frozen(semantic, instances, annotations, mask)

    accepted, new_annotations = accept_region(None, annotations, semantic, instances, mask)
    assert accepted.dtype == np.uint32 and new_annotations.dtype == np.uint8

    expected_ann = annotations.copy()
    expected_ann[mask] = semantic[mask]
    np.testing.assert_array_equal(new_annotations, expected_ann)
    expected_acc = np.where(mask, instances + ACCEPTED_BACKGROUND, 0)
    np.testing.assert_array_equal(accepted, expected_acc)
    # Object 7 reaches outside the region: only its pixels inside are accepted.
    assert (accepted[3:6, 4:6] == 8).all() and (accepted[3:6, 6:8] == 0).all()

    item = TrainingImage.from_annotations(np.zeros((1, 6, 8), np.float32), new_annotations, accepted)
    item.check()
    # Object 7's outline beyond the region is unknown: it teaches the classes, not the instance heads.
    known = mask & (instances != 7)
    np.testing.assert_array_equal(item.instance_mask, known)
    np.testing.assert_array_equal(item.instances, np.where(known, instances, 0))
    assert set(np.unique(item.instances[mask])) == {0, 4}
    assert (item.annotations[3:6, 4:6] == semantic[3:6, 4:6]).all()


def test_accept_objects_predicted_as_background_become_first_class():
    semantic, instances = _prediction()
    mask = region_mask((6, 8), None)
    accepted, annotations = accept_region(None, np.zeros((6, 8), np.uint8), semantic, instances, mask)
    assert (annotations[0, 6:8] == FIRST_CLASS).all()
    assert (accepted[0, 6:8] == 2 + ACCEPTED_BACKGROUND).all()
    assert annotations[1, 7] == BACKGROUND and accepted[1, 7] == ACCEPTED_BACKGROUND
    assert (annotations[3:6, 4:8] == 3).all()  # other classes kept


def test_accept_adds_to_existing_and_clear_removes():
    semantic, instances = _prediction()
    annotations = np.zeros((6, 8), dtype=np.uint8)
    left = region_mask((6, 8), (slice(None), slice(0, 4)))
    right = ~left
    accepted, annotations = accept_region(None, annotations, semantic, instances, left)
    accepted16 = accepted.astype(np.uint16)
    _frozen(accepted16)
    both, annotations = accept_region(accepted16, annotations, semantic, instances, right)
    assert both.dtype == np.uint16
    np.testing.assert_array_equal(both, instances + ACCEPTED_BACKGROUND)

    cleared = clear_accepted(both, left)
    assert cleared.dtype == np.uint16
    np.testing.assert_array_equal(cleared, np.where(left, 0, both))
    np.testing.assert_array_equal(both, instances + ACCEPTED_BACKGROUND)  # input untouched
    assert clear_accepted(None, left).shape == (6, 8)


def test_accept_skips_unpredicted_pixels():
    semantic, instances = _prediction()
    semantic[:, 5:] = 0  # not predicted yet...
    instances[:, 5:] = 0
    accepted, annotations = accept_region(None, np.zeros((6, 8), np.uint8), semantic, instances, region_mask((6, 8)))
    assert (accepted[:, 5:] == 0).all() and (annotations[:, 5:] == 0).all()
    assert (accepted[:, :5] > 0).all()
    semantic[:] = 0
    instances[:] = 0
    with pytest.raises(UserInputError, match="predict first"):
        accept_region(None, np.zeros((6, 8), np.uint8), semantic, instances, region_mask((6, 8)))


def test_accept_shape_mismatch_raises():
    semantic, instances = _prediction()
    mask = region_mask((6, 8))
    with pytest.raises(UserInputError, match="differ in shape"):
        accept_region(None, np.zeros((6, 7), np.uint8), semantic, instances, mask)
    with pytest.raises(UserInputError, match="differ in shape"):
        accept_region(np.zeros((5, 8), np.uint32), np.zeros((6, 8), np.uint8), semantic, instances, mask)
    with pytest.raises(UserInputError, match="differ in shape"):
        clear_accepted(np.zeros((5, 8), np.uint32), mask)


# --------------------------------------------------------------------------- a new prediction keeps what was accepted


def _accepted_left_half():
    """A 8x12 prediction and an accepted left half (cols 0..6) holding two objects the user outlined."""
    instances = np.zeros((8, 12), dtype=np.uint16)
    instances[1:4, 1:4] = 1  # wholly inside the region, where the user outlined another object
    instances[1:4, 5:9] = 2  # crosses the region's edge over an accepted object
    instances[5:7, 5:11] = 3  # mostly outside, its inside part over accepted background
    instances[5:7, 0:2] = 4  # inside, where the user said background
    instances[0, 9:12] = 5  # outside, untouched
    accepted = np.zeros((8, 12), dtype=np.uint32)
    accepted[:, :7] = ACCEPTED_BACKGROUND
    accepted[1:4, 5:7] = 7 + ACCEPTED_BACKGROUND
    accepted[0:3, 0:3] = 2 + ACCEPTED_BACKGROUND
    return _frozen(instances, accepted)


def test_new_prediction_keeps_the_accepted_objects():
    instances, accepted = _accepted_left_half()
    out = keep_accepted(instances, accepted)
    assert out.dtype == instances.dtype
    # the user's objects inside, as outlined, with ids above the prediction's
    first, crossing = out[0, 0], out[1, 5]
    assert first > 5 and crossing > 5 and first != crossing
    assert (out[0:3, 0:3] == first).all()
    # the object crossing the edge continues the accepted one outside the region
    assert (out[1:4, 5:9] == crossing).all()
    # accepted background stays background: object 1's pixels outside the user's object, and object 4
    assert (out[3, 1:4] == 0).all() and (out[5:7, 0:2] == 0).all()
    # object 3 keeps its outside part (4 of 6 columns), not its inside one; object 5 is untouched
    assert (out[5:7, 7:11] == 3).all() and (out[5:7, 5:7] == 0).all()
    assert (out[0, 9:12] == 5).all()
    assert set(np.unique(out)) == {0, 3, 5, int(first), int(crossing)}


def test_an_object_mostly_inside_accepted_background_is_dropped():
    instances = np.zeros((4, 10), dtype=np.int32)
    instances[1:3, 2:8] = 9  # 4 of its 6 columns inside the accepted background
    accepted = np.zeros((4, 10), dtype=np.uint32)
    accepted[:, :6] = ACCEPTED_BACKGROUND
    assert not keep_accepted(instances, accepted).any()


def test_accepted_objects_with_one_id_in_two_places_stay_two_objects():
    """Ids of different accepts repeat (each is the instance id of its time): each connected object keeps its own."""
    instances = np.zeros((6, 6), dtype=np.uint8)
    accepted = np.full((6, 6), ACCEPTED_BACKGROUND, dtype=np.uint32)
    accepted[0:2, 0:2] = accepted[4:6, 4:6] = 3 + ACCEPTED_BACKGROUND
    out = keep_accepted(instances, accepted)
    assert out[0, 0] > 0 and out[5, 5] > 0 and out[0, 0] != out[5, 5]


def test_nothing_accepted_returns_the_prediction_itself():
    instances, _ = _accepted_left_half()
    assert keep_accepted(instances, None) is instances
    assert keep_accepted(instances, np.zeros(instances.shape, np.uint32)) is instances
    with pytest.raises(UserInputError, match="differ in shape"):
        keep_accepted(instances, np.zeros((3, 3), np.uint32))


def test_ids_past_the_layer_dtype_raise_a_clear_error():
    instances = np.zeros((2, 4), dtype=np.uint8)
    instances[0, 3] = 255
    accepted = np.zeros((2, 4), dtype=np.uint32)
    accepted[:, :2] = 1 + ACCEPTED_BACKGROUND
    with pytest.raises(UserInputError, match="relabel"):
        keep_accepted(instances, accepted)


def test_keep_accepted_works_on_stacks():
    instances = np.zeros((2, 4, 4), dtype=np.uint16)
    instances[:, 1:3, 1:3] = 1
    accepted = np.zeros((2, 4, 4), dtype=np.uint32)
    accepted[1] = ACCEPTED_BACKGROUND  # the user said plane 1 holds no object
    out = keep_accepted(instances, accepted)
    assert (out[0] == instances[0]).all() and not out[1].any()


def test_new_semantic_prediction_keeps_the_classes_in_accepted_regions():
    semantic = np.full((4, 6), BACKGROUND, dtype=np.uint8)
    annotations = np.zeros((4, 6), dtype=np.uint8)
    annotations[:, :3] = FIRST_CLASS + 1  # the user's classes where they accepted
    annotations[0, 5] = FIRST_CLASS  # a stroke outside any accepted region
    accepted = np.zeros((4, 6), dtype=np.uint32)
    accepted[:, :3] = ACCEPTED_BACKGROUND
    _frozen(semantic, annotations, accepted)
    out = keep_accepted_classes(semantic, annotations, accepted)
    assert (out[:, :3] == FIRST_CLASS + 1).all() and (out[:, 3:] == BACKGROUND).all()  # strokes stay strokes
    assert keep_accepted_classes(semantic, None, accepted) is semantic
    assert keep_accepted_classes(semantic, annotations, None) is semantic
