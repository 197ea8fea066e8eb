"""Inputs that were misnamed faults: a folder where a file was meant, a mistyped path, a one-frame series.

Before: a folder or a mistyped path without extension was reported as "unsupported file type
'<name>'", which sends the user looking for a file format when the path itself is wrong; a time
series of one frame was refused with 2D labels that hold the same pixels.
"""

from __future__ import annotations

import pytest
import tifffile
from cli_fixtures import FAST, assert_clean_failure, make_files

from napari_unet.cli import main
from napari_unet.errors import UserInputError
from napari_unet.io.images import read_image


@pytest.fixture
def files(tmp_path):
    return make_files(tmp_path)


def test_predicting_a_folder_without_out_dir_says_to_give_out_dir(files, capsys):
    (files / "images").mkdir()
    err = assert_clean_failure(["predict", "--model", str(files / "m.pt"), "--image", str(files / "images"),
                                "--instances", str(files / "out.tif"), "--quiet"], capsys, files)
    assert "is a folder: give --out-dir" in err


def test_a_missing_batch_input_without_extension_is_reported_as_not_found(files, capsys):
    (files / "out").mkdir()
    status = main(
        ["predict", "--model", str(files / "m.pt"), "--image", str(files / "img.tif"), "--image",
         str(files / "imges"), "--out-dir", str(files / "out"), "--quiet", "--workers", "1"])
    err = capsys.readouterr().err
    assert status == 2
    assert f"skipped {files / 'imges'}: file not found" in err and "unsupported" not in err


def test_reading_a_folder_or_a_mistyped_path_names_the_real_problem(tmp_path):
    with pytest.raises(UserInputError, match="is a folder, not an image"):
        read_image(tmp_path)
    with pytest.raises(UserInputError, match="^file not found: .*nothing_here$"):
        read_image(tmp_path / "nothing_here")


@pytest.mark.parametrize(("image_shape", "labels_shape"), [((1, 64, 64), (64, 64)), ((64, 64), (1, 64, 64))])
def test_a_one_frame_time_series_trains_with_2d_labels(files, capsys, image_shape, labels_shape):
    """A time series of one frame and labels saved as 2D (or the reverse) hold the same pixels: not a mismatch."""
    image = tifffile.imread(files / "img.tif").reshape(image_shape)
    tifffile.imwrite(files / "one_frame.tif", image)
    tifffile.imwrite(files / "one_frame_labels.tif", tifffile.imread(files / "lbl.tif").reshape(labels_shape))
    status = main(["train", "--image", str(files / "one_frame.tif"), "--instances", str(files / "one_frame_labels.tif"),
                   "--out", str(files / "t.pt"), *FAST])
    assert status == 0, capsys.readouterr().err
    assert (files / "t.pt").is_file()
