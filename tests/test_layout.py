"""ImageLayout: napari's axis convention (channels, RGB, stack planes) read in one place."""

from __future__ import annotations

import numpy as np
import pytest

from napari_unet.errors import UserInputError
from napari_unet.functionals.data import training_items
from napari_unet.functionals.layout import ImageLayout, plane_label


def test_axis_roles_of_stacks_channels_and_rgb():
    stack = ImageLayout.of((4, 3, 20, 30))
    assert (stack.labels_shape, stack.stack_shape, stack.plane_shape, stack.n_channels) == \
        ((4, 3, 20, 30), (4, 3), (20, 30), 1)
    assert stack.planes()[:2] == [(0, 0), (0, 1)] and len(stack.planes()) == 12
    channels = ImageLayout.of((4, 2, 20, 30), channel_axis=1)
    assert (channels.labels_shape, channels.stack_shape, channels.n_channels) == ((4, 20, 30), (4,), 2)
    assert ImageLayout.of((4, 2, 20, 30), channel_axis=-3).channel_axis == 1
    rgba = ImageLayout.of((5, 20, 30, 4), rgb=True, channel_axis=0)  # RGB wins over a channel axis
    assert (rgba.channel_axis, rgba.labels_shape, rgba.n_channels, rgba.planes()[-1]) == (None, (5, 20, 30), 3, (4,))
    assert ImageLayout.of((20, 30)).planes() == [()]


def test_bad_layouts_say_what_is_wrong():
    with pytest.raises(UserInputError, match="two spatial axes"):
        ImageLayout.of((30,), name="line")
    with pytest.raises(UserInputError, match="not height or width"):
        ImageLayout.of((2, 20, 30), channel_axis=1)


def test_planes_are_read_one_at_a_time_channels_first():
    data = np.arange(3 * 2 * 4 * 5).reshape(3, 2, 4, 5)
    layout = ImageLayout.of(data.shape, channel_axis=1)
    plane = layout.image_plane(data, (2,))
    np.testing.assert_array_equal(plane, data[2])
    region = layout.image_plane(data, (1,), (slice(1, 3), slice(0, 2)))
    assert region.shape == (2, 2, 2)
    rgb = np.zeros((4, 5, 4))
    rgb[..., 1] = 7
    assert ImageLayout.of(rgb.shape, rgb=True).image_plane(rgb, ()).shape == (3, 4, 5)
    assert ImageLayout.of(rgb.shape, rgb=True).image_plane(rgb, ())[1].max() == 7


def test_planes_with_data_and_their_names():
    layout = ImageLayout.of((3, 2, 8, 8))
    labels = np.zeros(layout.labels_shape, np.uint8)
    labels[1, 0, 2, 2] = labels[2, 1, 0, 0] = 1
    assert list(layout.planes_with_data(labels)) == [(1, 0), (2, 1)]
    assert plane_label((10,)) == "plane 10" and plane_label((2, 10)) == "plane 2, 10" and plane_label(()) == ""


def test_training_items_from_a_layout_copy_the_planes_they_use():
    image = np.random.default_rng(0).random((3, 2, 8, 8)).astype(np.float32)
    layout = ImageLayout.of(image.shape, channel_axis=1)
    annotations = np.zeros((3, 8, 8), np.uint8)
    annotations[2, :2] = 1
    annotations[2, -2:] = 2
    accepted = np.zeros_like(annotations, dtype=np.uint32)
    accepted[2, 3:5] = 1
    (item,) = training_items(image, layout, annotations, accepted, name="cells")
    assert (item.name, item.source, item.plane, item.image.shape) == ("cells plane 2", "cells", (2,), (2, 8, 8))
    assert item.instance_mask.sum() == 16
    annotations[2] = 0  # painting on after training started changes nothing for the trainer
    assert item.annotations.any()
    with pytest.raises(UserInputError, match="do not match"):
        training_items(image, layout, annotations[0], name="cells")
