"""Uncertainty map and the ranking behind "Suggest next" (core, no viewer)."""

from __future__ import annotations

import numpy as np

from napari_unet.functionals.instances import InstanceParams
from napari_unet.functionals.prediction import Prediction
from napari_unet.functionals.suggestions import (
    SuggestionWalk,
    rank_regions,
    region_size,
)
from napari_unet.functionals.uncertainty import (
    class_entropy,
    split_instability,
    uncertainty_map,
    unstable_objects,
)


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


def _disc(shape: tuple[int, int], centre: tuple[int, int], radius: float) -> np.ndarray:
    yy, xx = np.ogrid[: shape[0], : shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2


def test_unstable_objects_are_those_without_a_match_in_the_other_split():
    first = np.zeros((20, 20), np.uint32)
    first[2:8, 2:8] = 1  # the same in both: stable
    first[10:18, 2:18] = 2  # one object here ...
    second = np.zeros_like(first)
    second[2:8, 2:8] = 7
    second[10:18, 2:7], second[10:18, 7:12], second[10:18, 12:18] = 8, 9, 10  # ... three there: all unstable
    unstable = unstable_objects(first, second)
    assert not unstable[2:8, 2:8].any()
    assert unstable[10:18, 2:18].all() and unstable.sum() == 8 * 16
    assert not unstable_objects(first, first).any()
    assert not unstable_objects(np.zeros_like(first), np.zeros_like(first)).any()


def test_combined_map_ranks_an_unstable_object_above_a_wide_band_of_stable_doubt():
    """Entropy alone prefers a region with a wide ring of doubt around a sure object; the split
    instability marks the object whose extent depends on the threshold (a sure core in a halo
    at 0.5: one size at 0.4, another at 0.6), whose outline a user would have to fix, and the
    combined map ranks that region first."""
    shape = (128, 256)
    p = np.full(shape, 0.001, np.float32)
    p[_disc(shape, (64, 64), 18)] = 0.3  # left: a wide ring of doubt, never foreground at 0.4-0.6 ...
    p[_disc(shape, (64, 64), 12)] = 0.999  # ... around a sure object
    p[_disc(shape, (64, 192), 14)] = 0.5  # right: a halo, foreground at 0.4, not at 0.6 ...
    p[_disc(shape, (64, 192), 8)] = 0.999  # ... around a sure core
    prediction = _prediction(p)
    unstable = split_instability(prediction, InstanceParams(min_size=5), use_instance_heads=False)
    assert unstable[64, 192] and not unstable[64, 64]
    assert not unstable[:, :128].any()
    entropy_only = rank_regions(uncertainty_map(prediction), size=128)
    combined_map = uncertainty_map(prediction, unstable)
    combined = rank_regions(combined_map, size=128)
    assert entropy_only[0].left == 0 and combined[0].left == 128
    assert np.all(combined_map[unstable] == 255)  # an unstable object reads as unsure as can be
    assert np.array_equal(combined_map[~unstable], uncertainty_map(prediction)[~unstable])  # the rest: entropy


def test_split_instability_on_changing_components_equals_the_full_two_pass_comparison():
    """Restricting the two instance passes to the components that touch the threshold band
    changes nothing: compare with splitting the whole plane at both thresholds, every object kept."""
    from dataclasses import replace

    from napari_unet.functionals.instances import instances_from_prediction

    rng = np.random.default_rng(0)
    shape = (96, 96)
    p = np.full(shape, 0.01, np.float32)
    for k in range(12):
        centre = tuple(int(v) for v in rng.integers(10, 86, 2))
        p[_disc(shape, centre, int(rng.integers(4, 9)))] = rng.choice([0.45, 0.55, 0.7, 0.99])
    prediction = _prediction(p)
    params = InstanceParams(min_size=5)
    full = unstable_objects(*(instances_from_prediction(prediction, replace(params, threshold=t, min_confidence=0.0),
                                                        use_instance_heads=False) for t in (0.4, 0.6)))
    fast = split_instability(prediction, params, use_instance_heads=False)
    assert full.any() and np.array_equal(fast, full)
