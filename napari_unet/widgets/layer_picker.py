"""A combo box of viewer layers that tracks the layer list (added, removed, renamed, reordered)."""

from __future__ import annotations

from collections.abc import Callable

from qtpy.QtWidgets import QComboBox, QSizePolicy

from napari_unet.napari.layer_events import LayerListWatch


class LayerPicker(QComboBox):
    """Lists the layers of `kinds` accepted by `accept`; keeps the selection by name when it can."""

    def __init__(
        self,
        viewer,
        kinds: tuple[type, ...],
        accept: Callable[[object], bool] | None = None,
        placeholder: str = "(none)",
        parent=None,
    ) -> None:
        super().__init__(parent)
        self.viewer = viewer
        self.kinds = kinds
        self.accept = accept or (lambda layer: True)
        self.placeholder = placeholder
        self.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.setMinimumContentsLength(12)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Fixed)
        self._watch = LayerListWatch(viewer, self.refresh)
        self.refresh()

    def candidates(self) -> list:
        return [layer for layer in self.viewer.layers if isinstance(layer, self.kinds) and self.accept(layer)]

    def refresh(self, event=None) -> None:
        try:
            current = self.currentText()
        except RuntimeError:  # the Qt object is gone (viewer closing)
            return
        names = [layer.name for layer in self.candidates()]
        if names == [self.itemText(i) for i in range(self.count())]:
            return
        self.blockSignals(True)
        self.clear()
        if names:
            self.addItems(names)
        else:
            self.addItem(self.placeholder)
        self.setEnabled(bool(names))
        index = names.index(current) if current in names else 0
        self.setCurrentIndex(index)
        self.blockSignals(False)
        if self.currentText() != current:
            self.currentIndexChanged.emit(self.currentIndex())

    def layer(self):
        name = self.currentText()
        for layer in self.candidates():
            if layer.name == name:
                return layer
        return None

    def set_layer(self, layer) -> None:
        self.refresh()
        index = self.findText(layer.name)
        if index >= 0:
            self.setCurrentIndex(index)

    def disconnect_viewer(self) -> None:
        self._watch.disconnect()
