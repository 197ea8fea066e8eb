"""benchmarks/sample_loop.py: a cached first round serves every setting of the correction round, which
continues from it."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import sample_loop  # noqa: E402
from synthetic import blobs  # noqa: E402

from napari_unet.nn.training import TrainConfig  # noqa: E402


def _scribbled(size: int = 96):
    image, truth = blobs(size, n=12)
    scribbles = np.zeros(truth.shape, np.uint8)
    scribbles[2, 2:40] = 1  # background stroke along the top
    for obj in (1, 2, 3):
        ys, xs = np.nonzero(truth == obj)
        scribbles[ys[ys.size // 2], xs[xs.size // 2]] = 2
    return image[None].astype(np.float32), truth.astype(np.int32), scribbles


def test_cached_first_round_is_reused_and_the_second_round_takes_its_own_settings(tmp_path):
    image, truth, scribbles = _scribbled()
    config = TrainConfig(steps=2, patch_size=32, batch_size=2, seed=0, device="cpu", validation_fraction=0.0)
    cached = tmp_path / "round1.pt"

    def loop(second_steps: int) -> list[dict]:
        second = TrainConfig(steps=second_steps, patch_size=32, batch_size=2, seed=7, device="cpu",
                             validation_fraction=0.0)
        return list(sample_loop._loop(None, image, truth, scribbles, config, "2 steps", second=second,
                                      uncorrected=False, cached=cached, name="blobs"))

    first = loop(1)
    assert cached.exists()
    again = loop(3)
    assert [r["run"] for r in first] == ["scribbles + 2 steps", "+ correct & accept suggested regions (>= 5 objects) + 2 steps"]
    assert first[0]["ap50"] == again[0]["ap50"]  # the same first-round model, read back
    assert (first[1]["steps"], again[1]["steps"]) == (1, 3)
    # The correction round continues from the first round's model (not from the start model) with its own seed
    assert (first[1]["lineage"], again[1]["lineage"]) == ([2, 1], [2, 3])
    assert first[1]["train_seed"] == again[1]["train_seed"] == 7
    # a second round is also scored as the dock paints it, with the accepted objects kept
    assert "ap50_shown" not in first[0] and 0.0 <= first[1]["ap50_shown"] <= 1.0
    # the mistakes on the accepted regions' objects, before and after the correction round, on the same objects
    before, after = first[1]["mistakes_before"], first[1]["mistakes_after"]
    true_objects = ("matched", "missed", "split", "merged", "misshapen")
    assert sum(before[k] for k in true_objects) == sum(after[k] for k in true_objects) > 0


def test_table_counts_correction_rounds_below_their_first_round():
    rows = [{"image": "a", "seed": s, "run": "scribbles + 1 steps", "ap50": ap, "largest_class_fraction": 0.5}
            for s, ap in ((0, 0.8), (1, 0.7))]
    rows += [{"image": "a", "seed": s, "run": "+ correct & accept the suggested region + 1 steps", "ap50": ap,
              "corrected": 2, "largest_class_fraction": 0.5} for s, ap in ((0, 0.75), (1, 0.9))]
    table = sample_loop._table(rows)
    assert "| a | + correct & accept the suggested region + 1 steps | 0.825 [0.750-0.900] | 0.50 | 2 | 1/2 | - |" in table
    assert "mean +0.075, lower in 1 of 2 loops" in table
    assert "before -> after" not in table  # rows from before the mistakes were counted
    kinds = dict.fromkeys(("matched", "missed", "split", "merged", "misshapen", "false", "on_objects"), 0)
    for row, merged in zip(rows[2:], (3, 1)):
        row["mistakes_before"], row["mistakes_after"] = {**kinds, "merged": merged}, {**kinds, "merged": 1}
    assert "split 0 -> 0, merged 4 -> 2, misshapen 0 -> 0" in sample_loop._table(rows)


def test_correction_round_walks_suggested_regions_until_enough_objects_are_corrected():
    """Each region Suggest next shows is corrected and accepted, in order, until >= `objects` are fixed."""
    _, truth, scribbles = _scribbled(256)
    wrong = np.zeros_like(truth)  # a prediction that found no object: every true object is one correction
    uncertainty = np.zeros(truth.shape, np.float32)
    uncertainty[128:, 128:] = 1.0  # the most uncertain quarter is shown first
    annotations, accepted, corrected, regions = sample_loop.correct_suggested(scribbles, truth, wrong, uncertainty, 5)
    counts = [len(np.unique(truth[r.slices])) - 1 for r in regions]
    assert corrected >= 5 and corrected - counts[-1] < 5 and corrected == sum(counts)
    assert regions[0].top >= 128 and regions[0].left >= 128 and len({r.key for r in regions}) == len(regions)
    inside = np.zeros(truth.shape, bool)
    for r in regions:
        inside[r.slices] = True
    assert (accepted[inside] > 0).all() and not (accepted[~inside] > 0).any()
    assert (annotations[inside] == np.where(truth[inside] > 0, 2, 1)).all()


def test_dsb_train_images_load_with_their_scribbles():
    """`--images train:N` finds the DSB2018 images in the shared data folder (it once looked for a removed name)."""
    from common import shared_data
    if not (shared_data("dsb2018-stage1-train") / "index.csv").exists():
        pytest.skip("DSB2018 is not in the shared data folder")
    names = sample_loop._image_names(["train:2"])
    image, truth, scribbles = sample_loop.load(names[0])
    assert len(names) == 2 and image.shape[1:] == truth.shape == scribbles.shape and image.shape[1] >= 512
    assert set(np.unique(scribbles)) == {0, 1, 2} and truth.max() >= 40
