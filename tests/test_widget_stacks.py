"""The dock on stacks and multichannel images (run under `xvfb-run -a`).

A stack is trained and predicted plane by plane, accepted whole, cancelled midway; a (Z, Y, X) stack's
objects are 3D (one id across planes), a time series' per frame; images with a channel axis and RGB
images are annotated without their channels, and images of different channel counts cannot train one model.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from dock_helpers import TIMEOUT, load_untrained_model, predict, tiny_training, train  # noqa: E402
from synthetic import blobs  # noqa: E402

from napari_unet import conventions as c  # noqa: E402
from napari_unet.functionals.instances import InstanceParams, instances_from_prediction  # noqa: E402
from napari_unet.functionals.instances3d import instances_3d  # noqa: E402
from napari_unet.napari import layers as lb  # noqa: E402
from napari_unet.widgets import UNetWidget  # noqa: E402


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
    torch.manual_seed(0)  # an untrained model, the same whatever ran before: some make no object span planes
    load_untrained_model(widget, tmp_path)
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


def test_stack_multichannel_and_rgb(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    rng = np.random.default_rng(0)
    stack = rng.random((3, 64, 64)).astype(np.float32)
    viewer.add_image(stack, name="stack")
    widget = UNetWidget(viewer)
    viewer.window.add_dock_widget(widget)
    tiny_training(widget, steps=2)
    qtbot.waitUntil(lambda: "stack annotations" in viewer.layers, timeout=5_000)
    annotations = viewer.layers["stack annotations"]
    assert annotations.data.shape == (3, 64, 64)
    annotations.data[0, 5:10, 5:10] = 1
    annotations.data[0, 30:35, 30:35] = 2
    annotations.data[2, 40:45, 10:15] = 2
    annotations.data[2, 50:55, 50:55] = 1
    items = lb.training_items(viewer)
    assert [i.name for i in items] == ["stack plane 0", "stack plane 2"]
    assert [(i.source, i.plane) for i in items] == [("stack", (0,)), ("stack", (2,))]
    assert all(i.image.shape == (1, 64, 64) for i in items)
    # the plane on display follows the dims slider
    viewer.dims.set_current_step(0, 2)
    image = viewer.layers["stack"]
    assert lb.current_plane(viewer, image, lb.layout_in(viewer, image)) == (2,)
    assert train(qtbot, widget) is True
    widget.predict_step.prob_check.setChecked(True)
    assert predict(qtbot, widget, "stack") == "done"
    semantic = viewer.layers["stack semantic"]
    assert all(np.all(semantic.data[z] > 0) for z in range(3))
    probability = viewer.layers["stack probability object"]  # one layer per class but background
    assert probability.data.shape == (3, 64, 64) and 0 < probability.data.max() <= 1
    assert lb.role_of(probability) == c.ROLE_PROBABILITIES
    assert widget.annotate_step.image_picker.findText("stack probability object") < 0  # not offered as an image
    # accept every predicted plane at once; training then uses all three planes
    widget.correct_step.accept("image")
    accepted = viewer.layers["stack accepted"]
    assert all(np.all(accepted.data[z] > 0) for z in range(3))
    assert len(lb.training_items(viewer)) == 3
    widget.correct_step.clear_accepted("image")
    assert not np.any(accepted.data)
    # cancel: planes already done are kept, the rest is not predicted
    semantic.data[:] = 0
    with qtbot.waitSignal(widget.controller.prediction_finished, timeout=TIMEOUT) as blocker:
        widget.predict_step.predict("stack")
        widget.predict_step.cancel_prediction()
    assert blocker.args == ["cancelled"] and not widget.controller.is_predicting
    assert not np.all(semantic.data > 0)
    # out of GPU memory while predicting: advice, not a traceback
    import torch

    def oom(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    widget.controller.session.segmenter.predict = oom
    assert predict(qtbot, widget) == "failed"
    assert "out of GPU memory" in widget.controller.messages.errors()[-1] and "tile size" in widget.controller.messages.errors()[-1]
    del widget.controller.session.segmenter.predict

    # a channel axis: (C, H, W) image, annotations without the channel axis
    viewer.add_image(rng.random((2, 48, 48)).astype(np.float32), name="two channels")
    widget.annotate_step.image_picker.set_layer(viewer.layers["two channels"])
    widget.annotate_step.channel_combo.setCurrentIndex(widget.annotate_step.channel_combo.findData(0))
    two = viewer.layers["two channels annotations"]
    assert two.data.shape == (48, 48) and lb.meta(two)["channel_axis"] == 0
    two.data[:5] = 1
    two.data[-5:] = 2
    # RGB
    viewer.add_image((rng.random((40, 40, 3)) * 255).astype(np.uint8), name="rgb", rgb=True)
    widget.annotate_step.image_picker.set_layer(viewer.layers["rgb"])
    qtbot.waitUntil(lambda: "rgb annotations" in viewer.layers, timeout=5_000)
    rgb = viewer.layers["rgb annotations"]
    assert rgb.data.shape == (40, 40)
    rgb.data[:4] = 1
    rgb.data[-4:] = 2
    shapes = sorted(i.image.shape for i in lb.training_items(viewer))
    assert shapes == [(1, 64, 64)] * 3 + [(2, 48, 48), (3, 40, 40)]  # accepted planes are annotated now
    # images with different channel counts cannot train one model: a notification says so
    widget.train()
    assert not widget.controller.is_training
    assert "channel" in widget.controller.messages.errors()[-1]
