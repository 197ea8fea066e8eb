"""benchmarks/isbi_em.py's seeds: parsing, the mean [range] summary and merging earlier results files."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import isbi_em  # noqa: E402

TUNED = "napari-unet fast, 1347 steps"


def _rows(seed: int, tuned: float, untuned: float) -> list[dict]:
    return [{"method": TUNED, "membrane_iou": 0.67, "ap50": tuned, "seed": seed},
            {"method": isbi_em.UNTUNED, "membrane_iou": 0.67, "ap50": untuned, "seed": seed}]


def test_seeds_workers_and_threads_parse_and_default_to_the_cli_seed():
    args = isbi_em.parse_args(["--steps", "1347", "--seeds", "0", "1", "2", "--workers", "2", "--threads", "1"])
    assert (args.seeds, args.workers, args.threads, args.steps) == ([0, 1, 2], 2, 1, 1347)
    assert isbi_em.parse_args([]).seeds == [isbi_em.CLI_DEFAULT_SEED]


def test_summary_is_the_mean_and_range_over_seeds_per_method():
    baseline = {"method": isbi_em.BASELINE, "membrane_iou": 0.411, "ap50": 0.167}
    rows = [baseline, *_rows(0, 0.73, 0.68), *_rows(1, 0.70, 0.66), *_rows(2, 0.76, 0.69)]
    summary = {entry["method"]: entry for entry in isbi_em.summarise(rows)}
    assert set(summary) == {TUNED, isbi_em.UNTUNED}  # the baseline has no seeds: no summary
    assert summary[TUNED]["seeds"] == [0, 1, 2]
    assert np.isclose(summary[TUNED]["ap50"], 0.73) and summary[TUNED]["ap50_range"] == [0.70, 0.76]
    assert np.isclose(summary[isbi_em.UNTUNED]["ap50"], 0.677) and summary[isbi_em.UNTUNED]["ap50_range"] == [0.66, 0.69]
    table = isbi_em.table(rows, isbi_em.summarise(rows))
    assert f"| {TUNED}, seed 1 | 0.670 | 0.700 |" in table
    assert f"| {TUNED}, mean of 3 seeds [range] | 0.670 [0.670-0.670] | 0.730 [0.700-0.760] |" in table


def test_one_seed_gives_no_summary_row():
    assert isbi_em.summarise(_rows(0, 0.73, 0.68)) == []


def test_merge_takes_older_seedless_files_as_seed_0_and_each_row_once():
    baseline = {"method": isbi_em.BASELINE, "membrane_iou": 0.411, "ap50": 0.167}
    older = {"rows": [baseline, *[{k: v for k, v in row.items() if k != "seed"} for row in _rows(0, 0.73, 0.68)]],
             "training_output": "saved model.pt (1347 steps)"}
    newer = {"rows": [baseline, *_rows(1, 0.70, 0.66), *_rows(2, 0.76, 0.69)],
             "training_output": {"1": "seed 1 output", "2": "seed 2 output"}}
    rows, trained = isbi_em.merge_results([older, newer, newer])
    assert [row["method"] for row in rows].count(isbi_em.BASELINE) == 1 and "seed" not in rows[0]
    assert sorted((row["method"], row["seed"]) for row in rows[1:]) == sorted(
        (method, seed) for seed in (0, 1, 2) for method in (TUNED, isbi_em.UNTUNED))
    assert trained == {"0": "saved model.pt (1347 steps)", "1": "seed 1 output", "2": "seed 2 output"}


@pytest.mark.slow
@pytest.mark.skipif(not (isbi_em.DATA / "0_image.png").is_file(), reason="needs shared/data/isbi2012-membranes")
def test_one_seed_trains_and_scores_its_tuned_and_untuned_rows_and_a_kept_model_is_reused(monkeypatch, tmp_path):
    monkeypatch.setattr(isbi_em, "TRAIN_IDS", range(1))  # a tiny run: one section, two steps, one scored
    args = isbi_em.parse_args(["--steps", "2", "--seeds", "3", "--keep-models", str(tmp_path)])
    rows, trained = isbi_em.run_seed(args, 3, [isbi_em.load(10)])
    assert [(row["method"], row["seed"]) for row in rows] == [("napari-unet fast, 2 steps", 3), (isbi_em.UNTUNED, 3)]
    assert all(0 <= row["ap50"] <= 1 and 0 < row["membrane_iou"] <= 1 for row in rows)
    assert "2 steps" in trained
    kept = tmp_path / "isbi_em_fast_2steps_seed3.pt"
    assert kept.is_file()
    again, trained = isbi_em.run_seed(args, 3, [isbi_em.load(10)])
    assert trained == f"reused {kept}" and again == rows  # the same model, scored the same
