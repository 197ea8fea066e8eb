"""The annotate step and the annotations layers in a real napari viewer (run under `xvfb-run -a`).

The class editor, adopting the sample's own scribbles, strokes kept when their layer is deleted
mid-training, and Ctrl+Z of an accept taking back the accepted region too.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from dock_helpers import IMAGE, TIMEOUT  # noqa: E402

from napari_unet import conventions as c  # noqa: E402
from napari_unet.napari import layers as lb  # noqa: E402
from napari_unet.widgets import UNetWidget  # noqa: E402


def test_class_editor_edits_layer_and_refuses_to_drop_painted_class(nuclei_dock):
    viewer, widget = nuclei_dock
    annotations = viewer.layers[c.layer_name(IMAGE, c.ROLE_ANNOTATIONS)]
    widget.annotate_step.class_editor.add_class()
    assert lb.meta(annotations)["class_names"] == ["background", "nucleus", "class 2"]
    annotations.data[5, 5] = 3  # napari's status bar names the class under the cursor
    assert annotations.get_status((5, 5), world=True)["value"] == "3; class: class 2"
    annotations.data[5, 5] = 0
    table = widget.annotate_step.class_editor.table
    for row in range(3):  # the colour swatches sit in their own column, clear of the label values
        swatch = table.cellWidget(row, 1)
        assert swatch.geometry().left() >= table.columnViewportPosition(1)
        assert table.columnViewportPosition(1) >= table.columnWidth(0) > 0
    assert 3 in annotations.colormap.color_dict
    widget.annotate_step.class_editor.table.selectRow(2)
    assert annotations.selected_label == 3
    annotations.data[0, 0] = 3
    widget.annotate_step.remove_last_class()
    assert "painted" in widget.controller.messages.errors()[-1]
    assert len(widget.annotate_step.class_editor.names) == 3
    annotations.data[0, 0] = 0
    widget.annotate_step.remove_last_class()
    assert lb.meta(annotations)["class_names"] == ["background", "nucleus"]


def test_dock_opened_before_the_sample_adopts_its_annotations(make_napari_viewer, napari_unet_plugin, qtbot):
    viewer = make_napari_viewer()
    widget = UNetWidget(viewer)
    viewer.window.add_dock_widget(widget)
    viewer.open_sample("napari-unet", "nuclei")
    sample_annotations = viewer.layers[c.layer_name(IMAGE, c.ROLE_ANNOTATIONS)]
    qtbot.waitUntil(lambda: sample_annotations in widget.controller._adopted, timeout=5_000)  # the deferred adoption ran
    names = [layer.name for layer in viewer.layers]
    assert names == [IMAGE, c.layer_name(IMAGE, c.ROLE_ANNOTATIONS)], names
    assert np.any(viewer.layers[names[1]].data)  # the sample's scribbles, not an empty duplicate
    assert widget.annotate_step.class_editor.names == ["background", "nucleus"]


def test_layer_deleted_during_training_keeps_strokes(nuclei_dock, qtbot):
    viewer, widget = nuclei_dock
    widget.train_step.steps_spin.setValue(0)
    widget.train_step.budget_spin.setValue(0)  # until stopped
    annotations = viewer.layers[c.layer_name(IMAGE, c.ROLE_ANNOTATIONS)]
    strokes = np.array(annotations.data)
    widget.train()
    assert widget.controller.is_training
    qtbot.waitUntil(lambda: widget.controller.last_progress is not None, timeout=TIMEOUT)
    viewer.layers.remove(annotations)
    qtbot.waitUntil(lambda: any("removed while training" in t for _, t in widget.controller.messages.log), timeout=5_000)
    assert widget.controller.is_training  # training goes on with the data it started with
    with qtbot.waitSignal(widget.controller.training_finished, timeout=TIMEOUT) as blocker:
        widget.stop()
    assert blocker.args == [True] and widget.controller.session.segmenter is not None
    # the deleted strokes come back
    widget.annotate_step.annotate()
    restored = viewer.layers[c.layer_name(IMAGE, c.ROLE_ANNOTATIONS)]
    assert np.array_equal(restored.data, strokes)
    assert lb.class_names_of(restored) == ["background", "nucleus"]


def test_undo_after_accept_also_takes_back_the_accepted_region(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((3, 24, 24), np.float32), name="stack")
    widget = UNetWidget(viewer)
    viewer.window.add_dock_widget(widget)
    controller = widget.controller
    qtbot.waitUntil(lambda: "stack annotations" in viewer.layers, timeout=5_000)
    annotations = viewer.layers["stack annotations"]
    annotations.data[2, :2] = 1
    image, layout, _ = controller.selected()
    semantic = controller.semantic_layer(image, layout)
    instances = controller.instances_layer(image, layout)
    semantic.data[2] = 1
    semantic.data[2, 8:16, 8:16] = 2
    instances.data[2, 8:16, 8:16] = 5
    viewer.dims.set_current_step(0, 2)
    qtbot.waitUntil(lambda: "(plane 2)" in widget.annotate_step.annotation_status.text(), timeout=5_000)
    painted = np.array(annotations.data)
    controller.predicted_uncorrected(image)  # as after a prediction: nothing corrected since
    with qtbot.waitSignal(controller.accepted_changed, timeout=5_000):
        assert widget.correct_step.accept("plane") == 24 * 24
    level, text = controller.messages.log[-1]
    assert level == "warning" and "did not correct" in text
    accepted = viewer.layers["stack accepted"]
    assert accepted.data[2, 10, 10] == 5 + c.ACCEPTED_BACKGROUND and annotations.data[2, 10, 10] == 2
    with qtbot.waitSignal(controller.accepted_changed, timeout=5_000):
        annotations.undo()  # what Ctrl+Z does in the annotations layer
    np.testing.assert_array_equal(annotations.data, painted)
    assert not accepted.data.any()
    assert widget.correct_step.accepted_status.text().startswith("0 accepted pixels")
    with qtbot.waitSignal(controller.accepted_changed, timeout=5_000):  # with napari's async slicing: a turn later
        annotations.redo()
    assert accepted.data[2, 10, 10] == 5 + c.ACCEPTED_BACKGROUND
