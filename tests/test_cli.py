import subprocess
import sys

import numpy as np
import pytest
import tifffile
from synthetic import blobs

from napari_unet.cli import main
from napari_unet.nn.segmenter import Segmenter


@pytest.fixture
def files(tmp_path):
    image, labels = blobs(96, n=10)
    tifffile.imwrite(tmp_path / "img.tif", image)
    tifffile.imwrite(tmp_path / "lbl.tif", labels)
    scribbles = np.zeros(labels.shape, np.uint8)
    scribbles[labels == 1], scribbles[:2] = 2, 1
    np.save(tmp_path / "scribbles.npy", scribbles)
    return tmp_path


FAST = ["--steps", "3", "--patch-size", "48", "--batch-size", "2", "--device", "cpu", "--quiet"]


def test_train_predict_evaluate_round_trip(files, capsys):
    d = files
    assert main(["train", "--image", str(d / "img.tif"), "--instances", str(d / "lbl.tif"),
                 "--image", str(d / "img.tif"), "--scribbles", str(d / "scribbles.npy"),
                 "--out", str(d / "m.pt"), "--classes", "background", "blob", *FAST]) == 0
    assert main(["predict", "--model", str(d / "m.pt"), "--image", str(d / "img.tif"), "--quiet",
                 "--instances", str(d / "inst.tif"), "--semantic", str(d / "sem.png"),
                 "--probabilities", str(d / "prob.npy")]) == 0
    assert tifffile.imread(d / "inst.tif").shape == (96, 96)
    assert np.load(d / "prob.npy").shape == (2, 96, 96)
    assert main(["train", "--image", str(d / "img.tif"), "--instances", str(d / "lbl.tif"),
                 "--out", str(d / "m2.pt"), "--resume", str(d / "m.pt"), "--blend-with-start", "0.25", *FAST]) == 0
    assert Segmenter.load(d / "m2.pt").history[-1]["blended_with_start"] == 0.25
    capsys.readouterr()
    assert main(["evaluate", "--truth", str(d / "lbl.tif"), "--pred", str(d / "inst.tif")]) == 0
    table = capsys.readouterr().out
    assert "0.50" in table and "0.90" in table and "mean" in table
    assert "true objects:" in table and "missed" in table and "merged" in table


def _error(argv, capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1
    return err


def test_bad_inputs_are_one_line_errors(files, capsys):
    d = files
    np.save(d / "stack.npy", np.zeros((4, 32, 32)))
    np.save(d / "small.npy", np.zeros((10, 10), np.uint8))
    np.save(d / "nan.npy", np.full((96, 96), np.nan, np.float32))
    np.save(d / "ones.npy", np.ones((96, 96), np.uint8))
    train = ["train", "--out", str(d / "m.pt"), *FAST]
    assert "file not found" in _error([*train, "--image", str(d / "missing.tif"), "--instances", str(d / "lbl.tif")], capsys)
    assert "same height and width" in _error([*train, "--image", str(d / "img.tif"), "--scribbles", str(d / "small.npy")], capsys)
    np.save(d / "empty.npy", np.zeros((96, 96), np.uint8))
    assert "no annotated pixel" in _error([*train, "--image", str(d / "img.tif"), "--scribbles", str(d / "empty.npy")], capsys)
    assert "only one class" in _error([*train, "--image", str(d / "img.tif"), "--scribbles", str(d / "ones.npy")], capsys)
    assert "NaN" in _error([*train, "--image", str(d / "nan.npy"), "--instances", str(d / "lbl.tif")], capsys)
    assert "its labels are" in _error([*train, "--image", str(d / "stack.npy"), "--instances", str(d / "lbl.tif")], capsys)
    assert "one labels file per image" in _error([*train, "--image", str(d / "img.tif")], capsys)
    assert not (d / "m.pt").exists()
    predict = ["predict", "--image", str(d / "img.tif"), "--instances", str(d / "out.tif")]
    assert "not a napari-unet model" in _error([*predict, "--model", str(d / "lbl.tif")], capsys)
    assert not (d / "out.tif").exists()
    (d / "out.tif").write_bytes(b"keep me")
    assert "--overwrite" in _error([*predict, "--model", str(d / "lbl.tif")], capsys)
    assert (d / "out.tif").read_bytes() == b"keep me"


def test_console_script_runs():
    out = subprocess.run([sys.executable, "-m", "napari_unet", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("napari-unet ")


def test_train_from_exported_dataset_with_a_stack(tmp_path, capsys):
    from napari_unet.conventions import ROLE_ACCEPTED, ROLE_ANNOTATIONS
    from napari_unet.io.ome_zarr_dataset import ImageEntry, LabelsEntry, write_dataset
    from napari_unet.nn.segmenter import Segmenter

    image, labels = blobs(64, n=6)
    stack = np.stack([image, image[::-1]])
    annotations = np.zeros((2, 64, 64), np.uint8)
    annotations[1] = np.where(labels[::-1] > 0, 2, 1)  # only plane 1 annotated
    accepted = np.zeros((2, 64, 64), np.uint32)
    accepted[1] = labels[::-1] + 1
    write_dataset(tmp_path / "d.zarr", ImageEntry(stack, name="cells"), [
        LabelsEntry(annotations, name="cells annotations", role=ROLE_ANNOTATIONS, class_names=["background", "cell"]),
        LabelsEntry(accepted, name="cells accepted", role=ROLE_ACCEPTED),
    ])
    assert main(["train", "--dataset", str(tmp_path / "d.zarr"), "--out", str(tmp_path / "m.pt"), *FAST]) == 0
    model = Segmenter.load(tmp_path / "m.pt")
    assert model.history[-1]["images"] == 1 and model.instance_heads_trained


def test_output_closed_by_its_reader_is_not_an_error():
    """`napari-unet models | head -1`: the reader leaves before the output ends; no error, exit 0."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "napari_unet", "models"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader is gone before the first line (the child is still importing)
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0
    assert "error" not in err.lower(), err
