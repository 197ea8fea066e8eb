"""The command line on stacks and batches: 3D objects, per-frame objects, many images on dask.distributed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from synthetic import blobs

from napari_unet.cli import main

FAST = ["--steps", "3", "--patch-size", "48", "--batch-size", "2", "--device", "cpu", "--quiet"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """A (3, 64, 64) stack of one image repeated (so objects span every plane) and its 3D labels."""
    folder = tmp_path_factory.mktemp("stack")
    image, labels = blobs(64, n=6)
    tifffile.imwrite(folder / "stack.tif", np.stack([image] * 3), photometric="minisblack")
    tifffile.imwrite(folder / "stack_labels.tif", np.stack([labels] * 3), photometric="minisblack")
    return folder


@pytest.fixture(scope="module")
def model(stack):
    """A model trained (briefly) on the stack: `train` takes a 3-D file as a stack of planes."""
    assert main(["train", "--image", str(stack / "stack.tif"), "--instances", str(stack / "stack_labels.tif"),
                 "--out", str(stack / "m.pt"), *FAST]) == 0
    return stack / "m.pt"


def test_predict_on_a_stack_writes_one_id_per_object_across_planes(stack, model, capsys):
    d = stack
    assert main(["predict", "--model", str(model), "--image", str(d / "stack.tif"), "--quiet", "--min-size", "1",
                 "--instances", str(d / "inst.tif"), "--semantic", str(d / "sem.tif")]) == 0
    volume = tifffile.imread(d / "inst.tif")
    assert volume.shape == (3, 64, 64) and tifffile.imread(d / "sem.tif").shape == (3, 64, 64)
    ids = np.unique(volume[volume > 0])
    assert ids.size > 0
    # identical planes: every object is in every plane, with one id
    for i in ids:
        assert np.all(np.any(volume == i, axis=(1, 2))), f"object {i} is missing from a plane"
    # --frames: a time series, ids restart in each frame
    assert main(["predict", "--model", str(model), "--image", str(d / "stack.tif"), "--quiet", "--min-size", "1",
                 "--frames", "--instances", str(d / "frames.tif")]) == 0
    frames = tifffile.imread(d / "frames.tif")
    assert frames.shape == (3, 64, 64)
    assert np.array_equal(frames[0], frames[1]) and frames[0].max() == ids.size


def test_batch_on_a_folder_reports_a_bad_file_and_writes_the_rest(stack, model, tmp_path, capsys):
    from distributed import LocalCluster

    images = tmp_path / "images"
    images.mkdir()
    for seed in range(3):
        tifffile.imwrite(images / f"cells{seed}.tif", blobs(48, n=4, seed=seed)[0])
    (images / "broken.tif").write_bytes(b"not a tiff")
    out = tmp_path / "out"
    out.mkdir()
    argv = ["predict", "--model", str(model), "--image", str(images), "--out-dir", str(out), "--quiet",
            "--outputs", "instances", "semantic"]
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        scheduler = ["--scheduler", cluster.scheduler_address]
        assert main([*argv, *scheduler]) == 2  # one input failed
        err = capsys.readouterr().err
        assert "broken.tif" in err and "3 predicted" in err and "1 failed" in err
        for seed in range(3):
            assert tifffile.imread(out / f"cells{seed}_instances.tif").shape == (48, 48)
            assert tifffile.imread(out / f"cells{seed}_semantic.tif").shape == (48, 48)
        assert not list(out.glob("broken*"))
        # existing outputs: an error unless resumed, then they are skipped
        assert main([*argv, *scheduler]) == 2
        assert "--resume-batch" in capsys.readouterr().err
        before = (out / "cells0_instances.tif").stat().st_mtime_ns
        (out / "cells2_semantic.tif").unlink()  # as if the run was killed while writing cells2
        assert main([*argv, *scheduler, "--resume-batch"]) == 2
        err = capsys.readouterr().err
        assert "1 predicted" in err and "2 already done" in err
        assert (out / "cells0_instances.tif").stat().st_mtime_ns == before
        assert (out / "cells2_semantic.tif").exists()


def test_batch_needs_an_output_folder(stack, model, capsys):
    assert main(["predict", "--model", str(model), "--image", str(stack / "stack.tif"), "--image",
                 str(stack / "stack.tif"), "--instances", str(stack / "x.tif")]) == 2
    assert "--out-dir" in capsys.readouterr().err


def test_collect_inputs_from_folders_globs_and_files(tmp_path):
    from napari_unet.errors import UserInputError
    from napari_unet.nn.batch import collect_inputs, output_paths

    for name in ("a.tif", "b.png", "notes.txt", ".hidden.tif"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.npy").write_bytes(b"")
    found = collect_inputs([str(tmp_path), str(tmp_path / "sub" / "*.npy"), str(tmp_path / "a.tif")])
    assert [p.name for p in found] == ["a.tif", "b.png", "c.npy"]  # a.tif once
    assert output_paths(found[2], tmp_path, ("instances", "semantic"))["semantic"] == tmp_path / "c_semantic.tif"
    (tmp_path / "sub" / "a.npy").write_bytes(b"")
    with pytest.raises(UserInputError, match="named a"):
        collect_inputs([str(tmp_path), str(tmp_path / "sub")])
    with pytest.raises(UserInputError, match="no images match"):
        collect_inputs([str(tmp_path / "*.jpg")])


def test_run_batch_on_its_own_local_cluster_writes_stacks_and_images(stack, model, tmp_path):
    from napari_unet.nn.batch import BatchOptions, run_batch

    tifffile.imwrite(tmp_path / "plane.tif", blobs(40, n=3)[0])
    out = tmp_path / "out"
    out.mkdir()
    seen = []
    summary = run_batch(model, [stack / "stack.tif", tmp_path / "plane.tif", tmp_path / "missing.tif"], out,
                        BatchOptions(kinds=("instances", "probabilities")), n_workers=1, processes=False,
                        on_done=lambda name, status, message: seen.append(status))
    assert sorted(Path(p).name for p in summary.written) == ["plane.tif", "stack.tif"]
    assert [Path(name).name for name, _ in summary.failed] == ["missing.tif"]
    assert "not found" in summary.failed[0][1] and sorted(seen) == ["failed", "written", "written"]
    assert tifffile.imread(out / "stack_instances.tif").shape == (3, 64, 64)
    assert tifffile.imread(out / "stack_probabilities.tif").shape == (2, 3, 64, 64)
    assert tifffile.imread(out / "plane_probabilities.tif").shape == (2, 40, 40)
    assert "2 predicted" in summary.line() and "1 failed" in summary.line()


def test_a_local_cluster_starts_without_a_warning_while_another_holds_the_dashboard_port(recwarn):
    """Another cluster (the dock's, a second batch) on port 8787: ours takes a free port and prints nothing."""
    import socket

    from napari_unet.nn.batch import cluster_client

    with socket.socket() as held:
        try:
            held.bind(("", 8787))
            held.listen()
        except OSError:
            pass  # something holds it already: the same situation
        with cluster_client(None, None, 1, False, 1) as client:
            assert client.submit(sum, [1, 2]).result() == 3
    assert [str(w.message) for w in recwarn if "port" in str(w.message).lower()] == []


def test_predict_a_lazy_image_into_a_zarr_store(stack, model, tmp_path, capsys):
    import zarr

    image = zarr.create_array(str(tmp_path / "big.zarr"), shape=(100, 90), dtype=np.uint16, chunks=(32, 32))
    image[...] = (blobs(100, n=12, seed=5)[0][:, :90] * 10).clip(0, 65535).astype(np.uint16)
    assert main(["predict", "--model", str(model), "--image", str(tmp_path / "big.zarr"), "--quiet",
                 "--out-zarr", str(tmp_path / "out.zarr"), "--block", "40", "--workers", "1", "--outputs", "instances", "semantic"]) == 0
    out = zarr.open_group(str(tmp_path / "out.zarr"), mode="r")
    assert out["instances"].shape == out["semantic"].shape == (100, 90)
    assert out["instances"].chunks == (40, 40)
    assert "objects" in capsys.readouterr().err
    assert main(["predict", "--model", str(model), "--image", str(tmp_path / "big.zarr"), "--quiet",
                 "--out-zarr", str(tmp_path / "out.zarr")]) == 2  # exists: --overwrite to replace


@pytest.mark.slow
def test_four_worker_processes_give_the_outputs_of_one(stack, model, tmp_path):
    from napari_unet.nn.batch import BatchOptions, run_batch

    inputs = [stack / "stack.tif"]
    for seed in range(5):
        tifffile.imwrite(tmp_path / f"cells{seed}.tif", blobs(56, n=5, seed=seed)[0])
        inputs.append(tmp_path / f"cells{seed}.tif")
    outputs = {}
    for workers in (1, 4):  # 4 processes on a 2-core machine: over-subscribed, each with one torch thread
        out = tmp_path / f"out{workers}"
        out.mkdir()
        summary = run_batch(model, inputs, out, BatchOptions(kinds=("instances", "semantic"), threads=1),
                            n_workers=workers, processes=True)
        assert len(summary.written) == len(inputs) and not summary.failed
        outputs[workers] = {p.name: tifffile.imread(p) for p in sorted(out.iterdir())}
    assert len(outputs[1]) == 2 * len(inputs) and outputs[1].keys() == outputs[4].keys()
    assert any(a.max() > 0 for name, a in outputs[1].items() if "instances" in name)
    for name, expected in outputs[1].items():
        assert np.array_equal(outputs[4][name], expected), name
