"""The one message path of napari-unet's docks: notifications, guarded actions, worker errors.

Every message goes through a `Messages` log: it is remembered (tests and the docks' message
lines read it), posted as a psygnal signal, and shown as a napari notification. A button's
action fails as a notification (`guarded`), never a traceback; a failed worker is reported
by `report_worker_error` in words that say what to do.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import wraps

from napari.utils.notifications import show_error, show_info, show_warning
from psygnal import Signal

from napari_unet.errors import UserInputError
from napari_unet.nn.device import is_out_of_memory

log = logging.getLogger(__name__)

COLORS = {"error": "#e0504d", "warning": "#e0a030", "info": ""}


class Messages:
    """A log of (level, text) messages that also shows each one as a napari notification.

    `toast_info` says whether routine information should pop up over the canvas right now
    (while training, a toast's animation repaints the canvas: every repaint is an
    event-loop stall, so information then goes to the message line only).
    """

    posted = Signal(str, str)

    def __init__(self, toast_info: Callable[[], bool] | None = None) -> None:
        self.log: list[tuple[str, str]] = []
        self.toast_info = toast_info or (lambda: True)

    def notify(self, level: str, text: str) -> None:
        self.log.append((level, text))
        self.posted.emit(level, text)
        if level == "info" and not self.toast_info():
            return
        {"error": show_error, "warning": show_warning}.get(level, show_info)(f"napari-unet: {text}")

    @property
    def last(self) -> tuple[str, str] | None:
        return self.log[-1] if self.log else None

    def errors(self) -> list[str]:
        return [text for level, text in self.log if level == "error"]


def guarded(method):
    """Run a UI action of an object with a `notify(level, text)` method.

    A UserInputError becomes its message; an action on a Qt object deleted while the viewer
    closes ends quietly; anything else is logged and shown as a short error line.
    """

    @wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except UserInputError as error:
            self.notify("error", str(error))
        except RuntimeError as error:
            if "deleted" in str(error):  # wrapped C/C++ object has been deleted: the viewer is closing
                return None
            log.exception("napari-unet: %s failed", method.__name__)
            self.notify("error", f"{method.__name__.strip('_')} failed: {error}")
        except Exception as error:  # never let a traceback reach the user from a button
            log.exception("napari-unet: %s failed", method.__name__)
            self.notify("error", f"{method.__name__.strip('_')} failed: {type(error).__name__}: {error}")
        return None

    return wrapper


def report_worker_error(
    notify: Callable[[str, str], None], what: str, error: BaseException, memory_advice: str, reassurance: str = ""
) -> None:
    """One notification for a failed worker: the user's mistake, GPU memory, or a bug (logged)."""
    error = getattr(error, "original", error)  # workers.WorkerFailure wraps the core's RuntimeErrors
    if isinstance(error, UserInputError):
        notify("error", f"{what} stopped: {error}")
    elif is_out_of_memory(error):
        notify("error", f"{what} stopped: out of GPU memory. {memory_advice}")
    else:
        log.error("napari-unet %s failed", what, exc_info=error)
        notify("error", f"{what} failed ({type(error).__name__}: {error}){reassurance}")
