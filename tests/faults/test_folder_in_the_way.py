"""An output written where a folder of the same name exists: refused, the folder and its contents kept.

Before: the crash-safe swap (io/atomic.replace) moved the folder aside, put the file in its
place and deleted the folder with everything in it; `--overwrite` let the command line
replace any folder, a zarr store or not, by its outputs.
"""

from __future__ import annotations

import numpy as np
import pytest
from cli_fixtures import assert_clean_failure, make_files

from napari_unet.errors import UserInputError
from napari_unet.io.images import write_array
from napari_unet.nn.model import ModelConfig
from napari_unet.nn.segmenter import Segmenter


@pytest.fixture
def folder(tmp_path):
    def make(name):
        path = tmp_path / name
        path.mkdir()
        (path / "precious.txt").write_text("a week of work")
        return path

    return make


def test_saving_a_model_over_a_folder_keeps_the_folder(folder):
    path = folder("results")
    model = Segmenter.create(ModelConfig(depth=2, base_width=4), ["background", "object"])
    with pytest.raises(UserInputError, match="is a folder: give a file name for the model"):
        model.save(path)
    assert (path / "precious.txt").read_text() == "a week of work"


def test_writing_an_image_over_a_folder_keeps_the_folder(folder):
    path = folder("cells.tif")
    with pytest.raises(UserInputError, match="is a folder: give a file name"):
        write_array(path, np.zeros((4, 4), np.uint8))
    assert (path / "precious.txt").read_text() == "a week of work"


@pytest.mark.parametrize("name", ["results.zarr", "results"])
def test_out_zarr_with_overwrite_never_replaces_a_folder_that_is_not_a_store(tmp_path, capsys, folder, name):
    path = folder(name)
    files = make_files(tmp_path)
    err = assert_clean_failure(["predict", "--model", str(files / "m.pt"), "--image", str(files / "img.tif"),
                                "--out-zarr", str(path), "--overwrite", "--quiet", "--workers", "1"], capsys, files)
    assert "is a folder that is not a zarr store" in err
    assert (path / "precious.txt").read_text() == "a week of work"


def test_an_image_output_with_overwrite_never_replaces_a_folder(tmp_path, capsys, folder):
    path = folder("instances.zarr")
    files = make_files(tmp_path)
    err = assert_clean_failure(["predict", "--model", str(files / "m.pt"), "--image", str(files / "img.tif"),
                                "--instances", str(path), "--overwrite", "--quiet"], capsys, files)
    assert "is a folder that is not a zarr store" in err
