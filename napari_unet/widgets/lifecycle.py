"""Docks that stop their work with the viewer: the main window closing, napari taking the dock
out, or the application quitting all call the dock's `shutdown()`.

Both docks use it, so a job started from either one (an export from the export dock alone
included) is stopped and joined when the viewer closes.
"""

from __future__ import annotations

import weakref

from qtpy.QtCore import QEvent, QObject, QTimer
from qtpy.QtWidgets import QApplication, QMainWindow


def weak_call(obj, name: str, *args):
    """A callable that calls obj.name(*args) if obj still exists; Qt timers and app signals hold only this.

    (A bound method held by a global would keep the dock, and through it the whole viewer, alive.)
    """
    ref = weakref.ref(obj)

    def call(*_):
        target = ref()
        if target is not None:
            try:
                getattr(target, name)(*args)
            except RuntimeError:  # the Qt side is already deleted
                pass

    return call


class _CloseWatcher(QObject):
    """Calls `callback` when the watched window is about to close."""

    def __init__(self, callback, parent=None) -> None:
        super().__init__(parent)
        self._callback = callback

    def eventFilter(self, obj, event):  # noqa: N802 (Qt API)
        if event.type() == QEvent.Close:
            self._callback()
        return False


class ClosesWithViewer:
    """Mixin for a QWidget dock with a `shutdown()`: call `watch_viewer_close()` in __init__."""

    def watch_viewer_close(self) -> None:
        self._watched_window = None
        self._close_watcher = _CloseWatcher(self.shutdown, self)
        app = QApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(weak_call(self, "shutdown"))

    def _watch_main_window(self) -> None:
        """Watch the viewer's main window (found through the dock's parents) for its Close event."""
        if getattr(self, "_closed", False):
            return
        try:
            widget = self.parentWidget()
        except RuntimeError:  # deleted
            return
        while widget is not None and not isinstance(widget, QMainWindow):
            widget = widget.parentWidget()
        watched = self._watched_window() if self._watched_window is not None else None
        if widget is not None and widget is not watched:
            widget.installEventFilter(self._close_watcher)
            # only a weak reference: the main window holds napari's QtViewer, which must die with it
            self._watched_window = weakref.ref(widget)

    def event(self, event) -> bool:  # noqa: D102 (Qt API)
        if event.type() == QEvent.ParentChange and self.parentWidget() is None and self._watched_window is not None:
            # napari took the dock out of its window (its close button): stop its work
            self.shutdown()
        elif event.type() in (QEvent.ParentChange, QEvent.Show):
            self._watch_main_window()
            # napari puts the dock into its main window right after wrapping us in it
            QTimer.singleShot(0, weak_call(self, "_watch_main_window"))
        return super().event(event)
