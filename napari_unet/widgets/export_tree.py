"""The export dock's list of images, each with the Labels layers that go with it, to tick.

Tick states are kept by image name (and role), so they survive the list being rebuilt
when layers are added, renamed or reordered, and an image can be unticked before its
layer exists.
"""

from __future__ import annotations

from collections.abc import Iterable

from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import QSizePolicy, QTreeWidget, QTreeWidgetItem

from napari_unet import conventions as c
from napari_unet.io.export import DATASET_SUFFIX
from napari_unet.io.names import safe_name
from napari_unet.napari.export import Structure


class ExportTree(QTreeWidget):
    """Images and their paired Labels layers with tick boxes (see `napari.export.export_structure`)."""

    ticks_changed = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._unchecked_images: set[str] = set()
        self._unchecked_labels: set[tuple[str, str]] = set()
        self._structure: Structure = []
        self.setHeaderHidden(True)
        self.setColumnCount(1)
        self.setMinimumHeight(130)
        self.setMaximumHeight(320)  # more images: the list scrolls
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Preferred)
        self.setToolTip(
            "Image layers of the viewer. Each ticked image is exported with its ticked Labels layers "
            "(annotations, semantic, instances, accepted regions), found by the role stored with the "
            "layer or by their name ('<image> annotations', ...)")
        self.itemChanged.connect(self._on_item_changed)

    def show_structure(self, structure: Structure) -> bool:
        """Rebuild the list for `structure` (tick states kept by name); False when nothing changed."""
        if structure == self._structure:
            return False
        self._structure = structure
        self.blockSignals(True)
        try:
            self.clear()
            for image, pairs in structure:
                top = QTreeWidgetItem([image])
                top.setData(0, Qt.UserRole, ("image", image))
                top.setFlags((top.flags() | Qt.ItemIsUserCheckable) & ~Qt.ItemIsSelectable)
                checked = image not in self._unchecked_images
                top.setCheckState(0, Qt.Checked if checked else Qt.Unchecked)
                top.setToolTip(0, f"Export '{image}' as {safe_name(image)}{DATASET_SUFFIX}")
                for role, name in pairs:
                    text = name if name == c.layer_name(image, role) else f"{name}  ({role})"
                    child = QTreeWidgetItem([text])
                    child.setData(0, Qt.UserRole, ("labels", image, role))
                    child.setFlags((child.flags() | Qt.ItemIsUserCheckable) & ~Qt.ItemIsSelectable)
                    child.setCheckState(0, Qt.Unchecked if (image, role) in self._unchecked_labels else Qt.Checked)
                    child.setToolTip(0, f"Include the {role} layer '{name}' in the dataset of '{image}'")
                    child.setDisabled(not checked)
                    top.addChild(child)
                if not pairs:
                    top.setToolTip(0, top.toolTip(0) + " (no paired Labels layers: the image alone)")
                self.addTopLevelItem(top)
                top.setExpanded(True)
            if not structure:
                placeholder = QTreeWidgetItem(["(no image layers: open an image first)"])
                placeholder.setFlags(Qt.NoItemFlags)
                self.addTopLevelItem(placeholder)
        finally:
            self.blockSignals(False)
        return True

    def _on_item_changed(self, item: QTreeWidgetItem, column: int = 0) -> None:
        data = item.data(0, Qt.UserRole)
        if not data:
            return
        checked = item.checkState(0) == Qt.Checked
        if data[0] == "image":
            (self._unchecked_images.discard if checked else self._unchecked_images.add)(data[1])
            for i in range(item.childCount()):
                item.child(i).setDisabled(not checked)
        else:
            key = (data[1], data[2])
            (self._unchecked_labels.discard if checked else self._unchecked_labels.add)(key)
        self.ticks_changed.emit()

    def _items(self) -> Iterable[QTreeWidgetItem]:
        for i in range(self.topLevelItemCount()):
            top = self.topLevelItem(i)
            yield top
            for j in range(top.childCount()):
                yield top.child(j)

    def set_image_checked(self, image: str, checked: bool = True) -> None:
        """Tick or untick an image (also before its layer exists: kept by name)."""
        (self._unchecked_images.discard if checked else self._unchecked_images.add)(image)
        for item in self._items():
            if item.data(0, Qt.UserRole) == ("image", image):
                item.setCheckState(0, Qt.Checked if checked else Qt.Unchecked)
        self.ticks_changed.emit()

    def set_labels_checked(self, image: str, role: str, checked: bool = True) -> None:
        """Tick or untick the `role` Labels layer of `image`."""
        (self._unchecked_labels.discard if checked else self._unchecked_labels.add)((image, role))
        for item in self._items():
            if item.data(0, Qt.UserRole) == ("labels", image, role):
                item.setCheckState(0, Qt.Checked if checked else Qt.Unchecked)

    def tick_all(self, checked: bool) -> None:
        for image, _ in self._structure:
            self.set_image_checked(image, checked)

    def checked_images(self, structure: Structure) -> list[str]:
        """Names of the ticked images of `structure`, in its order."""
        return [image for image, _ in structure if image not in self._unchecked_images]

    def checked_roles(self, structure: Structure, image: str) -> list[str]:
        """Roles of the ticked Labels layers of `image` in `structure`."""
        pairs = dict(structure).get(image, [])
        return [role for role, _ in pairs if (image, role) not in self._unchecked_labels]
