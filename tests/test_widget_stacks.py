"""The dock on stacks: a (Z, Y, X) stack's objects are 3D (one id across planes), a time series' per frame."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from synthetic import blobs  # noqa: E402

from napari_unet.functionals.instances import InstanceParams, instances_from_prediction  # noqa: E402
from napari_unet.functionals.instances3d import instances_3d  # noqa: E402
from napari_unet.nn.model import ModelConfig  # noqa: E402
from napari_unet.nn.segmenter import Segmenter  # noqa: E402
from napari_unet.widgets import UNetWidget  # noqa: E402

TIMEOUT = 90_000


def _stack() -> np.ndarray:
    """Three planes of blobs, each with one more blob in its top-left corner: per-plane ids would shift."""
    image, _ = blobs(64, n=6, noise=0.05)
    planes = []
    for z in range(3):
        plane = image.copy()
        plane[2 : 6 + 2 * z, 2:8] = 120
        planes.append(plane)
    return np.stack(planes)


def _predict_stack(qtbot, widget, name: str, params: InstanceParams) -> np.ndarray:
    widget.annotate_step.image_picker.set_layer(widget.viewer.layers[name])
    with qtbot.waitSignal(widget.controller.prediction_finished, timeout=TIMEOUT) as blocker:
        widget.controller.predict(params, scope="stack")
    assert blocker.args[0] == "done"
    qtbot.waitUntil(lambda: not widget.controller.is_predicting, timeout=TIMEOUT)
    return np.asarray(widget.viewer.layers[f"{name} instances"].data)


def test_stack_objects_are_3d_and_time_series_objects_per_frame(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer()
    stack = _stack()
    viewer.add_image(stack, name="stack", scale=(3.0, 1.0, 1.0))
    viewer.add_image(stack, name="movie", axis_labels=("t", "y", "x"))
    widget = UNetWidget(viewer)
    viewer.window.add_dock_widget(widget)
    model = Segmenter.create(ModelConfig(in_channels=1, n_classes=2, base_width=4, depth=2), ["background", "cell"])
    widget.train_step.load_model(model.save(tmp_path / "m.pt"))
    cache = widget.controller.session.cache
    _predict_stack(qtbot, widget, "stack", InstanceParams())
    # an untrained model: its median foreground probability splits the pixels in two
    foreground = np.stack([cache.get("stack", (z,)).prediction.foreground() for z in range(3)])
    # set through the predict step's own controls: the dock reapplies them to every prediction
    step = widget.predict_step
    step.threshold_slider.setValue(float(np.median(foreground)))
    step.min_size_spin.setValue(1)
    params = step.instance_params()

    volume = _predict_stack(qtbot, widget, "stack", params)
    predictions = [cache.get("stack", (z,)).prediction for z in range(3)]
    expected = instances_3d(predictions, params, use_instance_heads=False, z_anisotropy=3.0)
    assert expected.max() > 0
    assert np.array_equal(volume, expected)
    per_plane = np.stack([instances_from_prediction(p, params, use_instance_heads=False) for p in predictions])
    assert not np.array_equal(volume, per_plane)  # the 2D objects painted plane by plane were replaced
    spanning = [i for i in np.unique(volume[volume > 0]) if np.all(np.any(volume == i, axis=(1, 2)))]
    assert spanning, "no object keeps its id across the planes"

    # the instance sliders recompute the whole stack's 3D objects from the cache, never one plane's 2D ids
    step.min_size_spin.setValue(40)
    fewer = step.instance_params()
    expected = instances_3d(predictions, fewer, use_instance_heads=False, z_anisotropy=3.0)
    assert not np.array_equal(expected, volume)
    layer = viewer.layers["stack instances"]
    qtbot.waitUntil(lambda: np.array_equal(np.asarray(layer.data), expected), timeout=TIMEOUT)

    frames = _predict_stack(qtbot, widget, "movie", params)
    movie = [cache.get("movie", (t,)).prediction for t in range(3)]
    assert np.array_equal(frames, np.stack([instances_from_prediction(p, params, use_instance_heads=False)
                                            for p in movie]))
