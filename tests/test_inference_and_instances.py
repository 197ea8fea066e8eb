import numpy as np
import pytest
import torch

from napari_unet.functionals.instances import InstanceParams, instances_from_prediction
from napari_unet.functionals.normalisation import Normalisation
from napari_unet.functionals.targets import ideal_prediction
from napari_unet.nn.inference import (
    Prediction,
    Stopped,
    TileGrid,
    blend_window,
    predict_tiled,
)
from napari_unet.nn.model import ModelConfig, UNet


@pytest.mark.parametrize("size,tile,overlap", [(100, 32, 8), (64, 64, 8), (20, 32, 8), (97, 40, 16)])
def test_tile_grid_covers_image(size, tile, overlap):
    starts = TileGrid(size, min(tile, size), overlap).starts()
    covered = np.zeros(size, bool)
    for s in starts:
        covered[s : s + min(tile, size)] = True
    assert covered.all() and starts[0] == 0 and starts[-1] + min(tile, size) == size


def test_blend_window_is_positive_and_flat_inside():
    w = blend_window(32, 8)
    assert w.min() > 0 and np.all(w[8:24] == 1) and w[0] < 0.1


def _net():
    torch.manual_seed(0)
    return UNet(ModelConfig(depth=2, base_width=4, norm="none")).eval()


def test_tiled_matches_whole_image_and_has_no_seams():
    net = _net()
    image = np.random.default_rng(0).normal(size=(1, 96, 80)).astype(np.float32)
    stats = Normalisation().statistics(image)
    whole = predict_tiled(net, image, stats, device=torch.device("cpu"), tile_size=256)
    tiled = predict_tiled(net, image, stats, device=torch.device("cpu"), tile_size=48, overlap=16, batch_size=3)
    # A fully convolutional net differs only near tile borders (padding); blending hides it.
    err = np.abs(whole.probabilities - tiled.probabilities)
    assert err.mean() < 0.01
    assert tiled.probabilities.shape == (2, 96, 80)
    assert np.allclose(tiled.probabilities.sum(axis=0), 1, atol=1e-5)
    assert 0 <= tiled.distance.min() and tiled.distance.max() <= 1


def test_stop_flag_interrupts():
    image = np.zeros((1, 64, 64), np.float32)
    with pytest.raises(Stopped):
        predict_tiled(_net(), image, np.array([[0, 1]], np.float32), device=torch.device("cpu"),
                      tile_size=32, should_stop=lambda: True)


def test_touching_objects_are_split_by_the_distance_head():
    labels = np.zeros((30, 60), np.int32)
    labels[5:25, 5:30] = 1
    labels[5:25, 30:55] = 2
    out = instances_from_prediction(ideal_prediction(labels), InstanceParams(min_size=5))
    assert out.max() == 2
    assert out.dtype == np.uint32
    assert len(np.unique(out[labels == 1])) == 1 and len(np.unique(out[labels == 2])) == 1


def test_fallback_without_instance_heads_and_min_size():
    labels = np.zeros((40, 40), np.int32)
    labels[5:15, 5:15] = 1
    labels[30:32, 30:32] = 2  # 4 pixels
    pred = ideal_prediction(labels)
    kept = instances_from_prediction(pred, InstanceParams(min_size=10), use_instance_heads=False)
    assert kept.max() == 1
    both = instances_from_prediction(pred, InstanceParams(min_size=1), use_instance_heads=False)
    assert both.max() == 2


def test_threshold_changes_result():
    labels = np.zeros((20, 20), np.int32)
    labels[5:15, 5:15] = 1
    pred = ideal_prediction(labels)
    pred.probabilities[1] *= 0.6
    pred.probabilities[0] = 1 - pred.probabilities[1]
    assert instances_from_prediction(pred, InstanceParams(threshold=0.5, min_confidence=0.0)).max() == 1
    assert instances_from_prediction(pred, InstanceParams(threshold=0.7, min_confidence=0.0)).max() == 0


def test_min_confidence_drops_objects_the_network_is_much_less_sure_of_than_of_the_others():
    """Two objects above the threshold: one the network is sure of, one faint (a dim nucleus the user leaves out)."""
    labels = np.zeros((30, 60), np.int32)
    labels[5:25, 5:25] = 1
    labels[5:25, 35:55] = 2
    pred = ideal_prediction(labels)

    def objects(level: float | None = None) -> np.ndarray:
        pred.probabilities[0] = 1 - pred.probabilities[1]
        params = InstanceParams(min_size=5) if level is None else InstanceParams(min_size=5, min_confidence=level)
        return instances_from_prediction(pred, params)

    pred.probabilities[1][labels == 1] = 0.95
    pred.probabilities[1][labels == 2] = 0.65
    assert objects(0.0).max() == 2  # 0: every object stays
    kept = objects()  # the default, 0.85 of the surest objects' 0.92
    assert kept.max() == 1 and np.all(kept[labels == 1] == 1) and not kept[labels == 2].any()
    # the mean decides, not the faintest pixel: an object sure at its core but faint at its rim stays
    pred.probabilities[1][7:23, 37:53] = 0.99
    assert objects().max() == 2
    # relative to the image's surest objects: a model unsure of everything yet (early in training) keeps them all
    pred.probabilities[1][labels > 0] = 0.6
    assert objects().max() == 2 and objects(0.99).max() == 2
    with pytest.raises(Exception, match="min confidence"):
        InstanceParams(min_confidence=1.5)


def _dumbbell_prediction() -> tuple[Prediction, np.ndarray]:
    """One object (two lobes joined by a wide neck: two distance peaks) and, beside it, two touching
    squares; the boundary map marks every object's edge, and so the squares' shared border, not the neck."""
    labels = np.zeros((40, 100), np.int32)
    yy, xx = np.ogrid[:40, :100]
    labels[((yy - 20) ** 2 + (xx - 12) ** 2 <= 81) | ((yy - 20) ** 2 + (xx - 34) ** 2 <= 81)] = 1
    labels[14:27, 18:29] = 1  # the neck
    labels[8:32, 50:70] = 2
    labels[8:32, 70:90] = 3
    pred = ideal_prediction(labels)
    lobes = np.zeros_like(labels)  # the distance head sees two blobs in object 1
    lobes[(yy - 20) ** 2 + (xx - 12) ** 2 <= 81] = 1
    lobes[(yy - 20) ** 2 + (xx - 34) ** 2 <= 81] = 2
    from napari_unet.functionals.targets import distance_target

    pred.distance[labels == 1] = distance_target(lobes)[labels == 1]
    return pred, labels


def test_a_split_the_boundary_head_does_not_back_is_undone():
    pred, labels = _dumbbell_prediction()
    kept = instances_from_prediction(pred, InstanceParams(min_size=5, border_evidence=0.0))
    assert len(np.unique(kept[labels == 1])) == 2  # the watershed alone cuts the dumbbell at its neck
    merged = instances_from_prediction(pred, InstanceParams(min_size=5))
    assert len(np.unique(merged[labels == 1])) == 1
    # the touching squares have a border in the boundary map: still two objects, ids dense
    assert len(np.unique(merged[labels == 2])) == 1 and len(np.unique(merged[labels == 3])) == 1
    assert merged[labels == 2][0] != merged[labels == 3][0]
    assert sorted(np.unique(merged)) == [0, 1, 2, 3]


def test_merge_weak_borders_works_in_any_dimension():
    from napari_unet.functionals.instances import merge_weak_borders

    labels = np.zeros((4, 6, 6), np.int32)
    labels[:2, 1:5, 1:5] = 1
    labels[2:, 1:5, 1:5] = 2  # one object cut between planes 1 and 2
    boundary = np.zeros(labels.shape, np.float32)
    merged, n = merge_weak_borders(labels, 2, boundary, 0.5)
    assert n == 1 and set(np.unique(merged)) == {0, 1}
    boundary[1:3] = 0.9  # a border there: kept apart
    assert merge_weak_borders(labels, 2, boundary, 0.5)[1] == 2
