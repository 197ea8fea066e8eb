"""Input paths that are not images: a folder where a file was meant, a mistyped path with no extension.

Before: both were reported as "unsupported file type '<name>'", which sends the user looking for
a file format when the path itself is wrong.
"""

from __future__ import annotations

import pytest
from cli_fixtures import assert_clean_failure, make_files

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
