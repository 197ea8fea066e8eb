import numpy as np
import pytest
from synthetic import blobs

from napari_unet.errors import UserInputError
from napari_unet.functionals.corrections import accept_region
from napari_unet.functionals.data import (
    IGNORE,
    PatchSampler,
    TrainingImage,
    check_training_set,
    prepare,
)
from napari_unet.functionals.normalisation import Normalisation
from napari_unet.functionals.targets import boundary_target, distance_target


def test_touching_objects_get_separate_distance_peaks():
    labels = np.zeros((20, 40), np.int32)
    labels[5:15, 5:20] = 1
    labels[5:15, 20:35] = 2
    d = distance_target(labels)
    assert d.max() == pytest.approx(1.0)
    assert d[10, 12] == pytest.approx(1.0, abs=0.2) and d[10, 27] == pytest.approx(1.0, abs=0.2)
    assert d[10, 19] == 0 and d[10, 20] == 0  # shared border
    b = boundary_target(labels)
    assert b[10, 19] == 1 and b[10, 20] == 1 and b[10, 12] == 0 and b[0, 0] == 0


def test_checks_give_clear_messages():
    image = np.zeros((1, 10, 10), np.float32)
    with pytest.raises(UserInputError, match="no annotated pixel"):
        check_training_set([TrainingImage.from_scribbles(image, np.zeros((10, 10), np.uint8))])
    with pytest.raises(UserInputError, match="only one class"):
        check_training_set([TrainingImage.from_scribbles(image, np.ones((10, 10), np.uint8))])
    with pytest.raises(UserInputError, match="same height and width"):
        check_training_set([TrainingImage.from_scribbles(image, np.ones((10, 12), np.uint8))])
    with pytest.raises(UserInputError, match="no training images"):
        check_training_set([])
    scribbles = np.zeros((10, 10), np.uint8)
    scribbles[0, 0], scribbles[5, 5], scribbles[6, 6] = 1, 2, 3
    assert check_training_set([TrainingImage.from_scribbles(image, scribbles)]) == 3


def test_prepare_crops_to_annotations_and_ignores_unannotated():
    image = np.random.default_rng(0).normal(size=(1, 200, 200)).astype(np.float32)
    scribbles = np.zeros((200, 200), np.uint8)
    scribbles[100, 100:110] = 1
    scribbles[120, 100:110] = 2
    prepared = prepare(TrainingImage.from_scribbles(image, scribbles), Normalisation(), margin=16)
    assert prepared.semantic.shape == (21 + 32, 10 + 32)
    assert set(np.unique(prepared.semantic)) == {IGNORE, 0, 1}
    assert not prepared.instance_valid.any()


def test_sampler_balances_rare_class_and_augments():
    image, labels = blobs(96, n=10)
    scribbles = np.ones_like(labels, dtype=np.uint8)
    scribbles[labels == 1] = 2  # one small object only: a rare class
    prepared = prepare(TrainingImage.from_scribbles(image[None], scribbles), Normalisation(), margin=32)
    sampler = PatchSampler([prepared], 32, rng=np.random.default_rng(0))
    batch = sampler.sample(64)
    assert batch.image.shape == (64, 1, 32, 32) and batch.semantic.shape == (64, 32, 32)
    rare_share = (batch.semantic == 1).mean()
    assert rare_share > 3 * (scribbles == 2).mean()


def test_small_image_is_padded_with_ignored_targets():
    image = np.ones((1, 10, 12), np.float32)
    scribbles = np.ones((10, 12), np.uint8)
    scribbles[:5] = 2
    prepared = prepare(TrainingImage.from_scribbles(image, scribbles), Normalisation(), margin=8)
    batch = PatchSampler([prepared], 32, rng=np.random.default_rng(1), scale_jitter=0.0).sample(2)
    assert batch.image.shape == (2, 1, 32, 32)
    assert (batch.semantic == IGNORE).sum() == 2 * (32 * 32 - 10 * 12)


def test_accepted_regions_train_instance_heads():
    image = np.zeros((1, 8, 8), np.float32)
    annotations = np.zeros((8, 8), np.uint8)
    annotations[:4] = 1
    annotations[1, 1] = 2
    accepted = np.zeros((8, 8), np.uint32)
    accepted[:4, :4] = 1
    accepted[1:3, 1:3] = 6  # object 5
    item = TrainingImage.from_annotations(image, annotations, accepted)
    assert item.instance_mask.sum() == 16
    assert set(np.unique(item.instances[item.instance_mask])) == {0, 5}


def test_objects_cut_by_an_accepted_region_do_not_train_the_instance_heads():
    """An object that reaches outside the accepted region has a false straight border at its edge."""
    image = np.zeros((1, 12, 12), np.float32)
    truth = np.zeros((12, 12), np.int64)
    truth[2:5, 2:5] = 1  # inside the region
    truth[5:10, 6:11] = 2  # cut by the region's right edge (column 8)
    truth[9:12, 0:3] = 3  # cut only by the image's edge: its outline there is the image's
    mask = np.zeros((12, 12), bool)
    mask[:, :8] = True
    accepted, annotations = accept_region(None, np.zeros((12, 12), np.uint8),
                                          np.where(truth > 0, 2, 1).astype(np.uint8), truth, mask)
    item = TrainingImage.from_annotations(image, annotations, accepted)
    assert set(np.unique(item.instances[item.instance_mask])) == {0, 1, 3}
    assert not item.instance_mask[truth == 2].any() and (item.annotations[5:10, 6:8] == 2).all()
    assert item.object_diameter() == pytest.approx(np.sqrt(4 * 9 / np.pi))
    prepared = prepare(item, Normalisation(), margin=0)
    assert not prepared.instance_valid[5:10, 6:8].any() and prepared.instance_valid[2:5, 2:5].all()


def test_annotated_planes_of_stacks_rgb_and_channels():
    from napari_unet.functionals.data import annotated_planes

    annotations = np.zeros((3, 8, 9), np.uint8)
    annotations[1, 0, 0], annotations[1, 1, 1] = 1, 2
    annotations[2, 2, 2] = 1
    stack = annotated_planes(np.zeros((3, 8, 9)), annotations, name="s")
    assert [item.image.shape for item in stack] == [(1, 8, 9), (1, 8, 9)]
    assert stack[0].name == "s plane 1" and (stack[0].source, stack[0].plane) == ("s", (1,))
    rgb = annotated_planes(np.zeros((8, 9, 4)), annotations[1], rgb=True)
    assert rgb[0].image.shape == (3, 8, 9)
    channels = annotated_planes(np.zeros((3, 2, 8, 9)), annotations, channel_axis=1)
    assert channels[0].image.shape == (2, 8, 9)
    with pytest.raises(UserInputError, match="do not match"):
        annotated_planes(np.zeros((8, 8)), annotations[1])


def test_label_counts_match_a_full_count_and_read_only_the_painted_box():
    from napari_unet.functionals.data import label_counts

    plane = np.zeros((300, 400), np.uint8)
    assert label_counts(plane).tolist() == [0]
    plane[100:110, 200:230] = 1
    plane[150, 50] = 3
    counts = label_counts(plane)
    full = np.bincount(plane.ravel())
    assert counts[1:].tolist() == full[1:].tolist()  # every painted value counted exactly
    assert counts[0] < full[0]  # background only inside the painted box
