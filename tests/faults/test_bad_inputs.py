"""Hostile and damaged inputs to the dataset reader and the image reader: each is one clear
message that names the file, never a traceback, a hang or a huge allocation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
import zarr
from synthetic import blobs

from napari_unet.cli import main
from napari_unet.conventions import METADATA_KEY, ROLE_ANNOTATIONS
from napari_unet.errors import UserInputError
from napari_unet.io import ome_zarr_dataset as io
from napari_unet.io.images import write_array
from napari_unet.napari import reader


def _dataset(tmp_path, name="cells.zarr", shape=(64, 64)):
    return io.write_dataset(tmp_path / name, io.ImageEntry(np.ones(shape, np.uint16), name="cells"),
                            [io.LabelsEntry(np.ones(shape, np.uint8), "cells annotations", role=ROLE_ANNOTATIONS)])


def _edit_json(path, edit):
    meta = json.loads(path.read_text())
    edit(meta)
    path.write_text(json.dumps(meta))


def test_dataset_from_a_newer_napari_unet_is_refused(tmp_path):
    path = _dataset(tmp_path)
    _edit_json(path / "zarr.json", lambda m: m["attributes"][METADATA_KEY].update(format_version=99))
    with pytest.raises(UserInputError, match="newer napari-unet .*format 99.* update napari-unet"):
        io.read_dataset(path)
    with pytest.raises(UserInputError, match="newer napari-unet"):
        reader.read_layers(str(path))
    _edit_json(path / "zarr.json", lambda m: m["attributes"][METADATA_KEY].update(format_version="x"))
    with pytest.raises(UserInputError, match="damaged.*format_version"):
        io.read_dataset(path)


def test_metadata_declaring_huge_arrays_is_refused_before_allocation(tmp_path):
    path = _dataset(tmp_path)
    for array in (path / "s0", path / "labels" / "cells_annotations" / "s0"):
        _edit_json(array / "zarr.json", lambda m: m.update(shape=[400_000, 400_000]))
    with pytest.raises(UserInputError, match=f"{path.name} is damaged or tampered with: .*400000"):
        io.read_dataset(path)
    with pytest.raises(UserInputError, match="tampered"):
        reader.read_layers(str(path))


def test_labels_not_matching_the_image_are_damage(tmp_path):
    path = _dataset(tmp_path)
    _edit_json(path / "labels" / "cells_annotations" / "s0" / "zarr.json", lambda m: m.update(shape=[64, 65]))
    with pytest.raises(UserInputError, match="damaged: labels/cells_annotations is"):
        io.read_dataset(path)


@pytest.mark.parametrize("chunk", ["s0/c/0/0", "labels/cells_annotations/s0/c/0/0"])
def test_corrupt_chunk_names_the_dataset(tmp_path, chunk):
    path = _dataset(tmp_path)
    (path / chunk).write_bytes(b"\x00garbage, not a zstd frame")
    with pytest.raises(UserInputError, match=f"{path.name} is damaged: .* cannot be read"):
        reader.read_layers(str(path))
    with pytest.raises(UserInputError, match=f"{path.name} is damaged"):
        io.dataset_training_pairs(path)


@pytest.fixture
def model(tmp_path):
    image, labels = blobs(64, n=6)
    tifffile.imwrite(tmp_path / "img.tif", image)
    tifffile.imwrite(tmp_path / "lbl.tif", labels)
    assert main(["train", "--image", str(tmp_path / "img.tif"), "--instances", str(tmp_path / "lbl.tif"),
                 "--out", str(tmp_path / "m.pt"), "--steps", "1", "--patch-size", "32", "--batch-size", "1",
                 "--device", "cpu", "--quiet"]) == 0
    return tmp_path / "m.pt", image


@pytest.mark.slow
def test_predict_reads_zarr_arrays_and_datasets(tmp_path, model, capsys):
    model_path, image = model
    write_array(tmp_path / "plain.zarr", image)
    io.write_dataset(tmp_path / "ds.zarr", io.ImageEntry(image, name="img"))
    outputs = []
    for source in ("plain.zarr", "ds.zarr", "img.tif"):
        out = tmp_path / f"{source}.semantic.npy"
        assert main(["predict", "--model", str(model_path), "--image", str(tmp_path / source),
                     "--semantic", str(out), "--quiet"]) == 0, capsys.readouterr().err
        outputs.append(np.load(out))
    assert outputs[0].shape == image.shape
    np.testing.assert_array_equal(outputs[0], outputs[2])  # the same pixels, the same answer
    np.testing.assert_array_equal(outputs[1], outputs[2])


@pytest.mark.slow
def test_predict_refuses_complex_images(tmp_path, model, capsys):
    model_path, image = model
    np.save(tmp_path / "c.npy", image.astype(np.complex64))
    assert main(["predict", "--model", str(model_path), "--image", str(tmp_path / "c.npy"),
                 "--semantic", str(tmp_path / "out.npy"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "complex" in err and err.count("\n") == 1
    assert not (tmp_path / "out.npy").exists()


def test_complex_image_is_refused_by_the_dataset_writer(tmp_path):
    with pytest.raises(UserInputError, match="complex"):
        io.write_dataset(tmp_path / "c.zarr", io.ImageEntry(np.ones((8, 8), np.complex64)))
    assert list(tmp_path.iterdir()) == []


def test_zarr_v2_arrays_written_elsewhere_are_read(tmp_path):
    zarr.create_array(str(tmp_path / "v2.zarr"), shape=(20, 30), dtype="u2", zarr_format=2)[:] = 3
    from napari_unet.io.images import read_image

    assert int(np.asarray(read_image(tmp_path / "v2.zarr")).max()) == 3
