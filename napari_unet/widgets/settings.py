"""Settings that persist across launches (time budget, model size, tile size, instance parameters, ...).

Stored with Qt's QSettings in an INI file in the user's configuration folder, or at the path
in the environment variable NAPARI_UNET_SETTINGS (tests point it at a temporary file).
`persist(widget, key)` restores a control's saved value and saves every change.
"""

from __future__ import annotations

import os

from qtpy.QtCore import QSettings, QStandardPaths
from qtpy.QtWidgets import QAbstractSpinBox, QCheckBox, QComboBox

ENV = "NAPARI_UNET_SETTINGS"
GROUP = "dock"


def store() -> QSettings:
    path = os.environ.get(ENV)
    if not path:
        folder = QStandardPaths.writableLocation(QStandardPaths.AppConfigLocation) or os.path.expanduser("~")
        path = os.path.join(folder, "napari-unet", "settings.ini")
    return QSettings(path, QSettings.IniFormat)


def load(key: str, default=None):
    return store().value(f"{GROUP}/{key}", default)


def save(key: str, value) -> None:
    settings = store()
    settings.setValue(f"{GROUP}/{key}", value)
    settings.sync()


def persist(widget, key: str) -> None:
    """Restore `widget`'s saved value (if any, and valid) and save it whenever it changes.

    Works for spin boxes and sliders (`value`), combo boxes (the item's text) and check boxes.
    """
    saved = load(key)
    if isinstance(widget, QComboBox):
        if saved is not None and widget.findText(str(saved)) >= 0:
            widget.setCurrentText(str(saved))
        widget.currentTextChanged.connect(lambda text: save(key, text))
    elif isinstance(widget, QCheckBox):
        if saved is not None:
            widget.setChecked(str(saved).lower() in ("true", "1"))
        widget.toggled.connect(lambda checked: save(key, bool(checked)))
    else:  # QSpinBox, QDoubleSpinBox, superqt's labeled sliders
        if saved is not None:
            try:
                number = float(saved)
                widget.setValue(number if not _is_int(widget) else int(round(number)))
            except (TypeError, ValueError):
                pass  # an unreadable entry: keep the default
        widget.valueChanged.connect(lambda value: save(key, value))


def _is_int(widget) -> bool:
    return isinstance(widget, QAbstractSpinBox) and type(widget.value()) is int
