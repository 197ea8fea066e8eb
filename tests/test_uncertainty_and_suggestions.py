"""Uncertainty map and the ranking behind "Suggest next" (core, no viewer)."""

from __future__ import annotations

import numpy as np

from napari_unet.functionals.prediction import Prediction
from napari_unet.functionals.suggestions import (
    SuggestionWalk,
    rank_regions,
    region_size,
)
from napari_unet.functionals.uncertainty import class_entropy, uncertainty_map


def _prediction(p_fg: np.ndarray) -> Prediction:
    probs = np.stack([1 - p_fg, p_fg]).astype(np.float32)
    zeros = np.zeros_like(p_fg, np.float32)
    return Prediction(probabilities=probs, boundary=zeros, distance=zeros)


def test_entropy_is_zero_when_sure_and_one_when_classes_tie():
    p = np.array([[0.0, 1.0, 0.5]], np.float32)
    assert np.allclose(class_entropy(np.stack([1 - p, p])), [[0, 0, 1]], atol=1e-4)
    three = np.full((3, 1, 1), 1 / 3, np.float32)
    assert np.isclose(class_entropy(three)[0, 0], 1.0, atol=1e-4)
    u = uncertainty_map(_prediction(p))
    assert u.dtype == np.uint8 and list(u[0]) == [0, 0, 255]


def test_ranking_prefers_uncertain_regions_and_skips_annotated_ones():
    u = np.zeros((256, 256), np.uint8)
    u[:64, 192:] = 200  # most uncertain: top right
    u[192:, :64] = 100  # next: bottom left
    assert region_size(u.shape) == 64
    ranked = rank_regions(u)
    assert (ranked[0].top, ranked[0].left) == (0, 192) and np.isclose(ranked[0].score, 200 / 255)
    assert (ranked[1].top, ranked[1].left) == (192, 0)
    done = np.zeros(u.shape, bool)
    done[:64, 192:] = True  # the user annotated the top right already
    assert (rank_regions(u, done)[0].top, rank_regions(u, done)[0].left) == (192, 0)
    assert all((r.top, r.left) != (0, 192) for r in rank_regions(u, done))
    assert len(rank_regions(u)) == 16  # a 4 x 4 grid that covers the plane


def test_walk_goes_through_planes_and_images_in_order_of_need_never_twice():
    a = np.zeros((128, 128), np.uint8)
    a[:64, :64] = 250
    b = np.zeros((128, 128), np.uint8)
    b[64:, 64:] = 120
    planes = [("a", (), a, None), ("b", (3,), b, None)]
    walk = SuggestionWalk()
    first, second = walk.next(planes), walk.next(planes)
    assert (first.image, first.top, first.left) == ("a", 0, 0)
    assert (second.image, second.plane, second.top, second.left) == ("b", (3,), 64, 64)
    rest = [walk.next(planes) for _ in range(6)]
    keys = [r.key for r in [first, second, *rest]]
    assert len(set(keys)) == 8  # 2 planes x 4 regions, none twice
    assert walk.next(planes) is None  # every region was suggested
