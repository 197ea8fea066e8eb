"""Small Qt building blocks shared by napari-unet's docks (forms, buttons, hints, the message line)."""

from __future__ import annotations

import weakref

from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import (
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from napari_unet.widgets.messages import COLORS, Messages


def alive(widget) -> bool:
    """False once Qt has deleted the widget's C++ object (a dock torn down while calls are pending)."""
    try:
        widget.objectName()  # raises once the C++ object is deleted
    except RuntimeError:
        return False
    return True


def later(slot, *args) -> None:
    """Call a widget's bound method at the next event-loop turn, unless Qt has deleted the widget by then."""
    owner_ref, func = weakref.ref(slot.__self__), slot.__func__

    def call() -> None:
        owner = owner_ref()
        if owner is not None and alive(owner):
            _unless_torn_down(func, owner, *args)

    QTimer.singleShot(0, call)


def listen(signal, slot) -> None:
    """Connect a psygnal signal (of the controller, of a message log) to a widget's bound method.

    The controller outlives widgets that Qt has already deleted (a dock closed, a viewer closing
    while its layers go): once the widget's Qt object is gone, the call is dropped instead of
    raising inside the emitter. Holds the widget weakly.
    """
    owner_ref, func = weakref.ref(slot.__self__), slot.__func__

    def call(*args) -> None:
        owner = owner_ref()
        if owner is not None and alive(owner):
            _unless_torn_down(func, owner, *args)

    signal.connect(call)


def _unless_torn_down(func, owner, *args) -> None:
    """Run `func(owner, *args)`; drop it when it touches a child widget Qt already deleted. The
    owner itself can still answer while Qt tears the dock down, children first."""
    try:
        func(owner, *args)
    except RuntimeError as error:
        if "has been deleted" not in str(error):
            raise


def form() -> QFormLayout:
    layout = QFormLayout()
    layout.setContentsMargins(0, 0, 0, 0)
    layout.setFieldGrowthPolicy(QFormLayout.AllNonFixedFieldsGrow)
    layout.setLabelAlignment(Qt.AlignRight)
    return layout


def narrow_combos(widget: QWidget, characters: int = 10) -> None:
    """Let every combo box in `widget` that holds an entry longer than `characters` be narrower than it
    (the open list still shows it whole), now and whenever entries are added later: a long choice
    ("pretrained: nuclei-stained", an image's name, a channel axis filled in when an image is picked)
    never widens the dock past its width on a 1280-pixel screen, where the step would be cut off on the
    right. Combos of short entries keep their natural width."""
    for combo in widget.findChildren(QComboBox):
        _narrow_if_long(combo, characters)
        combo.model().rowsInserted.connect(lambda *_, combo=combo: _narrow_if_long(combo, characters))


def _narrow_if_long(combo: QComboBox, characters: int) -> None:
    if max((len(combo.itemText(i)) for i in range(combo.count())), default=0) > characters:
        combo.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        combo.setMinimumContentsLength(max(characters, combo.minimumContentsLength()))


def button(text: str, tooltip: str, slot, *, checkable: bool = False) -> QPushButton:
    widget = QPushButton(text)
    widget.setToolTip(tooltip)
    widget.setCheckable(checkable)
    widget.clicked.connect(lambda checked=False: slot())
    return widget


def row(*widgets, stretch: bool = False) -> QHBoxLayout:
    """Widgets side by side; a `(widget, factor)` pair gets that share of the width."""
    layout = QHBoxLayout()
    layout.setContentsMargins(0, 0, 0, 0)
    for widget in widgets:
        widget, factor = widget if isinstance(widget, tuple) else (widget, 0)
        layout.addWidget(widget, factor)
    if stretch:
        layout.addStretch(1)
    return layout


def label(text: str, tooltip: str) -> QLabel:
    widget = QLabel(text)
    widget.setToolTip(tooltip)
    return widget


def hint(text: str) -> QLabel:
    widget = QLabel(text)
    widget.setWordWrap(True)
    widget.setToolTip(text)
    widget.setStyleSheet("font-size: 11px;")
    return widget


def group(title: str, tooltip: str) -> tuple[QGroupBox, QVBoxLayout]:
    """A titled box and the vertical layout to fill it with."""
    box = QGroupBox(title)
    box.setToolTip(tooltip)
    layout = QVBoxLayout(box)
    layout.setContentsMargins(6, 8, 6, 6)
    layout.setSpacing(4)
    return box, layout


def progress_bar(tooltip: str) -> QProgressBar:
    """A progress bar in thousandths that says "idle" until a job reports."""
    bar = QProgressBar()
    bar.setRange(0, 1000)
    bar.setValue(0)  # a bar never set shows no text at all: "idle" says it is waiting
    bar.setTextVisible(True)
    bar.setFormat("idle")
    bar.setToolTip(tooltip)
    return bar


def step_layout(widget: QWidget, tooltip: str) -> QVBoxLayout:
    """The vertical layout of one step's widget, with the step's tooltip."""
    widget.setToolTip(tooltip)
    layout = QVBoxLayout(widget)
    layout.setContentsMargins(6, 6, 6, 6)
    layout.setSpacing(5)
    return layout


class MessageLine(QLabel):
    """Shows the latest message of a `Messages` log, coloured by level."""

    def __init__(self, messages: Messages, tooltip: str, parent=None) -> None:
        super().__init__(parent)
        self.setWordWrap(True)
        self.setToolTip(tooltip)
        self.setVisible(False)
        listen(messages.posted, self.show_message)

    def show_message(self, level: str, text: str) -> None:
        try:
            self.setText(text)
            color = COLORS.get(level, "")
            self.setStyleSheet(f"color: {color};" if color else "")
            self.setVisible(True)
        except RuntimeError:  # the Qt object is gone (viewer closing)
            pass
