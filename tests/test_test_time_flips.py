"""Test-time flips: the network averaged over the image's symmetries, each output turned back, on every path."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import torch
import zarr
from synthetic import blobs

from napari_unet.cli import main
from napari_unet.errors import UserInputError
from napari_unet.functionals.normalisation import Normalisation
from napari_unet.nn.batch import ArrayInput, BatchOptions, model_bytes_of, predict_arrays
from napari_unet.nn.chunked import predict_to_zarr
from napari_unet.nn.chunked_jobs import predict_to_zarr_on_cluster
from napari_unet.nn.inference import SYMMETRIES, predict_tiled
from napari_unet.nn.model import ModelConfig
from napari_unet.nn.segmenter import Segmenter
from napari_unet.nn.volume import layout_of_file, predict_image


def _model(seed: int = 5) -> Segmenter:
    """An untrained model: its outputs are not symmetric, so a wrongly turned-back pass shows."""
    torch.manual_seed(seed)
    return Segmenter.create(ModelConfig(base_width=4, depth=2), ["background", "cell"]).to(torch.device("cpu"))


def _probabilities(segmenter: Segmenter, image: np.ndarray, flips: int) -> np.ndarray:
    return segmenter.predict(image, flips=flips).probabilities


def test_flips_average_the_turned_back_logits_of_each_symmetry():
    segmenter = _model()
    image = np.random.default_rng(0).random((1, 40, 56), np.float32)  # not square: turns change the tile's shape
    stats = segmenter.normalisation.statistics(image)
    x = torch.from_numpy(Normalisation.apply(image, stats)[None])
    segmenter.net.eval()
    for flips in (2, 4, 8):
        expected = 0
        for turns, mirrored in SYMMETRIES[:flips]:
            seen = torch.rot90(x, turns, dims=(2, 3))
            with torch.no_grad():
                out = segmenter.net(seen.flip(3) if mirrored else seen)
            expected = expected + torch.rot90(out.flip(3) if mirrored else out, -turns, dims=(2, 3))
        expected = (expected / flips)[0]
        got = predict_tiled(segmenter.net, image, stats, device=torch.device("cpu"), flips=flips)
        np.testing.assert_allclose(got.probabilities, torch.softmax(expected[:2], 0).numpy(), atol=1e-5)
        np.testing.assert_allclose(got.boundary, torch.sigmoid(expected[2]).numpy(), atol=1e-5)
        np.testing.assert_allclose(got.distance, torch.sigmoid(expected[3]).numpy(), atol=1e-5)


@pytest.mark.parametrize(("flips", "symmetry"), [
    (2, lambda a: a[..., ::-1]), (4, lambda a: a[..., ::-1, :]), (4, lambda a: a[..., ::-1, ::-1]),
    (8, lambda a: np.rot90(a, 1, (-2, -1))), (8, lambda a: np.swapaxes(a, -1, -2))])
def test_the_averaged_model_commutes_with_the_symmetries_it_averages(flips, symmetry):
    """A prediction of the mirrored (turned) image is the mirrored (turned) prediction; without flips it is not."""
    segmenter = _model()
    image = np.random.default_rng(1).random((1, 48, 48), np.float32)
    turned = np.ascontiguousarray(symmetry(image))
    one = np.abs(symmetry(_probabilities(segmenter, image, 1)) - _probabilities(segmenter, turned, 1)).max()
    averaged = np.abs(symmetry(_probabilities(segmenter, image, flips)) - _probabilities(segmenter, turned, flips))
    assert one > 1e-3 and averaged.max() < 1e-5


def test_flips_other_than_1_2_4_8_are_a_clear_error():
    segmenter = _model()
    for bad in (0, 3, 16, True):
        with pytest.raises(UserInputError, match="test-time flips must be one of 1, 2, 4, 8"):
            segmenter.predict(np.zeros((1, 32, 32), np.float32), flips=bad)


def test_every_prediction_path_flips_like_the_in_memory_one(tmp_path):
    """Planes of a stack, a zarr store (in this process) and a batch of open images on dask: same outputs."""
    from distributed import Client, LocalCluster

    segmenter = _model()
    image, _ = blobs(96, n=12, seed=4)
    expected = _probabilities(segmenter, image[None], 4)
    assert np.abs(expected - _probabilities(segmenter, image[None], 1)).max() > 1e-3  # flips change the outputs

    stack = np.stack([image, image[::-1]])
    result = predict_image(segmenter, stack, layout_of_file(stack.shape, None, "stack"), None, probabilities=True,
                           flips=4)
    np.testing.assert_allclose(result.probabilities[:, 0], expected, atol=1e-5)
    np.testing.assert_allclose(result.probabilities[:, 1], _probabilities(segmenter, image[None, ::-1], 4), atol=1e-5)

    predict_to_zarr(segmenter, image[None], tmp_path / "one.zarr", None, block=128, probabilities=True, flips=4)
    np.testing.assert_allclose(zarr.open_group(str(tmp_path / "one.zarr"), mode="r")["probabilities"][...], expected,
                               atol=1e-5)

    path = tmp_path / "image.zarr"
    zarr.create_array(str(path), shape=image.shape, dtype=np.float32, chunks=(40, 40))[...] = image
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        items = {"a": ArrayInput(image, layout_of_file(image.shape, None, "a"), diameter=None)}
        [(name, (status, message, batch))] = list(predict_arrays(model_bytes_of(segmenter), items,
                                                           BatchOptions(kinds=("probabilities",), flips=4,
                                                                        device="cpu"), client=client))
        predict_to_zarr_on_cluster(segmenter, path, tmp_path / "many.zarr", None, block=128, probabilities=True,
                                   client=client, device="cpu", flips=4)
    np.testing.assert_allclose(zarr.open_group(str(tmp_path / "many.zarr"), mode="r")["probabilities"][...], expected,
                               atol=1e-5)
    assert (name, status, message) == ("a", "written", "")
    np.testing.assert_allclose(batch.probabilities, expected, atol=1e-3)  # float16 maps unless kept


def test_the_command_line_predicts_with_flips(tmp_path, capsys):
    segmenter = _model()
    segmenter.save(tmp_path / "m.pt")
    image, _ = blobs(64, n=6, seed=2)
    tifffile.imwrite(tmp_path / "img.tif", image)
    predict = ["predict", "--model", str(tmp_path / "m.pt"), "--image", str(tmp_path / "img.tif"), "--quiet",
               "--device", "cpu"]
    assert main([*predict, "--probabilities", str(tmp_path / "p.npy"), "--flips", "8"]) == 0
    np.testing.assert_allclose(np.load(tmp_path / "p.npy"), _probabilities(segmenter, image[None], 8), atol=1e-5)
    capsys.readouterr()
    assert main([*predict, "--probabilities", str(tmp_path / "q.npy"), "--flips", "3"]) == 2
    assert "--flips: invalid choice: 3" in capsys.readouterr().err and not (tmp_path / "q.npy").exists()
