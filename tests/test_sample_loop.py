"""benchmarks/sample_loop.py: a cached first round serves every setting of the correction round."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

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
        second = TrainConfig(steps=second_steps, patch_size=32, batch_size=2, seed=0, device="cpu",
                             validation_fraction=0.0)
        return list(sample_loop._loop(None, image, truth, scribbles, config, "2 steps", second=second,
                                      uncorrected=False, cached=cached, name="blobs"))

    first = loop(1)
    assert cached.exists()
    again = loop(3)
    assert [r["run"] for r in first] == ["scribbles + 2 steps", "+ correct & accept the suggested region + 2 steps"]
    assert first[0]["ap50"] == again[0]["ap50"]  # the same first-round model, read back
    assert (first[1]["steps"], again[1]["steps"]) == (1, 3)


def test_table_counts_correction_rounds_below_their_first_round():
    rows = [{"image": "a", "seed": s, "run": "scribbles + 1 steps", "ap50": ap, "largest_class_fraction": 0.5}
            for s, ap in ((0, 0.8), (1, 0.7))]
    rows += [{"image": "a", "seed": s, "run": "+ correct & accept the suggested region + 1 steps", "ap50": ap,
              "corrected": 2, "largest_class_fraction": 0.5} for s, ap in ((0, 0.75), (1, 0.9))]
    table = sample_loop._table(rows)
    assert "| a | + correct & accept the suggested region + 1 steps | 0.825 [0.750-0.900] | 0.50 | 2 | 1/2 |" in table
    assert "mean +0.075, lower in 1 of 2 loops" in table
