"""What the dock enables and says in each state a user passes through, in a real napari viewer
(run under a virtual display: `xvfb-run -a`): before any prediction, while the first model trains,
after Stop and after a run that reached its budget."""

from __future__ import annotations

import re

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from dock_helpers import IMAGE, TIMEOUT, load_untrained_model, predict  # noqa: E402

from napari_unet import conventions as c  # noqa: E402
from napari_unet.napari import layers as lb  # noqa: E402


def _correct_tools(step):
    return [step.pick_button, step.merge_button, step.split_button, step.draw_line_button,
            step.split_line_button, step.remove_small_button, step.relabel_button]


def test_correct_step_enables_its_tools_once_there_are_objects(nuclei_dock, qtbot, tmp_path):
    viewer, widget = nuclei_dock
    step = widget.correct_step
    # nothing predicted: the tools cannot work, so they are off, and the step says what to do first
    assert not any(button.isEnabled() for button in _correct_tools(step))
    assert not step.accept_button.isEnabled() and not step.clear_accepted_button.isEnabled()
    assert not step.predict_first.isHidden() and "Predict first" in step.predict_first.text()
    # predicted: every tool on, the hint gone
    load_untrained_model(widget, tmp_path)
    assert predict(qtbot, widget, "plane") == "done"
    assert all(button.isEnabled() for button in _correct_tools(step))
    assert step.accept_button.isEnabled()
    assert step.predict_first.isHidden()
    assert not step.clear_accepted_button.isEnabled()  # nothing accepted yet
    step.accept("plane")
    assert step.clear_accepted_button.isEnabled()
    # the instance layer deleted by hand: the object tools go off again (Accept needs it too)
    viewer.layers.remove(widget.controller.paired(c.ROLE_INSTANCES))
    qtbot.waitUntil(lambda: not step.merge_button.isEnabled(), timeout=5_000)
    assert not step.accept_button.isEnabled()
    assert not step.predict_first.isHidden()


def test_train_step_says_what_happens_while_training_and_after_stop(nuclei_dock, qtbot):
    _, widget = nuclei_dock
    step = widget.train_step
    step.steps_spin.setValue(0)  # until Stop (the 60 s budget is far away)
    # no model yet: the model line says what Train will start from (the sample is one-channel: 'nuclei')
    assert "none yet: Train fine-tunes the shipped 'nuclei' model" in step.model_label.text()
    with qtbot.waitSignal(widget.controller.training_progress, timeout=TIMEOUT):
        widget.train()
    # the first model trains: the model line says so instead of "no model yet"
    assert "first one is training" in step.model_label.text()
    with qtbot.waitSignal(widget.controller.training_finished, timeout=TIMEOUT) as finished:
        widget.stop()
    assert finished.args == [True]
    # Stop keeps the model: the bar says "stopped", and nothing says time is left any more
    assert step.train_progress.format() == "stopped (model kept)"
    assert "left" not in step.train_stats.text() and step.train_stats.text().startswith("step ")
    assert "depth" in step.model_label.text()
    # the worker's last records can reach the dock after the end: they do not bring the time left back
    qtbot.wait(200)  # past the 10-a-second limit on label updates
    widget.controller.training_progress.emit(widget.controller.last_progress)
    assert step.train_progress.format() == "stopped (model kept)" and "left" not in step.train_stats.text()
    # a run that reaches its step limit is "done", with no time left either
    step.steps_spin.setValue(2)
    with qtbot.waitSignal(widget.controller.training_finished, timeout=TIMEOUT) as finished:
        widget.train()
    assert finished.args == [True]
    assert step.train_progress.format() == "done"
    assert "left" not in step.train_stats.text()


def test_result_layers_do_not_take_the_brush_from_the_annotations(nuclei_dock, qtbot, tmp_path):
    # napari makes every new layer the active one: the semantic, instances, uncertainty and accepted
    # layers would take the layer controls, and the next strokes would not go into the annotations
    viewer, widget = nuclei_dock
    widget.annotate_step.annotate()
    annotations = widget.controller.paired(c.ROLE_ANNOTATIONS)
    assert viewer.layers.selection.active is annotations and annotations.mode == "paint"
    load_untrained_model(widget, tmp_path)
    assert predict(qtbot, widget, "plane") == "done"
    for role in (c.ROLE_SEMANTIC, c.ROLE_INSTANCES, c.ROLE_UNCERTAINTY):
        assert any(lb.role_of(layer) == role for layer in viewer.layers), role
    assert viewer.layers.selection.active is annotations
    # the message line moves on from the last message to what the prediction gave and what to do next
    level, text = widget.controller.messages.log[-1]
    assert level == "info" and re.match(rf"predicted '{re.escape(IMAGE)}' \(the plane on display\): \d+ objects?\. ", text)
    assert "step 4" in text
    widget.correct_step.accept("plane")
    assert widget.controller.paired(c.ROLE_ACCEPTED) is not None
    assert viewer.layers.selection.active is annotations and annotations.mode == "paint"


def test_predict_offers_the_whole_stack_only_for_a_stack(nuclei_dock, qtbot):
    viewer, widget = nuclei_dock
    scope = widget.predict_step.scope_combo
    assert not scope.isEnabled()  # one plane: "whole stack" means nothing
    stack = viewer.add_image(np.random.default_rng(0).random((3, 32, 32)).astype(np.float32), name="stack")
    widget.annotate_step.image_picker.set_layer(stack)
    qtbot.waitUntil(scope.isEnabled, timeout=5_000)
    widget.annotate_step.image_picker.set_layer(viewer.layers[IMAGE])
    qtbot.waitUntil(lambda: not scope.isEnabled(), timeout=5_000)
