"""The fault matrix's image rows in the dock (docs/faults.md): paint two classes, Train, Predict, Accept
on each odd image in a real viewer; each step works or ends in one notification naming the fault.
"""

from __future__ import annotations

import numpy as np
import pytest
from dock_helpers import TIMEOUT, load_untrained_model, tiny_training

from napari_unet.widgets import UNetWidget

RNG = np.random.default_rng(0)
NOISE = RNG.random((64, 64)).astype(np.float32)
NAN_OR_INF = f"'img' has {np.count_nonzero(NOISE > 0.9)} NaN or infinite values: replace them"  # at the click

# name: (array, layer options, the error Train and Predict end with: None = they work)
IMAGES = {
    "NaN": (np.where(NOISE > 0.9, np.nan, NOISE).astype(np.float32), {}, NAN_OR_INF),
    "Inf": (np.where(NOISE > 0.9, -np.inf, NOISE).astype(np.float32), {}, NAN_OR_INF),
    "4-D": (RNG.random((2, 3, 32, 32)).astype(np.float32), {}, None),
    "1x1": (np.ones((1, 1), np.float32), {}, None),
    "all zero": (np.zeros((64, 64), np.float32), {}, None),
    "float16": (NOISE.astype(np.float16), {}, None),
    "bool": (NOISE > 0.5, {}, None),
    "int64": ((NOISE * 1000).astype(np.int64), {}, None),
    "one-frame series": (NOISE[None], {}, None),
    "RGB": ((NOISE[..., None] * [255, 128, 64]).astype(np.uint8), {"rgb": True}, None),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(IMAGES))
def test_train_predict_accept(name, make_napari_viewer, qtbot, tmp_path):
    data, options, error = IMAGES[name]
    viewer = make_napari_viewer()
    widget = UNetWidget(viewer)
    viewer.window.add_dock_widget(widget)
    tiny_training(widget)
    viewer.add_image(data, name="img", **options)
    qtbot.waitUntil(lambda: "img annotations" in viewer.layers, timeout=5_000)
    annotations = viewer.layers["img annotations"]
    painted = np.ones(annotations.data.shape, np.uint8)
    painted.reshape(-1)[painted.size // 2:] = 2
    if painted.size == 1:
        painted[...] = 2  # one pixel holds one class: training must refuse it
    annotations.data = painted
    messages = widget.controller.messages

    with qtbot.waitSignal(widget.controller.training_finished, timeout=TIMEOUT, raising=False) as trained:
        widget.train()
    if painted.size == 1:
        assert "only one class" in messages.errors()[-1]
        load_untrained_model(widget, tmp_path)
    elif error:
        assert not trained.signal_triggered and not widget.controller.is_training
        assert error in messages.errors()[-1]
        load_untrained_model(widget, tmp_path)
    else:
        assert trained.args == [True], messages.log

    if error:
        widget.predict_step.predict()
        assert not widget.controller.is_predicting and error in messages.errors()[-1]
        widget.accept()
        assert "predict first" in messages.errors()[-1]
    else:
        with qtbot.waitSignal(widget.controller.prediction_finished, timeout=TIMEOUT) as predicted:
            widget.predict_step.predict()
        assert predicted.args == ["done"], messages.log
        semantic = viewer.layers["img semantic"].data
        assert semantic.shape == annotations.data.shape and np.any(np.asarray(semantic) > 0)  # the plane shown
        widget.accept()
        assert messages.last[0] in ("info", "warning") and "accepted" in messages.last[1]
    assert not [text for _, text in messages.log if "failed (" in text]  # no bug report among them
