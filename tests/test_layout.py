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


# --------------------------------------------------------------------------- stored layouts (files, OME-Zarr)

@pytest.mark.parametrize("shape, channel_axis, axes, ngff_shape", [
    ((20, 2, 30), 1, "yx", (2, 20, 30)),  # channels between y and x
    ((2, 20, 30), 0, "yx", (2, 20, 30)),  # channels first
    ((20, 30, 5), 2, "yx", (5, 20, 30)),  # channels last
    ((4, 20, 2, 30), 2, "zyx", (2, 4, 20, 30)),  # z stack, channels between y and x
    ((3, 4, 20, 30, 2), -1, "tzyx", (3, 2, 4, 20, 30)),  # time series of stacks, channels last
    ((3, 2, 20, 30), 1, "tyx", (3, 2, 20, 30)),  # time series, channels already in NGFF order
])
def test_stored_layouts_hold_channels_anywhere(shape, channel_axis, axes, ngff_shape):
    data = np.arange(int(np.prod(shape))).reshape(shape)
    layout = ImageLayout.ngff(shape, channel_axis=channel_axis, axes=axes)
    ci = channel_axis % len(shape)
    assert layout.labels_shape == tuple(n for i, n in enumerate(shape) if i != ci)
    assert layout.n_channels == shape[ci] and len(layout.planes()) == int(np.prod(layout.stack_shape))
    assert layout.ngff_axes == sorted(axes + "c", key="tczyx".find)
    on_disk = layout.to_ngff(data)
    assert on_disk.shape == ngff_shape
    labels = np.zeros(layout.labels_shape)
    assert layout.labels_to_ngff(labels).shape == tuple(1 if a == "c" else n for a, n in
                                                       zip(layout.ngff_axes, ngff_shape))
    # every plane, read channels first, is the data's own pixels
    plane = layout.planes()[-1]
    expected = np.moveaxis(data, ci, 0)[(slice(None), *plane)]
    np.testing.assert_array_equal(layout.image_plane(data, plane), expected)
    region = layout.image_plane(data, plane, (slice(2, 5), slice(1, 4)))
    np.testing.assert_array_equal(region, expected[:, 2:5, 1:4])
    # back from disk to where the channels were
    stored = ImageLayout.on_disk(layout.ngff_axes, on_disk.shape)
    back = stored.convert(on_disk, stored.with_channels(ci))
    np.testing.assert_array_equal(back, data)
    assert stored.with_channels(ci) == ImageLayout(shape, False, ci, axes)


def test_rgb_and_single_channels_on_disk():
    rgb = np.random.default_rng(1).integers(0, 255, (2, 10, 12, 3))
    layout = ImageLayout.ngff(rgb.shape, rgb=True, axes="zyx")
    assert layout.ngff_axes == ["c", "z", "y", "x"] and layout.to_ngff(rgb).shape == (3, 2, 10, 12)
    assert layout.to_ngff_values([2.0, 0.5, 0.5], 1.0) == [1.0, 2.0, 0.5, 0.5]
    stored = ImageLayout.on_disk(layout.ngff_axes, (3, 2, 10, 12))
    np.testing.assert_array_equal(stored.convert(layout.to_ngff(rgb), stored.with_channels(rgb=True)), rgb)
    single = ImageLayout.on_disk("cyx", (1, 10, 12))
    assert single.convert(np.zeros((1, 10, 12)), single.with_channels(None)).shape == (10, 12)
    with pytest.raises(UserInputError, match="cannot be dropped"):
        ImageLayout.on_disk("cyx", (2, 10, 12)).with_channels(None)


def test_napari_layers_keep_channels_leading_while_files_may_not():
    with pytest.raises(UserInputError, match="leading axes"):
        ImageLayout.of((20, 2, 30), channel_axis=1)
    assert ImageLayout.stored((20, 2, 30), channel_axis=1).labels_shape == (20, 30)
    assert ImageLayout.stored((20, 30, 4), channel_axis=-1).n_channels == 4
    from napari_unet.nn.volume import layout_of_file  # the CLI's --channel-axis -1 on a channels-last TIFF
    channels_last = layout_of_file((20, 30, 5), -1, "cells.tif")
    assert (channels_last.n_channels, channels_last.stack_shape, channels_last.plane_shape) == (5, (), (20, 30))


def test_bad_stored_layouts_say_what_is_wrong():
    with pytest.raises(UserInputError, match="does not exist"):
        ImageLayout.stored((20, 30, 2), channel_axis=3)
    with pytest.raises(UserInputError, match="no separate channel axis"):
        ImageLayout.stored((20, 30, 3), rgb=True, channel_axis=0)
    with pytest.raises(UserInputError, match="not 3 or 4"):
        ImageLayout.stored((20, 30, 5), rgb=True)
    with pytest.raises(UserInputError, match="2 to 4"):
        ImageLayout.ngff((2, 2, 2, 2, 20, 30))
    with pytest.raises(UserInputError, match="in this order"):
        ImageLayout.ngff((4, 20, 30), axes="yzx")
    with pytest.raises(UserInputError, match="OME-Zarr axes in their order"):
        ImageLayout.on_disk("ycx", (20, 2, 30))


class _RefusesBigReads:
    """A lazy 2D image that counts what is read and refuses any read of more than `most` pixels."""

    def __init__(self, data: np.ndarray, most: int):
        self.data, self.most, self.read = data, most, 0
        self.shape, self.dtype, self.ndim = data.shape, data.dtype, data.ndim

    def __getitem__(self, index):
        part = self.data[index]
        if part.size > self.most:
            raise AssertionError(f"read {part.shape}: more than {self.most} pixels")
        self.read += part.size
        return part


def test_training_on_a_big_plane_reads_only_around_the_annotations():
    from napari_unet.functionals.data import CROP_ABOVE_PIXELS, TRAINING_CONTEXT, prepare
    from napari_unet.functionals.normalisation import Normalisation

    size = 4096
    assert size * size > CROP_ABOVE_PIXELS
    pixels = np.random.default_rng(0).integers(100, 4000, (size, size), dtype=np.uint16)
    pixels[:, size // 2:] += 2000  # the crop alone would give other statistics than the plane
    image = _RefusesBigReads(pixels, most=2**21)  # a crop and the 1024^2 sample fit; the plane does not
    annotations = np.zeros((size, size), np.uint8)
    annotations[1000:1010, 1200:1300] = 1
    annotations[1100:1120, 1250:1260] = 2
    accepted = np.zeros((size, size), np.uint32)
    accepted[1000:1004, 1200:1210] = 1  # accepted background around an accepted object (id 2)
    accepted[1001:1003, 1202:1208] = 3
    (item,) = training_items(image, ImageLayout.of((size, size)), annotations, accepted, name="huge")
    h, w = 120 + 2 * TRAINING_CONTEXT, 100 + 2 * TRAINING_CONTEXT
    assert item.image.shape == (1, h, w) and item.annotations.shape == (h, w)
    assert item.image[0, TRAINING_CONTEXT, TRAINING_CONTEXT] == pixels[1000, 1200]
    assert item.annotations.sum() == annotations.sum() and item.instance_mask.sum() == 40
    assert image.read < size * size / 4  # the crop and the sample: a small part of the plane
    whole = Normalisation().statistics(pixels[None])
    np.testing.assert_array_equal(Normalisation().statistics(item.stats_sample), whole)
    prepared = prepare(item, Normalisation(), margin=64)
    crop = pixels[1000 - 64:1120 + 64, 1200 - 64:1300 + 64].astype(np.float32)
    np.testing.assert_allclose(prepared.image[0], (crop - whole[0, 0]) / (whole[0, 1] - whole[0, 0]), rtol=1e-5)


def test_training_items_of_an_ordinary_plane_keep_it_whole():
    image = np.random.default_rng(0).random((64, 64)).astype(np.float32)
    annotations = np.zeros((64, 64), np.uint8)
    annotations[10:12, 10:12] = 1
    (item,) = training_items(image, ImageLayout.of(image.shape), annotations)
    assert item.image.shape == (1, 64, 64) and item.stats_sample is None
