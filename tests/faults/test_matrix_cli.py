"""The fault matrix's image rows on the command line (docs/faults.md): every odd image either works
or ends with exit 2 and one line saying what is wrong, for predict, predict --out-zarr and train.
"""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from cli_fixtures import FAST, assert_clean_failure, make_files

from napari_unet.cli import main

RNG = np.random.default_rng(0)
NOISE = RNG.random((64, 64)).astype(np.float32)

# name: (array, what predict says: None = it works, else a piece of the one-line error)
IMAGES = {
    "4-D": (RNG.random((2, 3, 16, 16)).astype(np.float32), "only one stack axis"),
    "5-D": (RNG.random((2, 2, 3, 16, 16)).astype(np.float32), "only one stack axis"),
    "NaN": (np.where(NOISE > 0.9, np.nan, NOISE).astype(np.float32), "NaN or infinite"),
    "Inf": (np.where(NOISE > 0.9, np.inf, NOISE).astype(np.float32), "NaN or infinite"),
    "RGB into a 1-channel model": ((NOISE[..., None] * [255, 128, 64]).astype(np.uint8), "expects 1 input channel"),
    "all zero": (np.zeros((64, 64), np.float32), None),
    "1x1": (np.ones((1, 1), np.float32), None),
    "5x5": (NOISE[:5, :5], None),
    "float16": (NOISE.astype(np.float16), None),
    "bool": (NOISE > 0.5, None),
    "int64": ((NOISE * 1000).astype(np.int64), None),
    "one-frame series": (NOISE[None], None),
}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = make_files(tmp_path_factory.mktemp("matrix"))
    for name, (array, _) in IMAGES.items():
        np.save(folder / f"{name}.npy", array)
    np.save(folder / "complex.npy", (NOISE + 1j).astype(np.complex64))
    return folder


def _cases():
    return [*IMAGES.items(), ("complex", (None, "complex"))]


@pytest.mark.parametrize(("name", "case"), _cases(), ids=[name for name, _ in _cases()])
def test_predict(files, capsys, tmp_path, name, case):
    argv = ["predict", "--model", str(files / "m.pt"), "--image", str(files / f"{name}.npy"), "--instances",
            str(tmp_path / "out.tif"), "--flips", "1", "--tile-size", "64", "--overlap", "8", "--quiet"]
    expected = case[1]
    if expected is None:
        assert main(argv) == 0, capsys.readouterr().err
        shape = np.load(files / f"{name}.npy").shape
        assert tifffile.imread(tmp_path / "out.tif").shape == (shape[:3] if name == "one-frame series" else shape[:2])
    else:
        assert expected in assert_clean_failure(argv, capsys, files)


@pytest.mark.parametrize("name", ["4-D", "NaN", "Inf", "complex"])
def test_predict_out_zarr_refuses_what_predict_refuses(files, capsys, name):
    err = assert_clean_failure(["predict", "--model", str(files / "m.pt"), "--image", str(files / f"{name}.npy"),
                                "--out-zarr", str(files / "out.zarr"), "--workers", "1", "--quiet"], capsys, files)
    assert err.startswith("napari-unet: error: ")


@pytest.mark.parametrize("name", ["NaN", "Inf", "5-D", "complex", "1x1"])
def test_train_refuses_odd_images_in_one_line(files, capsys, name):
    """1x1: its 64x64 labels do not fit it; the others as predict says."""
    assert_clean_failure(["train", "--image", str(files / f"{name}.npy"), "--scribbles", str(files / "scribbles.npy"),
                          "--out", str(files / "new.pt"), *FAST], capsys, files)


@pytest.mark.parametrize("name", ["all zero", "float16", "bool", "int64"])
def test_train_takes_odd_but_valid_images(files, capsys, tmp_path, name):
    status = main(["train", "--image", str(files / f"{name}.npy"), "--scribbles", str(files / "scribbles.npy"),
                   "--out", str(tmp_path / "new.pt"), *FAST])
    assert status == 0, capsys.readouterr().err
    assert (tmp_path / "new.pt").is_file()
