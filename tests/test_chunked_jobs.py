"""An image bigger than memory predicted with its blocks spread over dask workers equals the in-process pass."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import zarr
from scipy import ndimage
from synthetic import blobs

from napari_unet.functionals.instances import InstanceParams
from napari_unet.nn.chunked import output_levels, predict_to_zarr
from napari_unet.nn.chunked_jobs import BlockFailed, predict_to_zarr_on_cluster
from napari_unet.nn.model import ModelConfig
from napari_unet.nn.segmenter import Segmenter

SETTINGS = {"block": 48, "margin": 32, "halo": 40, "probabilities": True, "coarsest": 40}


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as dask_client:
        yield dask_client


def _image_file(tmp_path, size=(150, 131), seed=4):
    image, _ = blobs(max(size), n=30, seed=seed)
    image = image[: size[0], : size[1]]
    path = tmp_path / "image.zarr"
    zarr.create_array(str(path), shape=image.shape, dtype=np.float32, chunks=(40, 40))[...] = image
    return path, image


def _untrained(image):
    torch.manual_seed(5)  # an untrained model: its brightest fifth of foreground makes small objects
    segmenter = Segmenter.create(ModelConfig(base_width=4, depth=2), ["background", "cell"])
    whole = segmenter.predict(image[None], out_dtype=np.float16)
    return segmenter, InstanceParams(threshold=float(np.quantile(whole.foreground(), 0.8)), min_size=3)


def _arrays(store) -> dict[str, np.ndarray]:
    root = zarr.open_group(str(store), mode="r")
    return {level.path: level[...] for name in ("semantic", "instances", "probabilities")
            if name in root for level in output_levels(root, name)}


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Bit-equal outputs need one summation order: one torch thread here, and `threads=1` on the workers
    (tests run before may have left this thread's count at another value than a worker thread's)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("block", [48, 32])  # 32: the halo reaches past the next block
def test_blocks_on_workers_equal_the_in_process_pass(tmp_path, client, block):
    path, image = _image_file(tmp_path)
    segmenter, params = _untrained(image)
    settings = {**SETTINGS, "block": block}
    sequential = predict_to_zarr(segmenter, image[None], tmp_path / "one.zarr", params, **settings)
    stages = []
    spread = predict_to_zarr_on_cluster(segmenter, path, tmp_path / "many.zarr", params, client=client, device="cpu",
                                        threads=1,
                                        progress=lambda stage, done, total: stages.append((stage, done, total)),
                                        **settings)
    one, many = _arrays(tmp_path / "one.zarr"), _arrays(tmp_path / "many.zarr")
    assert sorted(many) == sorted(one) and len(one) == 9  # three outputs, each with two coarser levels
    for name in one:
        assert np.array_equal(one[name], many[name]), name  # same ids, same pyramids
    assert spread == sequential == one["instances"].max() > 10
    store = zarr.open_group(str(tmp_path / "many.zarr"), mode="r")
    assert sorted(store.array_keys()) == ["instances", "probabilities", "semantic"]  # scratch arrays removed
    assert store.attrs["objects"] == spread and store.attrs["ome"] == zarr.open_group(
        str(tmp_path / "one.zarr"), mode="r").attrs["ome"]
    blocks = len(range(0, 150, block)) * len(range(0, 131, block))
    assert {("network", blocks, blocks), ("objects", blocks, blocks), ("merging", blocks, blocks)} <= set(stages)


def test_an_image_read_whole_is_given_to_the_workers_in_blocks(tmp_path, client):
    import tifffile

    _, image = _image_file(tmp_path)
    tifffile.imwrite(tmp_path / "image.tif", image)
    segmenter, params = _untrained(image)
    sequential = predict_to_zarr(segmenter, image[None], tmp_path / "one.zarr", params, **SETTINGS)
    spread = predict_to_zarr_on_cluster(segmenter, tmp_path / "image.tif", tmp_path / "many.zarr", params,
                                        client=client, device="cpu", threads=1, **SETTINGS)
    one, many = _arrays(tmp_path / "one.zarr"), _arrays(tmp_path / "many.zarr")
    assert spread == sequential and all(np.array_equal(one[name], many[name]) for name in one)
    assert sorted(zarr.open_group(str(tmp_path / "many.zarr"), mode="r").array_keys()) == [
        "instances", "probabilities", "semantic"]  # the workers' copy of the image is removed


def test_objects_across_block_borders_keep_one_id(tmp_path, client):
    from napari_unet.io.pretrained import resolve

    _, truth = blobs(144, n=40, radius=(5, 9), seed=8)
    image = np.where(truth > 0, 1.0, 0.1).astype(np.float32)
    path = tmp_path / "image.zarr"
    zarr.create_array(str(path), shape=image.shape, dtype=np.float32, chunks=(48, 48))[...] = image
    segmenter = Segmenter.load(resolve("nuclei"))
    predict_to_zarr_on_cluster(segmenter, path, tmp_path / "out.zarr", InstanceParams(), client=client, block=48,
                               margin=24, halo=32, diameter=15.0)
    instances = zarr.open_group(str(tmp_path / "out.zarr"), mode="r")["instances"][...]
    crossing = [i for i in np.unique(truth)[1:] if len({(y // 48, x // 48) for y, x in np.argwhere(truth == i)}) > 1]
    assert len(crossing) > 5
    whole = 0
    for i in crossing:  # a true object cut by a block border is found as one object, not two halves
        ids, counts = np.unique(instances[truth == i], return_counts=True)
        whole += counts.max() > 0.9 * (truth == i).sum() and ids[counts.argmax()] > 0
    assert whole >= 0.9 * len(crossing)
    for i in np.unique(instances)[1:]:  # and every id is one piece
        assert ndimage.label(instances == i)[1] == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine whose workers have no CUDA")
def test_a_failing_block_is_a_clear_error_and_writes_nothing(tmp_path, client):
    path, image = _image_file(tmp_path)
    segmenter, params = _untrained(image)
    # this process reads the image and sends the model; the workers fail to load it on a GPU they lack
    with pytest.raises(BlockFailed, match=r"the network pass failed at block at \(\d+, \d+\): UserInputError: .*CUDA"):
        predict_to_zarr_on_cluster(segmenter, path, tmp_path / "out.zarr", params, client=client, device="cuda",
                                   **SETTINGS)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["image.zarr"]  # no store, no half-written sibling


@pytest.mark.slow
def test_the_command_line_spreads_out_zarr_blocks_over_workers(tmp_path):
    from napari_unet.cli import main

    path, image = _image_file(tmp_path, size=(100, 100))
    segmenter, params = _untrained(image)
    segmenter.save(tmp_path / "model.pt")
    common = ["predict", "--model", str(tmp_path / "model.pt"), "--image", str(path), "--block", "48",
              "--threshold", str(params.threshold), "--min-size", "3", "--diameter", "20", "--quiet"]
    assert main([*common, "--out-zarr", str(tmp_path / "one.zarr"), "--workers", "1"]) == 0
    assert main([*common, "--out-zarr", str(tmp_path / "two.zarr"), "--workers", "2"]) == 0
    one, two = _arrays(tmp_path / "one.zarr"), _arrays(tmp_path / "two.zarr")
    assert one["instances"].max() > 3
    assert all(np.array_equal(one[name], two[name]) for name in one)


def test_jobs_of_one_model_after_each_other_on_one_client_all_run(tmp_path, client):
    """The dock sends a store job and open images to the same cluster with the same model: a job
    must not lose the model a finished job released (a shared scatter key once did, at random)."""
    from napari_unet.nn.batch import ArrayInput, model_bytes_of, predict_arrays
    from napari_unet.nn.volume import layout_of_file

    path, image = _image_file(tmp_path)
    segmenter, params = _untrained(image)
    items = {"a": ArrayInput(image, layout_of_file(image.shape, None, "a"), diameter=None)}
    for round_ in range(8):
        [(_, (status, message, _))] = list(predict_arrays(model_bytes_of(segmenter), items, client=client))
        assert status == "written", message
        objects = predict_to_zarr_on_cluster(segmenter, path, tmp_path / f"{round_}.zarr", params, client=client,
                                             device="cpu", **SETTINGS)
        assert objects > 10
