"""The napari-unet dock in a real napari viewer (run under a virtual display: `xvfb-run -a`).

Drives the human-in-the-loop cycle on the nuclei sample with tiny settings (a few training
steps on small patches), waiting on the dock's Qt signals, never sleeping.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from qtpy.QtWidgets import (  # noqa: E402
    QAbstractButton,
    QAbstractSpinBox,
    QComboBox,
    QLineEdit,
    QTabBar,
    QTableWidget,
)
from superqt import QLabeledDoubleSlider  # noqa: E402

from napari_unet import conventions as c  # noqa: E402
from napari_unet.functionals.data import cut_objects  # noqa: E402
from napari_unet.napari import layers as lb  # noqa: E402
from napari_unet.nn.inference import Prediction  # noqa: E402
from napari_unet.nn.training import LEARNING_RATE, WARM_START_LEARNING_RATE  # noqa: E402
from napari_unet.widgets import UNetWidget  # noqa: E402

WIDGET_NAME = "U-Net human-in-the-loop segmentation"
IMAGE = "nuclei (DSB2018)"
TIMEOUT = 90_000  # ms; generous for a loaded 2-core machine, the waits end on signals


def _tiny(widget: UNetWidget, steps: int = 3) -> None:
    """Settings that train in about a second on a CPU."""
    widget.train_step.patch_spin.setValue(64)
    widget.train_step.batch_spin.setValue(4)
    widget.train_step.steps_spin.setValue(steps)
    widget.train_step.budget_spin.setValue(60)
    widget.train_step.preview_spin.setValue(0)
    widget.train_step.autopredict_check.setChecked(False)


@pytest.fixture
def dock(make_napari_viewer, napari_unet_plugin):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-unet", "nuclei")
    _, widget = viewer.window.add_plugin_dock_widget("napari-unet", WIDGET_NAME)
    assert isinstance(widget, UNetWidget)
    _tiny(widget)
    return viewer, widget


def _train(qtbot, widget) -> bool:
    with qtbot.waitSignal(widget.controller.training_finished, timeout=TIMEOUT) as blocker:
        widget.train()
    return blocker.args[0]


def _predict(qtbot, widget, scope=None) -> str:
    with qtbot.waitSignal(widget.controller.prediction_finished, timeout=TIMEOUT) as blocker:
        widget.predict_step.predict(scope)
    return blocker.args[0]


def _errors(widget) -> list[str]:
    return [text for level, text in widget.controller.messages.log if level == "error"]


def _gt_prediction() -> Prediction:
    """A clean 'network output' made from the sample's true nuclei, for deterministic instance tests."""
    from scipy import ndimage

    from napari_unet.io.resources import NUCLEI_INSTANCES, read_tif

    truth = np.asarray(read_tif(NUCLEI_INSTANCES))
    fg = (truth > 0).astype(np.float32)
    distance = ndimage.distance_transform_edt(fg).astype(np.float32)
    return Prediction(
        probabilities=np.stack([1 - fg, fg]),
        boundary=np.zeros_like(fg),
        distance=distance / max(float(distance.max()), 1.0),
    )


# --------------------------------------------------------------------------- layout


def test_dock_layout_tooltips_and_shortcuts(dock):
    viewer, widget = dock
    # one tab per step, in the order of the cycle
    tabs = widget.tabs
    assert [tabs.tabText(i).split()[0] for i in range(tabs.count())] == ["1", "2", "3", "4"]
    assert [tabs.widget(i).widget() for i in range(4)] == [
        widget.annotate_step, widget.train_step, widget.predict_step, widget.correct_step]
    # every control has its own tooltip; a part of a composite control (the text field of a spin
    # box, the spin box of a labelled slider) may share the tooltip of the control it belongs to
    controls = [w for kind in (QAbstractButton, QComboBox, QAbstractSpinBox, QLineEdit, QTableWidget)
                for w in widget.findChildren(kind) if not isinstance(w.parentWidget(), QTabBar)]
    assert len(controls) > 30
    missing = []
    for control in controls:
        owner = control.parentWidget()
        if control.toolTip() or (isinstance(owner, (QAbstractSpinBox, QComboBox, QLabeledDoubleSlider, QTableWidget))
                                 and owner.toolTip()):
            continue
        missing.append(f"{type(control).__name__} {getattr(control, 'text', lambda: '')()!r}")
    assert not missing, f"controls without tooltip: {missing}"
    # the label convention is visible: "1 background", "2 nucleus"
    table = widget.annotate_step.class_editor.table
    rows = [(table.item(r, 0).text(), table.item(r, 2).text()) for r in range(table.rowCount())]
    assert rows == [("1", "background"), ("2", "nucleus")]
    # the sample's annotations layer is adopted, coloured per class, ready to paint class 2
    annotations = viewer.layers[c.layer_name(IMAGE, c.ROLE_ANNOTATIONS)]
    assert lb.role_of(annotations) == c.ROLE_ANNOTATIONS
    assert annotations.selected_label == c.FIRST_CLASS
    assert np.allclose(annotations.colormap.color_dict[2][:3], c.class_color(1)[:3])
    # viewer shortcuts: napari actions, so napari's Preferences > Shortcuts lists (and rebinds) them
    from napari.components import ViewerModel
    from napari.utils.action_manager import action_manager

    bound = {str(k): f for k, f in ViewerModel.class_keymap.items()}
    assert {"Shift+T", "Shift+S", "Shift+R", "Shift+K", "Shift+M"} <= set(bound)
    for action in ("train", "stop", "predict", "accept", "merge"):
        assert action_manager._actions[f"napari-unet:{action}"].description.startswith("napari-unet: ")
    called = []
    for action in ("train", "stop", "predict", "accept", "merge"):
        setattr(widget, action, lambda action=action: called.append(action))
    for key in ("Shift+T", "Shift+S", "Shift+R", "Shift+K", "Shift+M"):
        bound[key](viewer)
    assert sorted(called) == ["accept", "merge", "predict", "stop", "train"]


def test_every_step_fits_a_laptop_screen_without_scrolling(dock):
    # At 1366x768 napari gives a right-hand dock about 410 x 600 px below the dock's header; in a
    # 1200 px wide window it gives the dock its minimum width, 360 px, and a step gets ~346 of them
    # (measured with docs/make_user_guide_screenshots.py): every step must fit, neither cut nor scrolled.
    _, widget = dock
    # the longest status lines the steps show (after a prediction) wrap instead of widening the step
    widget.predict_step.instance_status.setText("178 objects in this plane · predicted for objects of 31 px (measured)")
    assert widget.tabs.tabBar().sizeHint().width() <= 340  # every tab's title shown, no scroll arrows
    for index in range(widget.tabs.count()):
        step = widget.tabs.widget(index).widget()
        assert step.minimumSizeHint().width() <= 340, widget.tabs.tabText(index)
        assert step.sizeHint().height() <= 600, widget.tabs.tabText(index)


def test_class_editor_edits_layer_and_refuses_to_drop_painted_class(dock):
    viewer, widget = dock
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
    assert "painted" in _errors(widget)[-1]
    assert len(widget.annotate_step.class_editor.names) == 3
    annotations.data[0, 0] = 0
    widget.annotate_step.remove_last_class()
    assert lb.meta(annotations)["class_names"] == ["background", "nucleus"]


# --------------------------------------------------------------------------- the cycle


def test_full_cycle(dock, qtbot, tmp_path, monkeypatch):
    viewer, widget = dock
    annotations = viewer.layers[c.layer_name(IMAGE, c.ROLE_ANNOTATIONS)]
    painted = np.array(annotations.data, copy=True)

    # train a few steps in the worker
    assert _train(qtbot, widget) is True
    assert widget.controller.session.segmenter is not None
    assert len(widget.controller.last_training_items) == 1
    assert widget.controller.last_training_items[0].instance_mask is None
    assert widget.train_step.train_stats.text().startswith("step 3")
    assert len(widget.train_step.loss_plot.points) == 3

    # predict: semantic + instance layers, network outputs cached for live updates
    assert _predict(qtbot, widget) == "done"
    semantic = viewer.layers[c.layer_name(IMAGE, c.ROLE_SEMANTIC)]
    instances = viewer.layers[c.layer_name(IMAGE, c.ROLE_INSTANCES)]
    assert semantic.data.shape == instances.data.shape == (512, 512)
    assert set(np.unique(semantic.data)) <= {1, 2} and semantic.data.min() >= 1
    assert widget.controller.session.cache.get(IMAGE, ()) is not None
    provenance = instances.metadata[c.METADATA_KEY]["provenance"]
    assert provenance["model_sha256"] == widget.controller.session.segmenter.fingerprint()
    assert provenance["training"]["steps"] == 3 and "threshold" in provenance["instance_params"]
    # the image it was trained on is predicted at the size it was trained at (auto: one pass, as fast as before)
    assert widget.controller.session.trained_on == {IMAGE}
    assert provenance["object_diameter_source"] == "as trained"
    assert semantic.metadata[c.METADATA_KEY]["provenance"]["model_sha256"] == provenance["model_sha256"]

    # instance parameters update the layer live from the cached prediction, never the network
    entry = widget.controller.session.cache.get(IMAGE, ())
    entry.prediction, entry.use_instance_heads, entry.params = _gt_prediction(), False, None
    monkeypatch.setattr(widget.controller.session.segmenter, "predict", lambda *a, **k: pytest.fail("network re-run"))
    with qtbot.waitSignal(widget.controller.instances_updated, timeout=TIMEOUT):
        widget.predict_step.min_size_spin.setValue(5)
    before = np.array(instances.data)
    n_before = len(np.unique(before)) - 1
    assert n_before > 20
    with qtbot.waitSignal(widget.controller.instances_updated, timeout=TIMEOUT):
        widget.predict_step.min_size_spin.setValue(150)
    n_after = len(np.unique(instances.data)) - 1
    assert 0 < n_after < n_before
    assert "objects in this plane" in widget.predict_step.instance_status.text()

    # nothing corrected since the prediction (live instance updates are not corrections)
    assert widget.controller.is_uncorrected(viewer.layers[IMAGE])
    # merge two objects picked in the viewer
    labels = np.array(instances.data)
    ids, sizes = np.unique(labels[labels > 0], return_counts=True)
    a, b = (int(i) for i in ids[np.argsort(-sizes)[:2]])
    for obj in (a, b):
        r, col = np.argwhere(labels == obj)[0]
        widget.correct_step.pick_at(instances.data_to_world((r, col)))
    assert widget.correct_step.object_ids() == [a, b]
    widget.correct_step.merge()
    merged = np.array(instances.data)
    assert not np.any(merged == max(a, b))
    assert np.count_nonzero(merged == min(a, b)) == np.count_nonzero(labels == a) + np.count_nonzero(labels == b)
    assert widget.correct_step.object_ids() == []
    # ... and split it again at its two centres (re-seeding)
    widget.correct_step.split_by_seeds(min(a, b), 2)
    assert len(np.unique(instances.data)) - 1 == n_after
    # Ctrl+Z in the instance layer undoes a correction
    instances.undo()
    assert np.array_equal(instances.data, merged)
    instances.undo()
    assert np.array_equal(instances.data, labels)

    # split an object along a drawn line (a Shapes path across its middle)
    labels = np.array(instances.data)
    obj = int(ids[np.argsort(-sizes)[0]])
    rows, cols = np.nonzero(labels == obj)
    mid = int(np.median(rows))
    widget.correct_step.start_drawing("path")
    shapes = viewer.layers[c.layer_name(IMAGE, "corrections")]
    shapes.add_paths([np.array([[mid, cols.min() - 3], [mid, cols.max() + 3]], dtype=float)])
    widget.correct_step.split_by_line()
    assert not _errors(widget), _errors(widget)
    split = np.array(instances.data)
    assert len(np.unique(split)) == len(np.unique(labels)) + 1
    assert len(shapes.data) == 0  # the used cut line is tidied away

    # remove small objects, renumber
    widget.correct_step.remove_small(200)
    sizes_now = np.bincount(np.asarray(instances.data).ravel())[1:]
    assert sizes_now[sizes_now > 0].min() >= 200
    widget.correct_step.relabel()
    ids_now = np.unique(instances.data)
    assert np.array_equal(ids_now, np.arange(len(ids_now)))

    # accept the current view (zoomed in on a corner): dense annotations + accepted objects there
    camera = lb.camera_of(viewer)
    camera.center = (128, 128)
    camera.zoom = 800 / 128  # the view shows about 128 x 96 pixels around (128, 128)
    view = lb.view_region(viewer, viewer.layers[IMAGE], lb.layout_in(viewer, viewer.layers[IMAGE]))
    assert view is not None and view[0].start > 0 and view[0].stop < 256
    assert not widget.controller.is_uncorrected(viewer.layers[IMAGE])  # merges and splits are corrections
    with qtbot.waitSignal(widget.controller.accepted_changed, timeout=5_000):
        n = widget.correct_step.accept("view")
    assert widget.controller.messages.log[-1][0] == "info"  # a corrected region: no warning
    accepted = viewer.layers[c.layer_name(IMAGE, c.ROLE_ACCEPTED)]
    assert n and 0 < np.count_nonzero(accepted.data) < 512 * 512
    inside = accepted.data > 0
    assert np.all(annotations.data[inside] > 0)
    objects = np.asarray(instances.data) > 0
    assert np.array_equal(accepted.data[inside & objects] - 1, np.asarray(instances.data)[inside & objects])
    assert np.all(accepted.data[inside & ~objects] == c.ACCEPTED_BACKGROUND)
    assert np.array_equal(annotations.data[~inside], painted[~inside])  # strokes elsewhere untouched
    assert accepted.contour == 1
    # accept a drawn rectangle too
    widget.correct_step.start_drawing("rectangle")
    shapes.add_rectangles([np.array([[400, 400], [480, 480]], dtype=float)])
    widget.correct_step.accept("rectangle")
    assert np.all(accepted.data[400:480, 400:480] > 0)

    # retrain (warm start): the accepted pixels are in the training set
    model = widget.controller.session.segmenter
    weights = model.fingerprint()
    assert _train(qtbot, widget) is True
    # continued from the model (its history grows), trained on a copy: the old model never changed
    assert widget.controller.session.segmenter is not model and model.fingerprint() == weights
    assert len(widget.controller.session.segmenter.history) == len(model.history) + 1
    item = widget.controller.last_training_items[0]
    assert item.instance_mask is not None
    known = np.asarray(accepted.data) > 0  # objects cut by a region's border teach the classes only
    cut = cut_objects(np.where(known, np.asarray(accepted.data).astype(np.int64) - c.ACCEPTED_BACKGROUND, 0), known)
    assert np.array_equal(item.instance_mask, known & ~cut) and item.instance_mask.any()
    assert np.array_equal(item.annotations, np.asarray(annotations.data))
    # the curve goes on where the first run ended, each run's last step in its place
    assert [step for step, _ in widget.train_step.loss_plot.points] == [1, 2, 3, 4, 5, 6]

    # clear accepted (annotations keep their labels); undo the accept in the annotations layer
    widget.correct_step.clear_accepted("plane")
    assert not np.any(accepted.data)
    annotations.undo()
    annotations.undo()
    assert np.array_equal(annotations.data, painted)

    # model checkpoint round trip without dialogs
    path = widget.train_step.save_model(tmp_path / "model.pt")
    assert path.is_file()
    widget.train_step.new_model()
    assert widget.controller.session.segmenter is None
    loaded = widget.train_step.load_model(path)
    assert loaded.class_names == ["background", "nucleus"]
    assert widget.controller.session.segmenter is loaded
    assert not _errors(widget), _errors(widget)


def test_stack_multichannel_and_rgb(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    rng = np.random.default_rng(0)
    stack = rng.random((3, 64, 64)).astype(np.float32)
    viewer.add_image(stack, name="stack")
    widget = UNetWidget(viewer)
    viewer.window.add_dock_widget(widget)
    _tiny(widget, steps=2)
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
    assert _train(qtbot, widget) is True
    widget.predict_step.prob_check.setChecked(True)
    assert _predict(qtbot, widget, "stack") == "done"
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
    assert _predict(qtbot, widget) == "failed"
    assert "out of GPU memory" in _errors(widget)[-1] and "tile size" in _errors(widget)[-1]
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
    assert "channel" in _errors(widget)[-1]


# --------------------------------------------------------------------------- errors and safety


def test_user_mistakes_give_notifications(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    widget = UNetWidget(viewer)
    viewer.window.add_dock_widget(widget)
    # no image at all
    widget.train()
    assert "no annotations" in _errors(widget)[-1]
    widget.predict_step.predict()
    assert "no model" in _errors(widget)[-1]
    widget.accept()
    assert "no image" in _errors(widget)[-1]
    widget.correct_step.merge([1, 2])
    assert "no image" in _errors(widget)[-1]
    # an image, but nothing painted
    viewer.add_image(np.random.default_rng(1).random((32, 32)), name="img")
    qtbot.waitUntil(lambda: "img annotations" in viewer.layers, timeout=5_000)
    annotations = viewer.layers["img annotations"]
    widget.train()
    assert "empty" in _errors(widget)[-1]
    # only one class painted
    annotations.data[:4] = 1
    widget.train()
    assert "only one class" in _errors(widget)[-1]
    assert not widget.controller.is_training
    # corrections before any prediction
    widget.correct_step.split_by_line([[0, 0], [10, 10]])
    assert "predict first" in _errors(widget)[-1]
    widget.correct_step.accept("plane")
    assert "predict first" in _errors(widget)[-1]
    # a Labels layer with the conventional name but the wrong shape is not overwritten
    viewer.add_image(np.zeros((20, 20)), name="other")
    viewer.add_labels(np.ones((5, 5), np.uint8), name="other annotations")
    widget.annotate_step.image_picker.set_layer(viewer.layers["other"])
    qtbot.waitUntil(lambda: "shape" in _errors(widget)[-1], timeout=5_000)
    assert viewer.layers["other annotations"].data.shape == (5, 5)
    assert np.all(viewer.layers["other annotations"].data == 1)
    # model files
    widget.train_step.load_model("/nonexistent/model.pt")
    assert "not found" in _errors(widget)[-1]
    widget.train_step.save_model("/tmp/never.pt")
    assert "no model" in _errors(widget)[-1]


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


def test_layer_deleted_during_training_keeps_strokes(dock, qtbot):
    viewer, widget = dock
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


def test_live_preview_then_close_viewer_while_training(dock, qtbot):
    viewer, widget = dock
    widget.train_step.steps_spin.setValue(0)
    widget.train_step.budget_spin.setValue(0)
    widget.train_step.preview_spin.setValue(0.2)
    lb.camera_of(viewer).zoom *= 2
    with qtbot.waitSignal(widget.controller.preview_painted, timeout=TIMEOUT):
        widget.train()
    semantic = viewer.layers[c.layer_name(IMAGE, c.ROLE_SEMANTIC)]
    assert np.any(semantic.data)
    worker = widget.controller._train_worker
    assert worker is not None and not worker.done.is_set()
    viewer.close()
    assert worker.done.is_set(), "the training thread outlived the viewer"
    assert not widget.threads_alive()


def test_closing_the_dock_stops_work_and_detaches_shortcuts(dock, qtbot):
    viewer, widget = dock
    qtbot.waitUntil(lambda: widget._watched_window is not None, timeout=5_000)
    widget.train_step.steps_spin.setValue(0)
    widget.train_step.budget_spin.setValue(0)
    widget.train()
    worker = widget.controller._train_worker
    qtbot.waitUntil(lambda: widget.controller.last_progress is not None, timeout=TIMEOUT)
    viewer.window.remove_dock_widget(widget)
    assert worker.done.is_set()
    from napari.components import ViewerModel

    shortcut = {str(k): f for k, f in ViewerModel.class_keymap.items()}["Shift+T"]
    shortcut(viewer)  # no dock any more: a hint, no training
    assert widget.controller.scheduler.running() == []
    widget.deleteLater()


# --------------------------------------------------------------------------- settings, start model, undo


def test_settings_persist_across_launches(make_napari_viewer):
    first = UNetWidget(make_napari_viewer())
    first.train_step.budget_spin.setValue(123)
    first.train_step.preset_combo.setCurrentText("accurate")
    first.predict_step.tile_spin.setValue(256)
    first.predict_step.threshold_slider.setValue(0.7)
    first.predict_step.min_size_spin.setValue(44)
    first.predict_step.border_slider.setValue(0.3)
    first.shutdown()
    again = UNetWidget(make_napari_viewer())  # a new launch: same settings file
    assert again.train_step.budget_spin.value() == 123
    assert again.train_step.preset_combo.currentText() == "accurate"
    assert again.predict_step.tile_spin.value() == 256
    assert again.predict_step.instance_params().threshold == pytest.approx(0.7)
    assert again.predict_step.min_size_spin.value() == 44
    assert again.predict_step.instance_params().border_evidence == pytest.approx(0.3)


def test_start_from_a_pretrained_model_and_from_a_new_one(make_napari_viewer, monkeypatch, tmp_path):
    from napari_unet.nn.model import ModelConfig
    from napari_unet.nn.segmenter import Segmenter
    from napari_unet.widgets import train_step, training_jobs

    path = Segmenter.create(ModelConfig(depth=2, base_width=4, n_classes=3), ["bg", "cell", "edge"]).save(
        tmp_path / "tiny.pt")
    for module in (train_step, training_jobs):
        monkeypatch.setattr(module, "available_models", lambda: ["tiny"])
    monkeypatch.setattr(training_jobs, "model_path", lambda name: path)
    widget = UNetWidget(make_napari_viewer())
    combo = widget.train_step.start_combo
    items = [combo.itemText(i) for i in range(combo.count())]
    assert items == ["new model", "pretrained: tiny", "file…"]
    combo.setCurrentText("pretrained: tiny")
    combo.activated.emit(combo.currentIndex())
    assert widget.controller.segmenter.class_names == ["bg", "cell", "edge"]
    assert combo.currentText() == "current model"
    widget.shutdown()
    again = UNetWidget(make_napari_viewer())  # the start model is a setting too
    assert again.controller.segmenter is not None
    assert again.controller.segmenter.class_names == ["bg", "cell", "edge"]
    combo = again.train_step.start_combo
    combo.setCurrentText("new model")
    combo.activated.emit(combo.currentIndex())
    assert again.controller.segmenter is None and combo.currentText() == "new model"
    # a model file: remembered by its path
    other = Segmenter.create(ModelConfig(depth=2, base_width=4), ["bg", "nucleus"]).save(tmp_path / "other.pt")
    monkeypatch.setattr(train_step.QFileDialog, "getOpenFileName", lambda *a, **k: (str(other), ""))
    combo.setCurrentText("file…")
    combo.activated.emit(combo.currentIndex())
    assert again.controller.segmenter.class_names == ["bg", "nucleus"]
    again.shutdown()
    third = UNetWidget(make_napari_viewer())
    assert third.controller.segmenter.class_names == ["bg", "nucleus"]


def test_reopened_dataset_brings_its_model(make_napari_viewer, tmp_path):
    from napari_unet.nn.model import ModelConfig
    from napari_unet.nn.segmenter import Segmenter

    path = Segmenter.create(ModelConfig(depth=2, base_width=4), ["background", "nucleus"]).save(tmp_path / "model.pt")
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((32, 32), np.float32), name="cells",
                     metadata={c.METADATA_KEY: {"model_path": str(path)}})  # what the dataset reader sets
    widget = UNetWidget(viewer)
    viewer.window.add_dock_widget(widget)
    assert widget.controller.segmenter is not None
    assert widget.controller.segmenter.class_names == ["background", "nucleus"]
    assert "loaded the model exported with 'cells'" in widget.controller.messages.last[1]
    assert widget.predict_step.predict_button.isEnabled()


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
    annotations.redo()
    assert accepted.data[2, 10, 10] == 5 + c.ACCEPTED_BACKGROUND


def test_readme_lists_every_shortcut(repo_root):
    from napari_unet.widgets.dock import SHORTCUTS

    readme = (repo_root / "README.md").read_text()
    for key in SHORTCUTS:
        assert f"| {key.replace('-', '+')} |" in readme, key


def test_dataset_exported_with_its_model_reopens_with_it(make_napari_viewer, napari_unet_plugin, tmp_path):
    from napari_unet.nn.model import ModelConfig
    from napari_unet.nn.segmenter import Segmenter
    from napari_unet.widgets.export_widget import ExportWidget

    viewer = make_napari_viewer()
    viewer.add_image(np.random.default_rng(0).random((32, 32)).astype(np.float32), name="cells")
    widget = UNetWidget(viewer)
    viewer.window.add_dock_widget(widget)
    model = Segmenter.create(ModelConfig(depth=2, base_width=4), ["background", "nucleus"])
    widget.controller.session.set_model(model)
    export = ExportWidget(viewer)
    assert export.controller is widget.controller
    result = export.export_now(tmp_path, images=["cells"], include_model=True)
    assert result.ok and result.model_path == tmp_path / "model.pt"

    again = make_napari_viewer()
    again.open(str(result.written["cells"]), plugin="napari-unet")
    reopened = UNetWidget(again)
    again.window.add_dock_widget(reopened)
    assert reopened.controller.segmenter.fingerprint() == model.fingerprint()
    assert "loaded the model exported with 'cells'" in reopened.controller.messages.last[1]


def test_a_one_channel_image_starts_from_the_shipped_nuclei_model_unless_new_is_chosen(dock, qtbot):
    viewer, widget = dock
    step = widget.train_step
    assert widget.controller.segmenter is None
    assert step.start_combo.currentText() == "pretrained: nuclei"
    assert _train(qtbot, widget) is True
    history = widget.controller.session.segmenter.history
    assert len(history) >= 2 and history[-1]["steps"] == 3  # the shipped model's own training, then ours
    assert history[-1]["config"]["learning_rate"] == WARM_START_LEARNING_RATE  # fine-tuned gently
    assert any("starting from the shipped 'nuclei' model" in text for _, text in widget.controller.messages.log)

    step.start_combo.setCurrentText("new model")
    step._on_start_chosen()
    assert widget.controller.segmenter is None
    assert step.start_combo.currentText() == "new model"
    assert _train(qtbot, widget) is True
    assert len(widget.controller.session.segmenter.history) == 1
    assert widget.controller.session.segmenter.history[-1]["config"]["learning_rate"] == LEARNING_RATE
