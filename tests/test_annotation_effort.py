"""The simulated annotator of benchmarks/annotation_effort.py: effort counts on hand-made cases, a tiny run."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import annotation_effort as ae  # noqa: E402
import effort_samples  # noqa: E402
from synthetic import blobs  # noqa: E402

from napari_unet.nn.training import TrainConfig  # noqa: E402


def test_strokes_are_runs_of_new_paint_per_class():
    before = np.zeros((20, 20), np.uint8)
    before[0, :5] = 2  # painted earlier: not counted again
    after = before.copy()
    after[2, 2:8] = 2  # one stroke of 6 px
    after[10:12, 1:4] = 2  # another, 6 px
    after[3, 2:8] = 1  # a background stroke touching the first: another class, another stroke
    after[0, 0:5] = 1  # painting over old paint is not new effort
    effort = ae.count_strokes(before, after)
    assert (effort.strokes, effort.pixels, effort.objects) == (3, 18, 0)


def test_drawn_strokes_stay_in_the_region_and_on_the_truth():
    image, truth = blobs(96, n=12, seed=3)
    annotations = np.zeros(truth.shape, np.uint8)
    region = (slice(0, 64), slice(0, 64))
    effort = ae.draw_strokes(annotations, truth, region, np.random.default_rng(0))
    assert effort.strokes >= 2 and effort.pixels == np.count_nonzero(annotations)
    assert not annotations[64:].any() and not annotations[:, 64:].any()
    assert np.all(truth[annotations == ae.OBJECT] > 0) and np.all(truth[annotations == ae.BACKGROUND] == 0)


def test_correcting_counts_wrong_objects_and_accepts_the_truth():
    truth = np.zeros((40, 40), np.int32)
    truth[2:8, 2:8] = 1
    truth[2:8, 20:26] = 2
    truth[2:8, 30:36] = 3
    truth[30:36, 30:36] = 9  # outside the region: untouched
    pred = np.zeros_like(truth)
    pred[2:8, 2:8] = 5  # right
    pred[1:9, 19:37] = 6  # objects 2 and 3 merged: no match for either (IoU < 0.5)
    pred[15:18, 5:8] = 7  # a false object
    region = (slice(0, 20), slice(0, 40))
    annotations = np.zeros(truth.shape, np.uint8)
    annotations, accepted, effort = ae.correct_and_accept(annotations, None, truth, pred, region)
    assert effort.objects == 4  # delete the merged and the false object, draw objects 2 and 3
    assert np.array_equal(accepted[region] - 1, truth[region])  # accepted ids are truth + 1
    assert not accepted[20:].any() and not annotations[20:].any()
    assert np.array_equal(annotations[region] == ae.OBJECT, truth[region] > 0)


def _sample(name: str, size: int, n: int, seed: int) -> ae.Sample:
    image, truth = blobs(size, n=n, seed=seed)
    return ae.Sample(name, image[None], truth)


@pytest.mark.parametrize("picker", ae.PICKERS)
def test_a_tiny_simulation_runs_and_never_picks_a_region_twice(picker):
    pool = [_sample(f"p{i}", 128, 14, i) for i in range(2)]
    val = [_sample("v", 96, 8, 9)]
    config = TrainConfig(steps=2, patch_size=64, batch_size=2, seed=0, threads=1)
    records = ae.simulate(pool, val, picker, rounds=3, config=config, log=lambda _: None)
    assert [r["round"] for r in records] == [0, 1, 2]
    strokes = [r["strokes"] for r in records]
    assert strokes[0] > 0 and strokes == sorted(strokes)
    assert all(0.0 <= r["ap50"] <= 1.0 for r in records)
    picked = [tuple(r["picked"]) for r in records if "picked" in r]
    assert len(picked) == 2 and len(set(picked)) == 2
    correct = ae.simulate(pool, val, picker, mode="correct", rounds=2, config=config, log=lambda _: None)
    assert correct[-1]["objects"] >= correct[0]["objects"] == 0


def test_summary_gives_the_strokes_each_picker_needed_and_the_ratio():
    def rows(picker, aps, strokes):
        return [{"picker": picker, "mode": "strokes", "round": i, "ap50": a, "strokes": s, "compute_min": i * 1.0}
                for i, (a, s) in enumerate(zip(aps, strokes))]

    records = (rows("random", [0.5, 0.7, 0.81], [8, 20, 40]) + rows("uncertainty", [0.5, 0.82, 0.85], [8, 14, 19])
               + rows("oracle", [0.5, 0.6], [8, 12]))
    assert ae.effort_to_reach(records[:3], 0.8) == 40 and ae.effort_to_reach(records[-2:], 0.8) is None
    text = ae.summary(records, target=0.8)
    assert "| random | 0.50 (8) | 0.70 (20) | 0.81 (40) | 40 |" in text
    assert "| oracle | 0.50 (8) | 0.60 (12) | - | not reached |" in text
    assert "uncertainty / random: 0.35" in text  # 14 / 40


def test_set_overrides_become_train_config_fields():
    config = TrainConfig(**ae.overrides(["learning_rate=3e-4", "object_diameter=12.3"]))
    assert config.learning_rate == 3e-4 and config.object_diameter == 12.3
    with pytest.raises(SystemExit, match="KEY=VALUE"):
        ae.overrides(["learning_rate"])


@pytest.mark.skipif(not (effort_samples.shared_data("dsb2018-stage1-train") / "index.csv").is_file(),
                    reason="needs shared/data/dsb2018-stage1-train")
def test_min_area_and_shape_draw_only_images_with_objects_that_large_or_of_that_size():
    from napari_unet.functionals.scale import object_diameter

    large = effort_samples.dsb_samples("val", 3, seed=0, min_area=700)
    assert len(large) == 3
    assert all(object_diameter(s.truth) >= 28 for s in large)  # median area 700 px: about 30 px across
    assert {s.name for s in large} != {s.name for s in effort_samples.dsb_samples("val", 3, seed=0)}
    assert all(s.truth.shape == (360, 360) for s in effort_samples.dsb_samples("train", 3, seed=0, shape="360x360"))
