"""Fault suite, sizes: nothing a file says is used as an allocation size before it is checked.

Before: instance ids near 2**40 asked for terabytes, a stray scribble value of 50000 built
a 13 GB network, a tampered checkpoint with depth=40 allocated 9.6 GB.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import tifffile
import torch
from cli_fixtures import FAST, assert_clean_failure, make_files

from napari_unet.cli import main
from napari_unet.functionals.instances import remove_small
from napari_unet.functionals.targets import distance_target
from napari_unet.nn.segmenter import FORMAT_VERSION, Segmenter


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return make_files(tmp_path_factory.mktemp("sizes"))


def test_huge_instance_ids_train_without_huge_allocations(files, capsys, tmp_path):
    labels = tifffile.imread(files / "lbl.tif").astype(np.uint64)
    labels[labels > 0] += np.uint64(2**40)  # ids as sparse as a hash: a lookup table would need 8 TB
    tifffile.imwrite(tmp_path / "huge.tif", labels)
    argv = ["train", "--image", str(files / "img.tif"), "--instances", str(tmp_path / "huge.tif"),
            "--out", str(tmp_path / "m.pt"), *FAST]
    assert main(argv) == 0, capsys.readouterr().err
    assert Segmenter.load(tmp_path / "m.pt").instance_heads_trained


def test_evaluate_scores_huge_ids_without_huge_allocations(files, capsys, tmp_path):
    labels = tifffile.imread(files / "lbl.tif").astype(np.uint64)
    tifffile.imwrite(tmp_path / "huge.tif", np.where(labels > 0, labels + np.uint64(2**40), 0))
    assert main(["evaluate", "--truth", str(files / "lbl.tif"), "--pred", str(tmp_path / "huge.tif")]) == 0
    assert "1.000" in capsys.readouterr().out  # the same objects under other ids: AP 1


def test_dense_ids_give_the_same_targets_and_sizes():
    labels = np.zeros((32, 32), np.uint64)
    labels[2:10, 2:10], labels[12:30, 12:30], labels[0, 31] = 3, 7, 5
    huge = np.where(labels > 0, labels + np.uint64(2**50), 0)
    assert np.array_equal(distance_target(labels), distance_target(huge))
    small = remove_small(labels.astype(np.int64), 2)
    assert np.array_equal(remove_small(huge.astype(np.int64), 2) > 0, small > 0) and not small[0, 31]


def test_a_stray_scribble_value_is_not_a_class(files, capsys, tmp_path):
    scribbles = np.load(files / "scribbles.npy").astype(np.uint16)
    scribbles[0, 0] = 50000
    np.save(files / "stray.npy", scribbles)
    argv = ["train", "--image", str(files / "img.tif"), "--scribbles", str(files / "stray.npy"),
            "--out", str(tmp_path / "m.pt"), *FAST]
    err = assert_clean_failure(argv, capsys, files)
    assert "50000" in err and "255" in err


def _tampered(files, **changes) -> dict:
    checkpoint = torch.load(files / "m.pt", weights_only=True)
    for key, value in changes.items():
        if "." in key:
            table, field = key.split(".")
            checkpoint[table] = {**checkpoint[table], field: value}
        elif value is None:
            del checkpoint[key]
        else:
            checkpoint[key] = value
    return checkpoint


TAMPERED = {
    "depth 40": ({"architecture.depth": 40}, "depth"),
    "width 1e6": ({"architecture.base_width": 10**6}, "base_width"),
    "classes 1e6": ({"architecture.n_classes": 10**6}, "n_classes"),
    "no channels": ({"architecture.in_channels": 0}, "in_channels"),
    "float depth": ({"architecture.depth": 2.5}, "depth"),
    "too many parameters": ({"architecture.depth": 6, "architecture.base_width": 256}, "parameters"),
    "bad norm": ({"architecture.norm": "bogus"}, "norm"),
    "extra field": ({"architecture.kernel": 5}, "architecture fields"),
    "architecture a string": ({"architecture": "unet"}, "architecture"),
    "nan percentile": ({"normalisation.low_percentile": math.nan}, "percentile"),
    "unknown normalisation": ({"normalisation.method": "zscore"}, "normalisation fields"),
    "normalisation a list": ({"normalisation": [1, 99]}, "normalisation"),
    "newer format": ({"format_version": FORMAT_VERSION + 1}, "update napari-unet"),
    "format version text": ({"format_version": "two"}, "format_version"),
    "names do not match": ({"class_names": ["only one"]}, "class names"),
    "no weights": ({"state_dict": None}, "state_dict"),
    "wrong weights": ({"state_dict": {"x": torch.zeros(1)}}, "state_dict"),
    "not a napari-unet file": ({"format": "other"}, "not a napari-unet model"),
}


@pytest.mark.parametrize("case", list(TAMPERED))
def test_tampered_checkpoints_are_refused_before_the_network_is_built(files, capsys, case, tmp_path):
    changes, expected = TAMPERED[case]
    model = tmp_path / "tampered.pt"
    torch.save(_tampered(files, **changes), model)
    argv = ["predict", "--model", str(model), "--image", str(files / "img.tif"),
            "--instances", str(tmp_path / "out.tif"), "--quiet"]
    err = assert_clean_failure(argv, capsys, tmp_path)
    assert expected in err


def test_orphaned_temp_files_of_killed_saves_are_cleaned(tmp_path):
    seg = Segmenter.load(_model(tmp_path))
    orphans = [tmp_path / ".model.pt.k1ll3d00.tmp", tmp_path / ".other.pt.k1ll3d00.tmp"]  # killed saves
    for orphan in orphans:
        orphan.write_bytes(b"half a model")
    seg.save(tmp_path / "model.pt")
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


def _model(folder):
    from napari_unet.nn.model import ModelConfig

    Segmenter.create(ModelConfig(depth=1, base_width=2), ["background", "object"]).save(folder / "model.pt")
    return folder / "model.pt"
