"""Batch prediction of an OME-Zarr plate: every field of every well, through the dask.distributed path."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import zarr
from synthetic import blobs

from napari_unet.cli import main

FAST = ["--steps", "3", "--patch-size", "48", "--batch-size", "2", "--device", "cpu", "--quiet"]
WELLS = {"A/1": 2, "B/3": 1}  # well -> fields


def _field(seed: int) -> np.ndarray:
    """(t, c, z, y, x) = (1, 2, 1, 48, 48): nuclei in channel 0, noise in channel 1."""
    nuclei, _ = blobs(48, n=4, seed=seed)
    noise = np.random.default_rng(seed).normal(50, 5, nuclei.shape)
    return np.stack([nuclei, noise]).astype(np.float32)[None, :, None]


@pytest.fixture(scope="module")
def plate(tmp_path_factory):
    """A 2-well plate written with ome_zarr.writer (NGFF 0.5), fields of two channels."""
    from ome_zarr.writer import write_image, write_plate_metadata, write_well_metadata

    path = tmp_path_factory.mktemp("plate") / "screen.zarr"
    root = zarr.open_group(str(path), mode="w")
    write_plate_metadata(root, ["A", "B"], ["1", "2", "3"], list(WELLS))
    seed = 0
    for well, n_fields in WELLS.items():
        row, column = well.split("/")
        well_group = root.require_group(row).require_group(column)
        write_well_metadata(well_group, [str(k) for k in range(n_fields)])
        for k in range(n_fields):
            write_image(_field(seed), well_group.require_group(str(k)), axes="tczyx", scale_factors=[])
            seed += 1
    return path


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    image, labels = blobs(48, n=4, seed=9)
    two = np.stack([image, np.full_like(image, 50)])
    tifffile.imwrite(folder / "two.tif", two, photometric="minisblack")
    tifffile.imwrite(folder / "labels.tif", labels)
    assert main(["train", "--image", str(folder / "two.tif"), "--channel-axis", "0", "--instances",
                 str(folder / "labels.tif"), "--out", str(folder / "m.pt"), *FAST]) == 0
    return folder / "m.pt"


def test_a_plate_expands_into_its_fields_named_by_well_and_field(plate):
    from napari_unet.nn.batch import collect_inputs, input_name

    fields = collect_inputs([str(plate)])
    assert [f.relative_to(plate).as_posix() for f in fields] == ["A/1/0", "A/1/1", "B/3/0"]
    assert [input_name(f) for f in fields] == ["screen_A1_field0", "screen_A1_field1", "screen_B3_field0"]


def test_predict_a_plate_writes_one_output_per_field(plate, model, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    argv = ["predict", "--model", str(model), "--image", str(plate), "--out-dir", str(out), "--quiet",
            "--min-size", "1", "--workers", "1", "--outputs", "instances", "semantic"]
    assert main(argv) == 0, capsys.readouterr().err
    assert "3 predicted" in capsys.readouterr().err
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(f"screen_{field}_{kind}.tif" for field in ("A1_field0", "A1_field1", "B3_field0")
                           for kind in ("instances", "semantic"))
    for field in ("A1_field0", "A1_field1", "B3_field0"):
        instances = tifffile.imread(out / f"screen_{field}_instances.tif")
        assert instances.shape == (48, 48)  # the single t and z planes dropped, the two channels used
        ids = np.unique(instances[instances > 0])
        assert ids.size > 0 and ids.tolist() == list(range(1, ids.size + 1))  # 1..n in each field
    # a plate is a batch: one output file cannot hold its fields
    assert main(["predict", "--model", str(model), "--image", str(plate), "--instances", str(tmp_path / "x.tif")]) == 2
    assert "--out-dir" in capsys.readouterr().err
    # a plate whose outputs all exist is skipped when resumed
    assert main([*argv, "--resume-batch"]) == 0
    assert "3 already done" in capsys.readouterr().err


def test_labels_written_into_each_field_are_read_back_by_ome_zarr(plate, model, tmp_path, capsys):
    import shutil

    from ome_zarr.io import parse_url
    from ome_zarr.reader import Label, Reader

    from napari_unet.io.ome_zarr_read import read_dataset

    copy = tmp_path / "screen.zarr"
    shutil.copytree(plate, copy)
    argv = ["predict", "--model", str(model), "--image", str(copy), "--into-zarr", "--quiet", "--min-size", "1",
            "--workers", "1", "--outputs", "instances", "semantic"]
    assert main(argv) == 0, capsys.readouterr().err
    for field in ("A/1/0", "A/1/1", "B/3/0"):
        nodes = list(Reader(parse_url(str(copy / field)))())
        labels = {node.zarr.basename(): node for node in nodes[1:] if node.load(Label) is not None}
        assert sorted(labels) == ["instances", "semantic"]
        instances = np.asarray(labels["instances"].data[0])
        assert instances.shape == (1, 1, 1, 48, 48)  # the field's own t, c, z, y, x
        ids = np.unique(instances[instances > 0])
        assert ids.size > 0 and ids.tolist() == list(range(1, ids.size + 1))
        # napari-unet's reader opens the field with its labels on the image's grid
        entries = read_dataset(copy / field)[1]
        assert {e.name for e in entries} == {"instances", "semantic"}
    # done fields are skipped on resume; without it, existing labels are an error
    assert main([*argv, "--resume-batch"]) == 0
    assert "3 already done" in capsys.readouterr().err
    assert main(argv) == 2 and "--resume-batch" in capsys.readouterr().err
    # probabilities are not labels
    assert main([*argv[:-2], "probabilities"]) == 2
    assert "not labels" in capsys.readouterr().err


def test_into_zarr_also_labels_a_single_ome_zarr_image_and_refuses_other_files(model, tmp_path, capsys):
    from ome_zarr.writer import write_image

    from napari_unet.io.ome_zarr_read import read_dataset

    image = tmp_path / "one.zarr"
    write_image(_field(5)[0, :, 0], zarr.open_group(str(image), mode="w"), axes="cyx", scale_factors=[])
    tifffile.imwrite(tmp_path / "flat.tif", blobs(48, n=4)[0])
    assert main(["predict", "--model", str(model), "--image", str(image), "--image", str(tmp_path / "flat.tif"),
                 "--into-zarr", "--quiet", "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert "1 predicted" in err and "flat.tif" in err and "not an OME-Zarr" in err
    labels = {entry.name: entry for entry in read_dataset(image)[1]}
    assert list(labels) == ["instances"] and labels["instances"].data.shape == (48, 48)
