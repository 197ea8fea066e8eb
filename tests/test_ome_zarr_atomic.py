"""OME-Zarr dataset writes that fail, are stopped or would replace the wrong folder never lose the
previous dataset, and foreign or corrupt stores give one-line user errors (real zarr stores under tmp_path)."""

from __future__ import annotations

import errno
import json
import os

import numpy as np
import pytest
import zarr
from ome_zarr_samples import listing, simple_dataset

from napari_unet.errors import UserInputError
from napari_unet.io import atomic
from napari_unet.io import ome_zarr_dataset as io
from napari_unet.io.ome_zarr_dataset import ImageEntry, LabelsEntry

# --------------------------------------------------------------------------- atomicity


def _assert_previous_intact(tmp_path, path, value=7):
    assert listing(tmp_path) == [path.name]  # no temporary or moved-aside folder left
    got, labels, _ = io.read_dataset(path)
    assert np.asarray(got.data).max() == value
    assert labels[0].class_names == ["background", "cell"]


def test_overwrite_requires_flag(tmp_path):
    path = simple_dataset(tmp_path, value=7)
    with pytest.raises(UserInputError, match="--overwrite"):
        simple_dataset(tmp_path, value=9)
    _assert_previous_intact(tmp_path, path, 7)
    simple_dataset(tmp_path, value=9, overwrite=True)
    _assert_previous_intact(tmp_path, path, 9)


def test_overwrite_never_replaces_a_non_zarr_folder(tmp_path):
    folder = tmp_path / "notes.zarr"
    folder.mkdir()
    (folder / "thesis.docx").write_text("precious")
    with pytest.raises(UserInputError, match="not a zarr dataset"):
        simple_dataset(tmp_path, name="notes.zarr", overwrite=True)
    assert (folder / "thesis.docx").read_text() == "precious"
    (tmp_path / "file.zarr").write_text("x")
    with pytest.raises(UserInputError, match="is a file"):
        simple_dataset(tmp_path, name="file.zarr", overwrite=True)


def test_stop_requested_mid_write_keeps_previous_dataset(tmp_path):
    path = simple_dataset(tmp_path, value=7)
    big = np.full((1500, 1300), 9, np.uint16)  # several chunks and levels
    calls = {"n": 0}

    def should_stop():
        calls["n"] += 1
        return calls["n"] > 3

    with pytest.raises(io.WriteStopped, match="unchanged"):
        io.write_dataset(path, ImageEntry(big), [LabelsEntry(np.zeros(big.shape, np.uint8), "lab")],
                         overwrite=True, should_stop=should_stop)
    _assert_previous_intact(tmp_path, path, 7)

    # a first write that stops leaves nothing at all
    with pytest.raises(io.WriteStopped):
        io.write_dataset(tmp_path / "new.zarr", ImageEntry(big), should_stop=lambda: True)
    assert listing(tmp_path) == [path.name]


def test_full_disk_mid_write_keeps_previous_dataset(tmp_path, monkeypatch):
    path = simple_dataset(tmp_path, value=7)
    real_set = zarr.storage.LocalStore.set
    writes = {"n": 0}

    async def failing_set(self, key, value):
        writes["n"] += 1
        if writes["n"] > 4:
            raise OSError(errno.ENOSPC, "No space left on device")
        return await real_set(self, key, value)

    monkeypatch.setattr(zarr.storage.LocalStore, "set", failing_set)
    big = np.full((1500, 1300), 9, np.uint16)
    with pytest.raises(UserInputError, match="disk space"):
        io.write_dataset(path, ImageEntry(big), [LabelsEntry(np.zeros(big.shape, np.uint8), "lab")],
                         overwrite=True)
    assert writes["n"] > 4
    monkeypatch.undo()
    _assert_previous_intact(tmp_path, path, 7)


def test_interrupt_from_progress_callback_cleans_up(tmp_path):
    path = simple_dataset(tmp_path, value=7)

    def progress(done, total):
        if done >= 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        io.write_dataset(path, ImageEntry(np.full((1500, 1300), 9, np.uint16)), overwrite=True,
                         progress=progress)
    _assert_previous_intact(tmp_path, path, 7)


def test_failed_swap_restores_previous_dataset(tmp_path, monkeypatch):
    path = simple_dataset(tmp_path, value=7)
    real_replace = os.replace

    def replace(src, dst):
        if ".writing-" in str(src):  # moving the new dataset into place fails
            raise OSError(errno.EIO, "I/O error")
        return real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", replace)
    with pytest.raises(OSError):
        simple_dataset(tmp_path, value=9, overwrite=True)
    monkeypatch.undo()
    _assert_previous_intact(tmp_path, path, 7)


def test_dataset_moved_aside_by_a_killed_write_is_restored(tmp_path):
    path = simple_dataset(tmp_path, value=7)
    os.replace(path, tmp_path / f".{path.name}.replaced-1234abcd")  # killed right after this
    assert not path.exists()
    with pytest.raises(UserInputError, match="--overwrite"):  # the old dataset is back
        simple_dataset(tmp_path, value=9)
    _assert_previous_intact(tmp_path, path, 7)


# --------------------------------------------------------------------------- foreign / corrupt


def test_foreign_and_corrupt_stores_give_user_errors(tmp_path):
    with pytest.raises(UserInputError, match="does not exist"):
        io.read_dataset(tmp_path / "missing.zarr")

    plain = tmp_path / "plain.zarr"
    zarr.open_group(str(plain), mode="w").create_array("x", shape=(4,), dtype="u1")
    with pytest.raises(UserInputError, match="not an OME-Zarr image"):
        io.read_dataset(plain)

    array = tmp_path / "array.zarr"
    zarr.create_array(str(array), shape=(4, 4), dtype="u1")
    with pytest.raises(UserInputError, match="plain zarr array"):
        io.read_dataset(array)

    folder = tmp_path / "folder.zarr"
    folder.mkdir()
    (folder / "readme.txt").write_text("hi")
    with pytest.raises(UserInputError, match="not a zarr"):
        io.read_dataset(folder)

    garbled = simple_dataset(tmp_path, name="garbled.zarr")
    (garbled / "zarr.json").write_text("{ not json")
    with pytest.raises(UserInputError, match="damaged"):
        io.read_dataset(garbled)

    missing_level = simple_dataset(tmp_path, name="missing_level.zarr")
    import shutil

    shutil.rmtree(missing_level / "s0")
    with pytest.raises(UserInputError, match="damaged"):
        io.read_dataset(missing_level)

    missing_label = simple_dataset(tmp_path, name="missing_label.zarr")
    shutil.rmtree(missing_label / "labels" / "img_annotations")
    with pytest.raises(UserInputError, match="damaged"):
        io.read_dataset(missing_label)

    bad_meta = simple_dataset(tmp_path, name="bad_meta.zarr")
    meta = json.loads((bad_meta / "zarr.json").read_text())
    meta["attributes"]["ome"]["multiscales"][0]["datasets"] = "nonsense"
    (bad_meta / "zarr.json").write_text(json.dumps(meta))
    with pytest.raises(UserInputError, match="damaged"):
        io.read_dataset(bad_meta)

    for path in (plain, array, folder, garbled, tmp_path / "missing.zarr"):
        assert not io.is_napari_unet_dataset(path)
