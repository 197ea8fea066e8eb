"""The dock as a whole in a real napari viewer (run under a virtual display: `xvfb-run -a`).

Its tabs, tooltips and shortcuts, its size on a laptop screen, its settings across launches, the
notifications it gives for user mistakes, and closing it (or the viewer) while it trains.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from dock_helpers import IMAGE, TIMEOUT  # noqa: E402
from qtpy.QtWidgets import (  # noqa: E402
    QAbstractButton,
    QAbstractSpinBox,
    QComboBox,
    QLineEdit,
    QStyle,
    QStyleOptionComboBox,
    QTabBar,
    QTableWidget,
)
from superqt import QLabeledDoubleSlider  # noqa: E402

from napari_unet import conventions as c  # noqa: E402
from napari_unet.napari import layers as lb  # noqa: E402
from napari_unet.widgets import UNetWidget  # noqa: E402


def test_dock_layout_tooltips_and_shortcuts(nuclei_dock):
    viewer, widget = nuclei_dock
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


def test_shortcuts_pressed_in_the_canvas_run_and_leave_napari_keys_working(nuclei_dock, qtbot):
    # A real key press goes through napari's key handler, which reads every bound action's command
    # name first: a command without one made every key press in the canvas raise (napari's own too).
    from qtpy.QtCore import Qt
    from qtpy.QtTest import QTest

    viewer, widget = nuclei_dock
    canvas = viewer.window._qt_viewer.canvas.native
    annotations = widget.controller.paired(c.ROLE_ANNOTATIONS)
    viewer.layers.selection.active = annotations
    QTest.keyClick(canvas, Qt.Key_P)  # napari's own key: the brush of the active Labels layer
    assert annotations.mode == "paint"
    errors = len(widget.controller.messages.errors())
    QTest.keyClick(canvas, Qt.Key_R, Qt.ShiftModifier)  # Predict, with no model yet: the dock says so
    assert len(widget.controller.messages.errors()) == errors + 1
    assert "no model" in widget.controller.messages.errors()[-1]


def test_every_step_fits_a_laptop_screen_without_scrolling(nuclei_dock):
    # At 1366x768 napari gives a right-hand dock about 410 x 600 px below the dock's header; in a
    # 1200 px wide window it gives the dock its minimum width, 360 px, and a step gets ~346 of them
    # (measured with docs/make_user_guide_screenshots.py): every step must fit, neither cut nor scrolled.
    _, widget = nuclei_dock
    # the longest status lines the steps show (after a prediction) wrap instead of widening the step
    widget.predict_step.instance_status.setText("178 objects in this plane · predicted for objects of 31 px (measured)")
    assert widget.tabs.tabBar().sizeHint().width() <= 340  # every tab's title shown, no scroll arrows
    for index in range(widget.tabs.count()):
        step = widget.tabs.widget(index).widget()
        assert step.minimumSizeHint().width() <= 340, widget.tabs.tabText(index)
        assert step.sizeHint().height() <= 600, widget.tabs.tabText(index)


def test_every_step_fits_the_dock_of_a_shown_1280x800_window(make_napari_viewer, napari_unet_plugin, qtbot):
    # Shown, napari's style sheet widens every control (a hidden dock measures smaller): each step must
    # still fit the dock napari gives it at 1280x800, even with long image names and choices.
    from napari_unet.widgets.launch import MAIN_WIDGET

    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1280, 800)
    viewer.open_sample("napari-unet", "nuclei")
    viewer.layers[IMAGE].name = "a very long image name from the microscope, 2026-11-26 plate 3 well B7"
    _, widget = viewer.window.add_plugin_dock_widget("napari-unet", MAIN_WIDGET)
    qtbot.waitUntil(lambda: widget.isVisible(), timeout=5_000)
    assert widget.width() <= 1280 // 3  # the canvas keeps the room
    for index in range(widget.tabs.count()):
        widget.tabs.setCurrentIndex(index)
        scroll = widget.tabs.widget(index)
        qtbot.waitUntil(lambda scroll=scroll: scroll.viewport().width() > 0, timeout=5_000)
        assert scroll.widget().minimumSizeHint().width() <= scroll.viewport().width(), widget.tabs.tabText(index)
        for combo in scroll.widget().findChildren(QComboBox):  # the choice shown whole, not elided
            if combo.isVisible() and combo is not widget.annotate_step.image_picker:  # a name can be any length
                option = QStyleOptionComboBox()
                combo.initStyleOption(option)
                field = combo.style().subControlRect(QStyle.CC_ComboBox, option, QStyle.SC_ComboBoxEditField, combo)
                assert combo.fontMetrics().horizontalAdvance(combo.currentText()) <= field.width(), combo.currentText()


def test_entries_added_after_the_dock_was_built_do_not_widen_it(make_napari_viewer, qtbot):
    # The dock is built on an empty viewer (its channel drop-down holds "—"), then a file with a long name
    # is opened and the drop-downs filled from the data get long entries before Qt first shows them (a
    # drop-down sizes itself to its entries when first shown): no step may grow past the narrowest dock.
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1280, 800)
    widget = UNetWidget(viewer)
    long_name = "a_very_long_file_name_from_the_microscope_2026-11-26_plate3_wellB7_stack_c0.tif"
    viewer.add_image(np.zeros((3, 64, 64), np.float32), name=long_name)
    qtbot.waitUntil(lambda: widget.controller.image is not None, timeout=5_000)
    assert widget.annotate_step.channel_combo.count() == 2  # filled in for this image: none, axis 0
    for combo in (widget.annotate_step.channel_combo, widget.train_step.start_combo):
        combo.addItem(long_name)
    viewer.window.add_dock_widget(widget, area="right")
    qtbot.waitUntil(lambda: widget.isVisible(), timeout=5_000)
    assert widget.width() <= 1280 // 3
    for index in range(widget.tabs.count()):
        widget.tabs.setCurrentIndex(index)
        scroll = widget.tabs.widget(index)
        qtbot.waitUntil(lambda scroll=scroll: scroll.viewport().width() > 0, timeout=5_000)
        narrowest = widget.minimumWidth() - (widget.width() - scroll.viewport().width())  # the dock at its minimum
        assert scroll.widget().minimumSizeHint().width() <= narrowest, widget.tabs.tabText(index)


def test_the_shortcuts_take_one_line_and_are_one_click_away(nuclei_dock, qtbot):
    from napari_unet.widgets.dock import SHORTCUTS

    _, widget = nuclei_dock
    header = widget.layout().itemAt(0)  # the title line and the Shortcuts button
    assert header.sizeHint().height() < 2 * widget.fontMetrics().lineSpacing()
    button = widget.shortcuts_button
    assert all(key.replace("-", "+") in button.toolTip() for key in SHORTCUTS)  # hovered: every shortcut
    actions = button.menu().actions()  # clicked: a menu that lists them with their keys, and runs them
    assert [action.text().split("\t")[1] for action in actions] == [k.replace("-", "+") for k in SHORTCUTS]
    called = []
    widget.suggest = lambda: called.append("suggest")
    next(action for action in actions if action.text().endswith("Shift+N")).trigger()
    assert called == ["suggest"]


def test_idle_progress_bars_say_so_and_label_counts_wrap_between_classes(nuclei_dock):
    from qtpy.QtWidgets import QProgressBar

    _, widget = nuclei_dock
    bars = widget.findChildren(QProgressBar)
    assert len(bars) >= 2 and all(bar.text() == "idle" for bar in bars)  # a bar never set showed no text
    status = widget.annotate_step.annotation_status.text()  # "1 background: 1,409 px; 2 nucleus: 523 px"
    assert "1\u00a0background:\u00a0" in status and "\u00a0px; 2\u00a0nucleus" in status  # never "2 | nucleus"


def test_readme_lists_every_shortcut(repo_root):
    from napari_unet.widgets.dock import SHORTCUTS

    readme = (repo_root / "README.md").read_text()
    for key in SHORTCUTS:
        assert f"| {key.replace('-', '+')} |" in readme, key


def test_settings_persist_across_launches(make_napari_viewer):
    first = UNetWidget(make_napari_viewer())
    first.train_step.budget_spin.setValue(123)
    first.train_step.preset_combo.setCurrentText("accurate")
    first.predict_step.tile_spin.setValue(256)
    first.predict_step.threshold_slider.setValue(0.7)
    first.predict_step.min_size_spin.setValue(44)
    first.predict_step.border_slider.setValue(0.3)
    first.predict_step.prominence_slider.setValue(0.25)
    first.shutdown()
    again = UNetWidget(make_napari_viewer())  # a new launch: same settings file
    assert again.train_step.budget_spin.value() == 123
    assert again.train_step.preset_combo.currentText() == "accurate"
    assert again.predict_step.tile_spin.value() == 256
    assert again.predict_step.instance_params().threshold == pytest.approx(0.7)
    assert again.predict_step.min_size_spin.value() == 44
    assert again.predict_step.instance_params().border_evidence == pytest.approx(0.3)
    assert again.predict_step.instance_params().seed_prominence == pytest.approx(0.25)


def test_user_mistakes_give_notifications(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    widget = UNetWidget(viewer)
    viewer.window.add_dock_widget(widget)
    # no image at all
    widget.train()
    assert "no annotations" in widget.controller.messages.errors()[-1]
    widget.predict_step.predict()
    assert "no model" in widget.controller.messages.errors()[-1]
    widget.accept()
    assert "no image" in widget.controller.messages.errors()[-1]
    widget.correct_step.merge([1, 2])
    assert "no image" in widget.controller.messages.errors()[-1]
    # an image, but nothing painted
    viewer.add_image(np.random.default_rng(1).random((32, 32)), name="img")
    qtbot.waitUntil(lambda: "img annotations" in viewer.layers, timeout=5_000)
    annotations = viewer.layers["img annotations"]
    widget.train()
    assert "empty" in widget.controller.messages.errors()[-1]
    # only one class painted
    annotations.data[:4] = 1
    widget.train()
    assert "only one class" in widget.controller.messages.errors()[-1]
    assert not widget.controller.is_training
    # corrections before any prediction
    widget.correct_step.split_by_line([[0, 0], [10, 10]])
    assert "predict first" in widget.controller.messages.errors()[-1]
    widget.correct_step.accept("plane")
    assert "predict first" in widget.controller.messages.errors()[-1]
    # a Labels layer with the conventional name but the wrong shape is not overwritten
    viewer.add_image(np.zeros((20, 20)), name="other")
    viewer.add_labels(np.ones((5, 5), np.uint8), name="other annotations")
    widget.annotate_step.image_picker.set_layer(viewer.layers["other"])
    qtbot.waitUntil(lambda: "shape" in widget.controller.messages.errors()[-1], timeout=5_000)
    assert viewer.layers["other annotations"].data.shape == (5, 5)
    assert np.all(viewer.layers["other annotations"].data == 1)
    # model files
    widget.train_step.load_model("/nonexistent/model.pt")
    assert "not found" in widget.controller.messages.errors()[-1]
    widget.train_step.save_model("/tmp/never.pt")
    assert "no model" in widget.controller.messages.errors()[-1]


def test_live_preview_then_close_viewer_while_training(nuclei_dock, qtbot):
    viewer, widget = nuclei_dock
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


def test_closing_the_dock_stops_work_and_detaches_shortcuts(nuclei_dock, qtbot):
    viewer, widget = nuclei_dock
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
