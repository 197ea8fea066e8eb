"""Channels that napari opened as separate layers, combined as one image's channels (napari.channels)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")

from napari.components import ViewerModel  # noqa: E402

from napari_unet import conventions as c  # noqa: E402
from napari_unet.errors import UserInputError  # noqa: E402
from napari_unet.napari import channels as ch  # noqa: E402
from napari_unet.napari import layers as lb  # noqa: E402


@pytest.fixture
def viewer():
    return ViewerModel()


def _two_channels(viewer, shape=(2, 3, 24, 32), name="cells"):
    data = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    layers = viewer.add_image(data, channel_axis=0, name=name, scale=(2.0, 0.5, 0.5), translate=(0, 10, 20))
    return data, layers


def test_layers_opened_as_channels_are_detected_and_combined(viewer):
    data, layers = _two_channels(viewer)
    viewer.add_image(np.zeros((3, 24, 32), np.float32), name="other")  # same shape, another name
    assert [layer.name for layer in layers] == ["cells", "cells [1]"]
    assert ch.detected_groups(viewer) == [list(layers)]
    assert ch.group_of(viewer, viewer.layers["other"]) is None

    combined = ch.combine_channels(viewer, list(layers))
    assert combined.name == "cells (2 channels)" and not combined.visible
    assert tuple(combined.data.shape) == (2, 3, 24, 32)
    assert ch.combine_channels(viewer, list(layers)) is combined  # not added twice
    # the channels are no longer images of their own; the combined one is
    assert [layer.name for layer in lb.image_layers(viewer)] == ["other", "cells (2 channels)"]
    assert ch.detected_groups(viewer) == []
    layout = lb.layout_in(viewer, combined)
    assert (layout.channel_axis, layout.labels_shape, layout.n_channels) == (0, (3, 24, 32), 2)
    np.testing.assert_array_equal(lb.image_plane(combined, layout, (1,)), data[:, 1])
    np.testing.assert_array_equal(lb.image_plane(combined, layout, (2,), (slice(4, 8), slice(0, 5))),
                                  data[:, 2, 4:8, :5])
    # labels lie on the first channel's pixels
    scale, translate = lb.labels_scale_translate(combined, layout)
    assert (scale, translate) == ([2.0, 0.5, 0.5], [0.0, 10.0, 20.0])
    annotations = lb.paired_labels(viewer, combined, c.ROLE_ANNOTATIONS, layout, dtype=np.uint8)
    lb.set_meta(annotations, channel_axis=0)
    annotations.data[1, :4] = 1
    annotations.data[1, -4:] = 2
    items = lb.training_items(viewer)
    assert len(items) == 1 and items[0].image.shape == (2, 24, 32)
    np.testing.assert_array_equal(items[0].image, data[:, 1])
    # the viewer's plane on display is the same for the channels and the combined image
    viewer.dims.set_point(viewer.dims.ndim - 3, 4.0)  # world z = 4 -> plane 2 at z scale 2
    assert lb.current_plane(viewer, combined, layout) == (2,)


def test_layers_of_one_file_are_grouped_by_path_and_selected_layers_in_order(viewer):
    from napari.layers import Image
    from napari.layers._source import layer_source

    with layer_source(path="/data/plate_A1.tif"):
        first = Image(np.zeros((16, 16), np.uint16), name="DAPI")
        second = Image(np.ones((16, 16), np.uint16), name="GFP")
    for layer in (first, second):
        viewer.add_layer(layer)
    assert ch.detected_groups(viewer) == [[first, second]]
    combined = ch.combine_channels(viewer, [second, first], name="A1")
    assert lb.meta(combined)["channel_layers"] == ["GFP", "DAPI"]
    np.testing.assert_array_equal(np.asarray(combined.data[0]), 1)


def test_mismatched_channels_are_refused_with_a_clear_message(viewer):
    a = viewer.add_image(np.zeros((24, 32), np.float32), name="a")
    b = viewer.add_image(np.zeros((24, 30), np.float32), name="b")
    with pytest.raises(UserInputError, match=r"'b' has shape \(24, 30\) but 'a' has \(24, 32\)"):
        ch.combine_channels(viewer, [a, b])
    shifted = viewer.add_image(np.zeros((24, 32), np.float32), name="shifted", translate=(3, 0))
    with pytest.raises(UserInputError, match="not placed like 'a'"):
        ch.combine_channels(viewer, [a, shifted])
    rgb = viewer.add_image(np.zeros((24, 32, 3), np.uint8), name="rgb", rgb=True)
    with pytest.raises(UserInputError, match="RGB"):
        ch.combine_channels(viewer, [a, rgb])
    with pytest.raises(UserInputError, match="at least two"):
        ch.combine_channels(viewer, [a])
    assert len(viewer.layers) == 4  # nothing added


def test_channels_that_are_lazy_stay_lazy(viewer):
    import dask.array as da

    lazy = [da.from_array(np.full((2, 64, 64), k, np.uint16), chunks=(1, 32, 32)) for k in range(3)]
    layers = [viewer.add_image(array, name=f"z [{k}]") for k, array in enumerate(lazy)]
    combined = ch.combine_channels(viewer, layers)
    assert isinstance(combined.data, da.Array) and combined.data.chunks[-1] == (32, 32)
    layout = lb.layout_in(viewer, combined)
    assert lb.image_plane(combined, layout, (1,))[:, 0, 0].tolist() == [0, 1, 2]
