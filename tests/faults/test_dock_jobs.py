"""Faults the dock meets while a job runs or after it: layers renamed under a job, nothing left to suggest.

Each runs the real dock in a real napari viewer (under `xvfb-run -a`) with a tiny real model.
"""

from __future__ import annotations

import numpy as np
from dock_helpers import IMAGE, TIMEOUT, load_untrained_model, tiny_training

from napari_unet import conventions as c
from napari_unet.widgets import UNetWidget


def _dock(make_napari_viewer, data, name="stack"):
    viewer = make_napari_viewer()
    widget = UNetWidget(viewer)
    viewer.window.add_dock_widget(widget)
    tiny_training(widget)
    viewer.add_image(data, name=name)
    return viewer, widget


def test_renaming_the_image_while_its_stack_is_predicted_keeps_every_plane(make_napari_viewer, qtbot, tmp_path):
    """The worker's results carry the name the image had at the start: none may be dropped after a rename."""
    data = np.random.default_rng(0).random((5, 64, 64)).astype(np.float32)
    viewer, widget = _dock(make_napari_viewer, data)
    load_untrained_model(widget, tmp_path)
    controller = widget.controller

    def rename_once(result) -> None:  # the user renames it right after the first plane is painted
        controller.plane_predicted.disconnect(rename_once)
        viewer.layers["stack"].name = "renamed"

    controller.plane_predicted.connect(rename_once)
    with qtbot.waitSignal(controller.prediction_finished, timeout=TIMEOUT) as finished:
        widget.predict_step.predict("stack")
    assert finished.args == ["done"]
    semantic = controller.paired(c.ROLE_SEMANTIC, viewer.layers["renamed"])
    assert semantic is not None
    assert all(np.all(semantic.data[z] > 0) for z in range(5)), "planes predicted after the rename were lost"
    assert sorted(controller.session.cache.planes("renamed")) == [(z,) for z in range(5)]


def test_an_image_renamed_while_training_is_remembered_as_trained_on_under_its_new_name(nuclei_dock, qtbot):
    viewer, widget = nuclei_dock
    widget.train_step.steps_spin.setValue(0)
    widget.train_step.budget_spin.setValue(0)  # until stopped
    widget.train()
    qtbot.waitUntil(lambda: widget.controller.last_progress is not None, timeout=TIMEOUT)
    viewer.layers[IMAGE].name = "renamed"
    with qtbot.waitSignal(widget.controller.training_finished, timeout=TIMEOUT) as finished:
        widget.stop()
    assert finished.args == [True]
    assert widget.controller.session.trained_on == {"renamed"}


def test_suggest_with_every_pixel_annotated_says_only_that(make_napari_viewer, qtbot, tmp_path):
    """No "starting over" promise when there is no open region to start over with."""
    viewer, widget = _dock(make_napari_viewer, np.random.default_rng(1).random((48, 48)).astype(np.float32), "img")
    qtbot.waitUntil(lambda: "img annotations" in viewer.layers, timeout=5_000)
    load_untrained_model(widget, tmp_path)
    with qtbot.waitSignal(widget.controller.prediction_finished, timeout=TIMEOUT):
        widget.predict_step.predict()
    annotations = viewer.layers["img annotations"]
    annotations.data = np.ones_like(annotations.data)
    before = len(widget.controller.messages.log)
    widget.suggest()
    said = widget.controller.messages.log[before:]
    assert said == [("error", "every predicted region is already annotated or accepted: predict another plane or image")]
