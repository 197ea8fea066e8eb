"""The one way a button's action fails in napari-unet: as a notification, never a traceback."""

from __future__ import annotations

import logging
from functools import wraps

from napari_unet.errors import UserInputError

log = logging.getLogger(__name__)


def guarded(method):
    """Run a UI action of a widget with a `notify(kind, text)` method.

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
