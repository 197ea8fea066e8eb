"""Fault suite, outputs: checked before the first write, written all or nothing, real reasons given.

Before: a bad second output was found only after the first was written; a read-only
destination reported the clean-up error instead of the reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import pytest
import tifffile
import zarr
from cli_fixtures import FAST, assert_clean_failure, make_files, snapshot

from napari_unet.cli import main
from napari_unet.errors import UserInputError
from napari_unet.io import outputs


@pytest.fixture
def files(tmp_path):
    return make_files(tmp_path)


def _predict(d, *outputs_and_options):
    return ["predict", "--model", str(d / "m.pt"), "--image", str(d / "img.tif"), "--quiet", *outputs_and_options]


@pytest.mark.parametrize(
    ("outs", "expected"),
    [
        (["--instances", "inst.tif", "--semantic", "sem.jpg"], "unsupported file type"),
        (["--instances", "same.tif", "--semantic", "same.tif"], "two outputs"),
        (["--instances", "inst.tif", "--semantic", "missing/sem.tif"], "does not exist"),
        (["--instances", "inst.tif", "--semantic", "."], "folder"),
        (["--instances", "inst.tif", "--semantic", "keep.tif"], "--overwrite"),
        (["--instances", "inst.tif", "--semantic", "sem.tif", "--probabilities", "prob.png"], "PNG"),
    ],
)
def test_no_output_is_written_unless_all_can_be(files, capsys, outs, expected):
    d = files
    outs = [a if a.startswith("--") or a == "." else str(d / a) for a in outs]
    outs = [str(d) if a == "." else a for a in outs]
    err = assert_clean_failure(_predict(d, *outs), capsys, d)
    assert expected in err


def test_a_failed_second_output_keeps_the_existing_first(files, capsys):
    """With --overwrite, a failure after the first output was staged leaves the user's file as it was."""
    d = files
    keep = (d / "keep.tif").read_bytes()
    err = assert_clean_failure(
        _predict(d, "--semantic", str(d / "keep.tif"), "--probabilities", str(d / "prob.png"), "--overwrite"), capsys, d
    )
    assert "PNG" in err and (d / "keep.tif").read_bytes() == keep


def test_overwrite_replaces_every_output_together(files, capsys):
    d = files
    zarr.create_array(str(d / "old.zarr"), shape=(3, 3), dtype="u1")  # an earlier run's output
    (d / "old.zarr" / "junk").write_text("old")
    argv = _predict(d, "--semantic", str(d / "keep.tif"), "--probabilities", str(d / "old.zarr"), "--overwrite")
    assert main(argv) == 0, capsys.readouterr().err
    assert tifffile.imread(d / "keep.tif").shape == (64, 64)
    assert not (d / "old.zarr" / "junk").exists()
    assert sorted(p.name for p in d.iterdir() if p.name.startswith(".")) == []  # nothing staged left behind


def test_a_failing_rename_puts_every_file_back(tmp_path, monkeypatch):
    """Inject a failure on the second move into place: the first target is restored too."""
    first, second = tmp_path / "a.npy", tmp_path / "b.npy"
    np.save(first, np.zeros(3))
    real_replace, calls = os.replace, []

    def failing_replace(src, dst):
        calls.append(dst)
        if str(dst) == str(second):
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(outputs.os, "replace", failing_replace)
    with pytest.raises(UserInputError, match="No space left on device"):
        outputs.write_outputs({first: np.ones(3), second: np.ones(3)})
    monkeypatch.undo()
    assert np.array_equal(np.load(first), np.zeros(3)) and not second.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["a.npy"]


def test_a_run_killed_mid_swap_is_recovered_on_the_next_run(tmp_path):
    target = tmp_path / "inst.tif"
    dead = 2**22 + 1  # above Linux's pid_max default: no such process
    tifffile.imwrite(tmp_path / f".inst.tif.replaced-{dead}-dead0001", np.ones((4, 4), np.uint8))  # the user's old file
    (tmp_path / f".inst.tif.staged-{dead}-dead0001.tif").write_bytes(b"half")
    outputs.check_image_outputs([target])
    assert tifffile.imread(target).sum() == 16
    assert [p.name for p in tmp_path.iterdir()] == ["inst.tif"]


@pytest.fixture
def read_only_folder(tmp_path):
    """A folder nobody can write to: immutable for root (permission bits do not stop root), else 0o555."""
    folder = tmp_path / "locked"
    folder.mkdir()
    if os.geteuid() == 0:
        if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(folder)]).returncode != 0:
            pytest.skip("running as root without chattr: no way to make a folder read-only here")
        yield folder
        subprocess.run(["chattr", "-i", str(folder)], check=True)
    else:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)


def test_read_only_destination_gives_the_real_reason(files, capsys, read_only_folder):
    d = files
    err = assert_clean_failure(_predict(d, "--instances", str(read_only_folder / "inst.zarr")), capsys, d)
    assert "cannot write to" in err and ("not permitted" in err or "denied" in err or "Read-only" in err)
    train = ["train", "--image", str(d / "img.tif"), "--instances", str(d / "lbl.tif"),
             "--out", str(read_only_folder / "m.pt"), *FAST]
    err = assert_clean_failure(train, capsys, d)  # refused before training, not after
    assert "cannot write to" in err
    assert list(read_only_folder.iterdir()) == []


def test_train_refuses_a_folder_as_model_path(files, capsys):
    d = files
    (d / "models").mkdir()
    before = snapshot(d)
    err = assert_clean_failure(["train", "--image", str(d / "img.tif"), "--instances", str(d / "lbl.tif"),
                                "--out", str(d / "models"), *FAST], capsys, d)
    assert "folder" in err and snapshot(d) == before
