"""nn.resize: the torch resampling used for prediction gives what functionals.scale.resample gives."""

import numpy as np
import pytest

from napari_unet.functionals.prediction import Prediction
from napari_unet.functionals.scale import resample, resample_prediction
from napari_unet.nn.resize import resample_linear


@pytest.mark.parametrize(("shape_in", "shape_out"), [((3, 64, 80), (80, 100)), ((2, 90, 70), (45, 33)),
                                                     ((50, 40), (51, 39)), ((1, 16, 16), (16, 16))])
def test_torch_resampling_equals_the_reference(shape_in, shape_out):
    array = np.random.default_rng(0).random(shape_in, dtype=np.float32) * 100
    fast = resample_linear(array, shape_out)
    assert fast.shape == shape_in[:-2] + shape_out and fast.dtype == np.float32
    np.testing.assert_allclose(fast, resample(array, shape_out), atol=1e-3)


def test_a_prediction_comes_back_at_the_image_size_either_way():
    rng = np.random.default_rng(1)
    prediction = Prediction(probabilities=rng.random((3, 40, 50), dtype=np.float32),
                            boundary=rng.random((40, 50), dtype=np.float32),
                            distance=rng.random((40, 50), dtype=np.float32), scale=1.25)
    slow = resample_prediction(prediction, (32, 40), 1.25)
    fast = resample_prediction(prediction, (32, 40), 1.25, np.float16, resize=resample_linear)
    assert fast.probabilities.shape == (3, 32, 40) and fast.distance.dtype == np.float16
    np.testing.assert_allclose(fast.probabilities, slow.probabilities, atol=2e-3)
    np.testing.assert_allclose(fast.boundary, slow.boundary, atol=2e-3)
