"""Images bigger than memory: block-by-block objects equal a whole-image pass; prediction into a zarr store."""

from __future__ import annotations

import numpy as np
import torch
import zarr
from synthetic import blobs

from napari_unet.functionals.block_instances import block_instances
from napari_unet.functionals.instances import InstanceParams, instances_from_prediction
from napari_unet.functionals.metrics import instance_scores
from napari_unet.functionals.prediction import Prediction
from napari_unet.functionals.targets import ideal_prediction


def _same_objects(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal up to the numbering of the ids."""
    if not np.array_equal(a > 0, b > 0):
        return False
    pairs = np.unique(np.stack([a[a > 0], b[b > 0]]), axis=1)
    return len(set(pairs[0])) == pairs.shape[1] == len(set(pairs[1]))


def test_blocks_with_tiny_chunks_equal_a_whole_image_pass(tmp_path):
    _, labels = blobs(160, n=40, radius=(4, 9), seed=3)
    whole = ideal_prediction(labels)
    params = InstanceParams(min_size=5)
    expected = instances_from_prediction(whole, params)
    out = zarr.create_array(str(tmp_path / "inst.zarr"), shape=labels.shape, dtype=np.uint32, chunks=(24, 24),
                            fill_value=0)
    ticks = []

    def prediction_of(region):
        return Prediction(whole.probabilities[(slice(None), *region)], whole.boundary[region], whole.distance[region])

    n = block_instances(prediction_of, labels.shape, out, params, block=24, halo=24,
                        progress=lambda done, total: ticks.append((done, total)))
    chunked = out[...]
    assert n == expected.max() == len(np.unique(chunked)) - 1  # ids unique across blocks
    assert _same_objects(chunked, expected)  # no object cut at a block border
    assert ticks[-1] == (49, 49)
    # with a halo smaller than the objects, objects are cut: the test would see it
    small = zarr.zeros(shape=labels.shape, dtype=np.uint32, chunks=(24, 24))
    block_instances(prediction_of, labels.shape, small, params, block=24, halo=2)
    assert not _same_objects(small[...], expected)


def test_predict_to_zarr_matches_the_whole_image_prediction(tmp_path):
    from napari_unet.nn.chunked import predict_to_zarr
    from napari_unet.nn.model import ModelConfig
    from napari_unet.nn.segmenter import Segmenter

    image, _ = blobs(150, n=30, seed=4)
    torch.manual_seed(5)  # an untrained model: some initialisations make fewer than 10 objects
    segmenter = Segmenter.create(ModelConfig(base_width=4, depth=2), ["background", "cell"])
    lazy = zarr.create_array(str(tmp_path / "image.zarr"), shape=(1, 150, 150), dtype=np.float32, chunks=(1, 40, 40))
    lazy[0] = image
    whole = segmenter.predict(image[None], out_dtype=np.float16)
    # an untrained model: its brightest fifth of foreground makes small objects (half would percolate)
    params = InstanceParams(threshold=float(np.quantile(whole.foreground(), 0.8)), min_size=3)
    expected = instances_from_prediction(whole, params, use_instance_heads=False)
    stages = []
    n = predict_to_zarr(segmenter, lazy, tmp_path / "out.zarr", params, block=48, margin=32, halo=40,
                        probabilities=True, progress=lambda stage, done, total: stages.append(stage))
    store = zarr.open_group(str(tmp_path / "out.zarr"), mode="r")
    assert sorted(store.array_keys()) == ["instances", "probabilities", "semantic"]  # scratch maps removed
    assert store["probabilities"].shape == (2, 150, 150) and store["semantic"].chunks == (48, 48)
    assert np.mean(store["semantic"][...] == whole.semantic()) > 0.99
    instances = store["instances"][...]
    assert n == instances.max() > 10
    assert instance_scores([expected], [instances], (0.5,)).ap[0.5] >= 0.95
    assert {"network", "objects"} <= set(stages)


def test_blocks_are_resampled_to_the_networks_object_size_like_a_whole_image(tmp_path):
    from napari_unet.io.pretrained import resolve
    from napari_unet.nn.chunked import predict_to_zarr
    from napari_unet.nn.segmenter import Segmenter

    image, _ = blobs(120, n=20, seed=6)
    segmenter = Segmenter.load(resolve("nuclei"))  # works at 20 px objects
    segmenter.object_diameter = 10.0  # ... so these 10 px objects are seen 2x larger
    whole = segmenter.predict(image[None]).foreground()
    unscaled = segmenter.predict(image[None], diameter=20.0).foreground()
    predict_to_zarr(segmenter, image[None], tmp_path / "out.zarr", None, block=40, margin=24, probabilities=True)
    chunked = zarr.open_group(str(tmp_path / "out.zarr"), mode="r")["probabilities"][1]
    scale_matters = np.abs(whole - unscaled).mean()
    assert scale_matters > 0.01
    assert np.abs(chunked - whole).mean() < scale_matters / 5


def test_the_store_holds_a_pyramid_of_each_output_for_browsing(tmp_path):
    from napari_unet.io.pyramid import pyramid_depth
    from napari_unet.nn.chunked import output_levels, predict_to_zarr
    from napari_unet.nn.model import ModelConfig
    from napari_unet.nn.segmenter import Segmenter

    assert [pyramid_depth((n, 10)) for n in (1024, 1025, 2048, 32768)] == [0, 1, 1, 5]
    image, _ = blobs(150, n=30, seed=4)
    image = image[:, :131]  # odd sizes: levels round up; blocks of 48 are not multiples of the level steps
    torch.manual_seed(5)
    segmenter = Segmenter.create(ModelConfig(base_width=4, depth=2), ["background", "cell"])
    whole = segmenter.predict(image[None], out_dtype=np.float16)
    params = InstanceParams(threshold=float(np.quantile(whole.foreground(), 0.8)), min_size=3)
    predict_to_zarr(segmenter, image[None], tmp_path / "out.zarr", params, block=48, margin=32, halo=40,
                    probabilities=True, coarsest=40)
    store = zarr.open_group(str(tmp_path / "out.zarr"), mode="r")
    multiscales = {m["name"]: m for m in store.attrs["ome"]["multiscales"]}
    assert set(multiscales) == {"semantic", "instances", "probabilities"}
    for name in multiscales:
        levels = output_levels(store, name)
        assert [level.shape[-2:] for level in levels] == [(150, 131), (75, 66), (38, 33)]
        assert [d["path"] for d in multiscales[name]["datasets"]] == [level.path for level in levels]
        assert multiscales[name]["datasets"][2]["coordinateTransformations"][0]["scale"][-2:] == [4.0, 4.0]
        full = levels[0][...]
        for k, level in enumerate(levels[1:], start=1):  # nearest pixel: labels stay labels
            assert np.array_equal(level[...], full[..., :: 2**k, :: 2**k])
    assert store["instances"][...].max() > 1
