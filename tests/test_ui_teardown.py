"""widgets.ui: calls that reach a dock while Qt tears it down are dropped, not raised."""

import pytest

pytest.importorskip("pytestqt")

from psygnal import Signal  # noqa: E402
from qtpy.QtWidgets import QLabel, QWidget  # noqa: E402

from napari_unet.widgets import ui  # noqa: E402


class _Owner(QWidget):
    def __init__(self) -> None:
        super().__init__()
        self.label = QLabel(self)
        self.calls = 0

    def show_text(self, text: str) -> None:
        self.calls += 1
        self.label.setText(text)


class _Emitter:
    changed = Signal(str)


def test_a_call_that_meets_a_deleted_child_is_dropped(qtbot):
    owner, emitter = _Owner(), _Emitter()
    qtbot.addWidget(owner)
    ui.listen(emitter.changed, owner.show_text)
    emitter.changed.emit("before")
    assert owner.label.text() == "before"
    owner.label.deleteLater()  # Qt deletes children first while it tears a dock down
    qtbot.waitUntil(lambda: not ui.alive(owner.label), timeout=2_000)
    emitter.changed.emit("after")  # would raise "wrapped C/C++ object ... has been deleted"
    ui.later(owner.show_text, "later")
    qtbot.wait(20)
    assert owner.calls == 3 and ui.alive(owner)
