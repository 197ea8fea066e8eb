"""A full disk or a full GPU: the message names the user's file or setting and says what to do.

A full disk cannot be made here without root (no tmpfs mount), so the one OS-level write is
replaced by one that raises OSError(ENOSPC), as a full disk does; there is no GPU either, so the
network call raises torch's OutOfMemoryError. Everything around them is real.
"""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
from cli_fixtures import FAST, assert_clean_failure, make_files

from napari_unet.io import images
from napari_unet.nn.segmenter import Segmenter


def _full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.fixture
def files(tmp_path):
    return make_files(tmp_path)


def test_predict_on_a_full_disk_names_the_output_not_its_staged_copy(files, capsys, monkeypatch):
    monkeypatch.setitem(images._WRITERS, ".tif", _full)
    out = files / "inst.tif"
    err = assert_clean_failure(
        ["predict", "--model", str(files / "m.pt"), "--image", str(files / "img.tif"), "--instances", str(out),
         "--device", "cpu", "--quiet"], capsys, files)
    assert f"Not enough disk space to write {out.name}" in err and f"Nothing was changed at {out}." in err
    assert "staged" not in err


def test_train_on_a_full_disk_says_so_in_one_line(files, capsys, monkeypatch):
    monkeypatch.setattr(Path, "write_bytes", _full)  # every disk full: the temporary folder too
    out = files / "new.pt"
    err = assert_clean_failure(
        ["train", "--image", str(files / "img.tif"), "--instances", str(files / "lbl.tif"), "--out", str(out), *FAST],
        capsys, files)
    assert f"Not enough disk space to save {out.name}" in err and "free some space" in err


def test_a_model_trained_onto_a_full_disk_is_kept_in_the_temporary_folder(files, capsys, monkeypatch,
                                                                          tmp_path_factory):
    rescue = tmp_path_factory.mktemp("temporary")
    monkeypatch.setattr("tempfile.gettempdir", lambda: str(rescue))
    write_bytes = Path.write_bytes

    def full_here(path, data):
        if path.parent == files:  # only the destination's disk is full
            _full()
        return write_bytes(path, data)

    monkeypatch.setattr(Path, "write_bytes", full_here)
    err = assert_clean_failure(
        ["train", "--image", str(files / "img.tif"), "--instances", str(files / "lbl.tif"), "--out",
         str(files / "new.pt"), *FAST], capsys, files)
    kept = [p for p in rescue.iterdir() if p.name.endswith("new.pt")]
    assert len(kept) == 1 and f"The trained model was kept in {kept[0]}" in err
    monkeypatch.undo()
    assert Segmenter.load(kept[0]).history[-1]["steps"] == 1


def test_predict_out_of_gpu_memory_says_what_to_lower(files, capsys, monkeypatch):
    """CUDA cannot run here: the network call raises what torch raises when the GPU is full."""
    import torch

    def out_of_memory(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(Segmenter, "predict", out_of_memory)
    err = assert_clean_failure(
        ["predict", "--model", str(files / "m.pt"), "--image", str(files / "img.tif"), "--instances",
         str(files / "inst.tif"), "--quiet"], capsys, files)
    assert "out of GPU memory: lower --tile-size" in err and "--device cpu" in err


def test_an_output_its_format_cannot_hold_is_named_not_its_staged_copy(tmp_path):
    """Outputs are staged under hidden names; a PNG that cannot hold the ids must still name the user's file."""
    import numpy as np

    from napari_unet.errors import UserInputError
    from napari_unet.io.outputs import write_outputs

    with pytest.raises(UserInputError, match=r"^cannot write .*/ids\.png: PNG holds values 0 to 65535") as error:
        write_outputs({tmp_path / "ids.png": np.full((4, 4), 70_000, np.uint32)})
    assert "staged" not in str(error.value)
    assert list(tmp_path.iterdir()) == []
