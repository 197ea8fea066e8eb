"""Sample data: images plus sparse scribbles, loadable in a real viewer."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from napari_unet import conventions as c
from napari_unet.io.resources import read_tif, resource_path
from napari_unet.napari.sample_data import em_sample, nuclei_sample

SAMPLES = {
    "nuclei": (nuclei_sample, ["background", "nucleus"]),
    "em": (em_sample, ["membrane (background)", "cell"]),
}


@pytest.mark.parametrize("key", sorted(SAMPLES))
def test_sample_layers(key):
    func, class_names = SAMPLES[key]
    layers = func()
    assert [t for _, _, t in layers] == ["image", "labels"]
    (img, img_kw, _), (lab, lab_kw, _) = layers
    assert img.ndim == 2 and img.shape == lab.shape
    assert lab.dtype == np.uint8
    values = set(np.unique(lab).tolist())
    assert values == {0, 1, 2}, values
    annotated = (lab > 0).mean()
    assert 0 < annotated < 0.10, annotated
    assert lab_kw["name"] == c.layer_name(img_kw["name"], c.ROLE_ANNOTATIONS)
    meta = lab_kw["metadata"][c.METADATA_KEY]
    assert meta["role"] == c.ROLE_ANNOTATIONS
    assert meta["image"] == img_kw["name"]
    assert meta["class_names"] == class_names
    cmap = lab_kw["colormap"]
    assert cmap[0][3] == 0 and cmap[None][3] == 0
    assert tuple(cmap[1]) == c.class_color(0) and tuple(cmap[2]) == c.class_color(1)


def test_scribbles_agree_with_ground_truth():
    nuc = read_tif("nuclei_dsb2018_scribbles.tif")
    inst = read_tif("nuclei_dsb2018_instances.tif")
    assert np.all(inst[nuc == 2] > 0) and np.all(inst[nuc == 1] == 0)
    assert len(np.unique(inst[nuc == 2])) >= 6  # strokes in several nuclei
    em = read_tif("em_isbi2012_scribbles.tif")
    gt = read_tif("em_isbi2012_labels.tif")
    assert np.all(gt[em == 1] == 0) and np.all(gt[em == 2] == 255)  # membranes are background


def test_scribbles_reproducible():
    """resources/make_scribbles.py redraws exactly the shipped scribbles."""
    spec = importlib.util.spec_from_file_location(
        "_make_scribbles", resource_path("make_scribbles.py")
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    np.testing.assert_array_equal(
        mod.nuclei_scribbles(read_tif("nuclei_dsb2018_instances.tif")),
        read_tif("nuclei_dsb2018_scribbles.tif"),
    )
    np.testing.assert_array_equal(
        mod.em_scribbles(read_tif("em_isbi2012_labels.tif")),
        read_tif("em_isbi2012_scribbles.tif"),
    )


@pytest.mark.parametrize("key", sorted(SAMPLES))
def test_open_sample_in_viewer(make_napari_viewer, napari_unet_plugin, key):
    from napari.layers import Image, Labels

    viewer = make_napari_viewer()
    viewer.open_sample("napari-unet", key)
    assert len(viewer.layers) == 2
    image, labels = viewer.layers
    assert isinstance(image, Image) and isinstance(labels, Labels)
    assert labels.name == c.layer_name(image.name, c.ROLE_ANNOTATIONS)
    assert labels.metadata[c.METADATA_KEY]["role"] == c.ROLE_ANNOTATIONS
    # class colours are shown: background grey, class 2 its own colour, 0 transparent
    np.testing.assert_allclose(labels.get_color(1), c.class_color(0), atol=1e-3)
    np.testing.assert_allclose(labels.get_color(2), c.class_color(1), atol=1e-3)
    assert labels.get_color(0) is None or labels.get_color(0)[3] == 0
