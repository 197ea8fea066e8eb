import numpy as np
import pytest

from napari_unet.errors import UserInputError
from napari_unet.functionals.normalisation import Normalisation, as_channels_first


def test_percentile_normalisation_maps_range_to_unit():
    rng = np.random.default_rng(0)
    image = rng.uniform(1000, 5000, (2, 64, 64)).astype(np.uint16)
    norm = Normalisation(1, 99)
    stats = norm.statistics(image)
    out = Normalisation.apply(image, stats)
    assert out.dtype == np.float32
    assert np.percentile(out[0], 1) == pytest.approx(0, abs=0.01)
    assert np.percentile(out[1], 99) == pytest.approx(1, abs=0.01)


@pytest.mark.parametrize("value", [7, 50.0, 60000.0])
def test_constant_image_does_not_divide_by_zero(value):
    # 50 + 1e-6 is 50 in float32: a constant channel of a multichannel image once gave NaN losses
    image = np.full((1, 8, 8), value, np.float32 if isinstance(value, float) else np.uint8)
    out = Normalisation.apply(image, Normalisation().statistics(image))
    assert np.all(np.isfinite(out))


def test_nan_is_a_clear_error():
    image = np.ones((1, 8, 8), np.float32)
    image[0, 2, 2] = np.nan
    with pytest.raises(UserInputError, match="NaN"):
        Normalisation().statistics(image)


def test_layouts():
    assert as_channels_first(np.zeros((5, 6))).shape == (1, 5, 6)
    assert as_channels_first(np.zeros((5, 6, 3))).shape == (3, 5, 6)
    assert as_channels_first(np.zeros((5, 6, 4))).shape == (3, 5, 6)  # alpha dropped
    assert as_channels_first(np.zeros((2, 5, 6)), channel_axis=0).shape == (2, 5, 6)
    channels_last = np.arange(5 * 6 * 2).reshape(5, 6, 2)  # a TIFF with channels last (--channel-axis -1)
    np.testing.assert_array_equal(as_channels_first(channels_last, channel_axis=-1), np.moveaxis(channels_last, 2, 0))
    np.testing.assert_array_equal(as_channels_first(channels_last.transpose(0, 2, 1), channel_axis=1),
                                  np.moveaxis(channels_last, 2, 0))
    with pytest.raises(UserInputError, match="3D stack"):
        as_channels_first(np.zeros((7, 5, 6)))


@pytest.mark.parametrize(("shape", "channel_axis"), [((40, 30), None), ((40, 30, 3), None), ((40, 2, 30), 1)])
def test_a_lazy_image_stays_lazy_in_channels_first_order(shape, channel_axis):
    """A zarr plane bigger than memory arrives as dask: reordering it must not read it (it was read whole)."""
    import dask.array as da

    data = np.arange(np.prod(shape), dtype=np.uint16).reshape(shape)
    lazy = as_channels_first(da.from_array(data, chunks=16), channel_axis=channel_axis)
    assert hasattr(lazy, "dask")
    np.testing.assert_array_equal(np.asarray(lazy), as_channels_first(data, channel_axis=channel_axis))
