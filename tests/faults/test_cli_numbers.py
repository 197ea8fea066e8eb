"""Fault suite, numbers: every numeric option that makes no sense is refused before work starts.

Before: `--seconds nan` trained forever, `--seconds 0/-1` and `--steps 0/-5` exited 0 with an
untrained model, `--threshold nan` gave 0 objects silently.
"""

from __future__ import annotations

import math

import pytest
from cli_fixtures import FAST, assert_clean_failure, make_files

from napari_unet.errors import UserInputError
from napari_unet.functionals.instances import InstanceParams
from napari_unet.functionals.normalisation import Normalisation
from napari_unet.nn.training import TrainConfig

TRAIN_CASES = [
    ("--seconds", "nan"), ("--seconds", "inf"), ("--seconds", "0"), ("--seconds", "-1"),
    ("--steps", "0"), ("--steps", "-5"), ("--steps", "1.5"), ("--steps", "many"),
    ("--patch-size", "0"), ("--patch-size", "-64"), ("--patch-size", "100000"),
    ("--batch-size", "0"), ("--batch-size", "-2"), ("--batch-size", "nan"),
    ("--learning-rate", "nan"), ("--learning-rate", "0"), ("--learning-rate", "-0.1"), ("--learning-rate", "inf"),
    ("--seed", "-1"),
]
PREDICT_CASES = [
    ("--tile-size", "0"), ("--tile-size", "-512"), ("--tile-size", "1000000000"),
    ("--overlap", "-1"),
    ("--threshold", "nan"), ("--threshold", "0"), ("--threshold", "1"), ("--threshold", "-0.5"),
    ("--threshold", "inf"),
    ("--min-size", "-1"), ("--min-size", "nan"),
    ("--seed-spacing", "0"), ("--seed-spacing", "-3"), ("--seed-spacing", "1000000000"),
    ("--seed-prominence", "nan"), ("--seed-prominence", "-1"),
]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return make_files(tmp_path_factory.mktemp("numbers"))


@pytest.mark.parametrize(("option", "value"), TRAIN_CASES)
def test_train_refuses_bad_numbers(files, capsys, option, value):
    d = files
    if option in ("--seconds", "--steps"):  # one budget at a time
        fast = [a for i, a in enumerate(FAST) if a != "--steps" and FAST[i - 1] != "--steps"]
    else:
        fast = FAST
    argv = ["train", "--image", str(d / "img.tif"), "--instances", str(d / "lbl.tif"),
            "--out", str(d / "new.pt"), *fast, option, value]
    err = assert_clean_failure(argv, capsys, d)
    assert option in err


@pytest.mark.parametrize(("option", "value"), PREDICT_CASES)
def test_predict_refuses_bad_numbers(files, capsys, option, value):
    d = files
    argv = ["predict", "--model", str(d / "m.pt"), "--image", str(d / "img.tif"),
            "--instances", str(d / "out.tif"), "--quiet", option, value]
    err = assert_clean_failure(argv, capsys, d)
    assert option in err


@pytest.mark.parametrize(
    "settings",
    [dict(seconds=math.nan), dict(seconds=0.0), dict(seconds=-1.0), dict(seconds=math.inf), dict(steps=0),
     dict(steps=-5), dict(patch_size=0), dict(batch_size=0), dict(learning_rate=math.nan), dict(learning_rate=0.0),
     dict(weight_decay=-1.0), dict(threads=0), dict(validation_fraction=1.0), dict(validation_interval=0.0),
     dict(preset="huge"), dict(norm="bogus"), dict(seed=-1), dict(patch_size=64.5), dict(batch_size=True)],
)
def test_train_config_refuses_what_the_cli_refuses(settings):
    """The dock builds the same TrainConfig, so it gets the same checks."""
    with pytest.raises(UserInputError):
        TrainConfig(**settings)


def test_train_config_accepts_open_budgets_and_whole_floats():
    assert TrainConfig(seconds=None, steps=None).seconds is None  # until stopped (the dock's Stop)
    assert TrainConfig(patch_size=64.0).patch_size == 64  # a whole float from a spin box is fine
    assert isinstance(TrainConfig(patch_size=64.0).patch_size, int)


@pytest.mark.parametrize(
    "settings",
    [dict(threshold=math.nan), dict(threshold=0.0), dict(threshold=1.0), dict(min_size=-1), dict(seed_spacing=0),
     dict(seed_spacing=10**9), dict(seed_prominence=math.nan), dict(seed_prominence=-0.1)],
)
def test_instance_params_refuse_bad_values(settings):
    with pytest.raises(UserInputError):
        InstanceParams(**settings)


@pytest.mark.parametrize(
    "settings", [dict(low_percentile=math.nan), dict(low_percentile=-1), dict(high_percentile=101),
                 dict(low_percentile=50, high_percentile=40)]
)
def test_normalisation_refuses_bad_percentiles(settings):
    with pytest.raises(UserInputError):
        Normalisation(**settings)


def test_tiling_is_checked_before_any_tile_is_read():
    import numpy as np

    from napari_unet.nn.model import ModelConfig
    from napari_unet.nn.segmenter import Segmenter

    seg = Segmenter.create(ModelConfig(depth=2, base_width=4), ["background", "object"])
    image = np.zeros((1, 64, 64), np.float32)
    for bad in (dict(tile_size=0), dict(tile_size=-1), dict(overlap=-1), dict(batch_size=0)):
        with pytest.raises(UserInputError):
            seg.predict(image, **bad)
    assert seg.predict(image, tile_size=32, overlap=64).probabilities.shape == (2, 64, 64)  # overlap clamps
