"""The napari-unet dock: four steps in tabs, one controller behind them.

1 Annotate -> 2 Train -> 3 Predict -> 4 Correct & accept -> back to 2.

Each step is its own widget (annotate_step, train_step, predict_step, correct_step); they
share the viewer's `Controller`, which owns the model, the background jobs and the
per-image state. This dock adds what belongs to the whole: the tabs (every step one click
away, none below the fold), the message line, the viewer shortcuts, and stopping every job
when the viewer or the dock closes. Every public action (`train`, `stop`, `predict`,
`merge`, `accept`, ...) can be called from code and tests on the step widgets; user
mistakes become napari notifications, never tracebacks.
"""

from __future__ import annotations

import weakref

from napari.components import ViewerModel
from napari.utils.action_manager import action_manager
from napari.utils.notifications import show_info
from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import (
    QFrame,
    QLabel,
    QMenu,
    QScrollArea,
    QTabWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from napari_unet.widgets import ui
from napari_unet.widgets.annotate_step import AnnotateStep
from napari_unet.widgets.controller import controller_for, real_viewer
from napari_unet.widgets.correct_step import CorrectStep
from napari_unet.widgets.lifecycle import ClosesWithViewer
from napari_unet.widgets.predict_step import PredictStep
from napari_unet.widgets.train_step import TrainStep
from napari_unet.widgets.ui import MessageLine, listen

# Viewer shortcuts (none of them is bound by napari 0.9 to the viewer or any layer type). They are
# napari actions ("napari-unet:train", ...): listed, and re-bindable, in napari's Preferences >
# Shortcuts under the viewer's key bindings.
SHORTCUTS = {
    "Shift-T": ("train", "train / continue training"),
    "Shift-S": ("stop", "stop training (keeps the model) or cancel prediction"),
    "Shift-R": ("predict", "run prediction"),
    "Shift-M": ("merge", "merge the listed objects"),
    "Shift-K": ("accept", "accept (keep) the chosen region as training data"),
    "Shift-N": ("suggest", "show the next region to annotate: the most uncertain one not annotated yet"),
}


_docks: weakref.WeakValueDictionary[int, UNetWidget] = weakref.WeakValueDictionary()


def register_shortcuts() -> None:
    """Register the dock's actions with napari's action manager once (viewer-wide key bindings)."""
    for key, (action, description) in SHORTCUTS.items():
        name = f"napari-unet:{action}"
        if name in action_manager._actions:  # registered by an earlier dock of this session
            continue
        action_manager.register_action(name=name, command=_action_command(action),
                                       description=f"napari-unet: {description}", keymapprovider=ViewerModel)
        action_manager.bind_shortcut(name, key)


def _action_command(action: str):
    """The command of a napari action: a named function, since napari reads every bound command's
    `__name__` at each key press in the canvas (a functools.partial has none: every key press raised)."""

    def command(viewer) -> None:
        _run_action(action, viewer)

    command.__name__ = command.__qualname__ = f"napari_unet_{action}"
    return command


def _run_action(action: str, viewer) -> None:
    """A shortcut pressed in `viewer`: the action of its napari-unet dock, if one is open."""
    viewer = real_viewer(viewer)
    dock = _docks.get(id(viewer))
    if dock is None or dock.viewer is not viewer or dock._closed:
        show_info("napari-unet: open its dock first (Plugins > napari-unet)")
        return
    getattr(dock, action)()


def _shortcut_label(key: str) -> str:
    return key.replace("-", "+")


def _scrolled(widget: QWidget) -> QScrollArea:
    """The step in a scroll area: on a very small screen it scrolls instead of being cut off."""
    ui.narrow_combos(widget)
    scroll = QScrollArea()
    scroll.setWidgetResizable(True)
    scroll.setFrameShape(QFrame.NoFrame)
    scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
    scroll.setWidget(widget)
    return scroll


class UNetWidget(ClosesWithViewer, QWidget):
    """napari-unet's dock widget (npe2 command `napari-unet.unet_widget`)."""

    def __init__(self, napari_viewer, parent=None) -> None:
        super().__init__(parent)
        self.controller = controller_for(napari_viewer)
        self.viewer = self.controller.viewer
        self.controller.call_soon = lambda func: QTimer.singleShot(0, func)
        self.controller.call_later = QTimer.singleShot
        self._closed = False
        self.watch_viewer_close()

        self.setMinimumWidth(360)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.setSpacing(4)
        intro = QLabel("Paint, train, correct, accept, repeat")  # the dock's title names napari-unet
        intro.setWordWrap(True)  # never wider than the dock: on a narrow one it takes a second line
        intro.setToolTip("Paint a few strokes per class, train, predict, correct the objects, accept them as "
                         "training data, train again")
        self.shortcuts_button = self._shortcuts_menu()
        layout.addLayout(ui.row((intro, 1), self.shortcuts_button))
        self.message_label = MessageLine(self.controller.messages,
                                          "The latest napari-unet message (also shown as a napari notification)")
        layout.addWidget(self.message_label)

        self.annotate_step = AnnotateStep(self.controller)
        self.train_step = TrainStep(self.controller)
        self.predict_step = PredictStep(self.controller)
        self.correct_step = CorrectStep(self.controller)
        self.tabs = QTabWidget()
        self.tabs.setToolTip("The steps of the cycle: annotate, train, predict, correct & accept, then train again")
        for title, step in (("1 Annotate", self.annotate_step), ("2 Train", self.train_step),
                            ("3 Predict", self.predict_step), ("4 Correct", self.correct_step)):
            index = self.tabs.addTab(_scrolled(step), title)
            self.tabs.setTabToolTip(index, step.toolTip())
        layout.addWidget(self.tabs, 1)

        listen(self.controller.training_finished, self._after_training)
        # Qt deleting the dock without a close event first (an undocked widget, the app ending):
        # stop the viewer's jobs all the same. The closure holds the controller only, never the dock.
        self.destroyed.connect(lambda *_, controller=self.controller: controller.shutdown())
        _docks[id(self.viewer)] = self
        register_shortcuts()

    def _shortcuts_menu(self) -> QToolButton:
        """One button for the viewer shortcuts: its tooltip lists them, its menu lists and runs them."""
        listing = "\n".join(f"{_shortcut_label(k)}: {v[1]}" for k, v in SHORTCUTS.items())
        button = QToolButton()
        button.setText("Shortcuts ▾")
        button.setStyleSheet("QToolButton::menu-indicator { image: none; width: 0px; }")  # the ▾ says it
        button.setToolTip(f"Viewer shortcuts (click for the list; napari's Preferences > Shortcuts changes them):\n{listing}")
        button.setPopupMode(QToolButton.InstantPopup)
        menu = QMenu(button)
        for key, (action, description) in SHORTCUTS.items():  # after the tab: Qt's shortcut column
            menu.addAction(f"{description[0].upper()}{description[1:]}\t{_shortcut_label(key)}",
                           lambda action=action: getattr(self, action)())
        button.setMenu(menu)
        return button

    # --- the steps' main actions, for the shortcuts --------------------------------------------

    def train(self) -> None:
        self.train_step.train()

    def stop(self) -> None:
        self.train_step.stop()
        self.predict_step.cancel_prediction()

    def predict(self) -> None:
        self.predict_step.predict()

    def merge(self) -> None:
        self.correct_step.merge()

    def accept(self) -> None:
        self.correct_step.accept()

    def suggest(self) -> None:
        self.predict_step.suggest()

    def _after_training(self, ok: bool) -> None:
        if ok and not self._closed and self.train_step.autopredict_check.isChecked() and self.controller.image is not None:
            self.predict_step.predict("plane", flips=1)  # one pass: as fast as the preview; Predict flips

    # --- lifecycle ------------------------------------------------------------------------------

    def shutdown(self, timeout: float = 15.0) -> None:
        """Stop every job of the viewer (waiting for the threads), unbind shortcuts; the viewer or dock closes."""
        if self._closed:
            return
        self._closed = True
        for step in (self.train_step, self.predict_step, self.correct_step):
            step.shutdown()
        self.controller.shutdown(timeout)
        if _docks.get(id(self.viewer)) is self:
            del _docks[id(self.viewer)]
        self._watched_window = None
        self.annotate_step.image_picker.disconnect_viewer()

    def threads_alive(self) -> bool:
        """True while any job of this viewer still runs."""
        return self.controller.threads_alive()
