"""The class list editor: label value, colour and name per class, background first.

Shows the annotation convention to the user: rows read "1 background", "2 nucleus", ...
and the note under the table says 0 = not annotated. Clicking a row selects that label for
painting.
"""

from __future__ import annotations

from qtpy.QtCore import Qt, Signal
from qtpy.QtGui import QColor
from qtpy.QtWidgets import (
    QAbstractItemView,
    QColorDialog,
    QHBoxLayout,
    QHeaderView,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from napari_unet import conventions as c


def _qcolor(rgba) -> QColor:
    return QColor.fromRgbF(*[float(v) for v in rgba])


class ClassEditor(QWidget):
    """Editable table of classes; emits `changed(names, colors)` and `label_chosen(value)`."""

    changed = Signal(list, list)
    label_chosen = Signal(int)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._names: list[str] = list(c.DEFAULT_CLASS_NAMES)
        self._colors: list[tuple] = [c.class_color(i) for i in range(len(self._names))]
        self._updating = False
        self._dialog: QColorDialog | None = None

        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["label", "colour", "class name"])
        self.table.verticalHeader().setVisible(False)
        header = self.table.horizontalHeader()
        # Fixed widths, known before any paint: a column sized "to contents" grows only after the
        # swatch is placed, and the swatch then covered the label value until the next repaint.
        for column, width in ((0, 48), (1, 56)):
            header.setSectionResizeMode(column, QHeaderView.Fixed)
            header.resizeSection(column, width)
        header.setSectionResizeMode(2, QHeaderView.Stretch)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.table.setToolTip(
            "Label values painted in the annotations layer: 0 = not annotated (eraser), 1 = background, "
            "2, 3, ... = your classes. Click a row to paint with that label; double-click a name to rename it."
        )
        self.table.itemChanged.connect(self._on_item_changed)
        self.table.itemSelectionChanged.connect(self._on_selection)

        self.add_button = QPushButton("+ class")
        self.add_button.setToolTip("Add a class: it gets the next label value and its own colour")
        self.add_button.clicked.connect(self.add_class)
        self.remove_button = QPushButton("− last class")
        self.remove_button.setToolTip(
            "Remove the last class (refused while pixels are painted with it, so nothing painted is lost)"
        )

        buttons = QHBoxLayout()
        buttons.setContentsMargins(0, 0, 0, 0)
        buttons.addWidget(self.add_button)
        buttons.addWidget(self.remove_button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.table)
        layout.addLayout(buttons)
        self._rebuild()

    # --- state ----------------------------------------------------------------------------------

    @property
    def names(self) -> list[str]:
        return list(self._names)

    @property
    def colors(self) -> list[tuple]:
        return list(self._colors)

    def set_classes(self, names: list[str], colors: list[tuple]) -> None:
        self._names = list(names)
        self._colors = [tuple(col) for col in colors]
        self._rebuild()

    def add_class(self) -> None:
        k = len(self._names)
        self._names.append(f"class {k}")
        self._colors.append(c.class_color(k))
        self._rebuild()
        self._emit()

    def remove_last(self) -> None:
        if len(self._names) <= 2:
            return
        self._names.pop()
        self._colors.pop()
        self._rebuild()
        self._emit()

    def select_label(self, value: int) -> None:
        row = c.class_index(value)
        if 0 <= row < self.table.rowCount():
            self._updating = True
            self.table.selectRow(row)
            self._updating = False

    # --- table ----------------------------------------------------------------------------------

    def _rebuild(self) -> None:
        self._updating = True
        self.table.setRowCount(len(self._names))
        for row, (name, color) in enumerate(zip(self._names, self._colors)):
            value = QTableWidgetItem(str(c.label_value(row)))
            value.setFlags(Qt.ItemIsSelectable | Qt.ItemIsEnabled)
            value.setTextAlignment(Qt.AlignCenter)
            value.setToolTip(f"label value {c.label_value(row)} in the annotations layer")
            self.table.setItem(row, 0, value)
            swatch = QPushButton()
            swatch.setFixedSize(36, 18)
            swatch.setStyleSheet(f"background-color: {_qcolor(color).name()}; border: 1px solid #888;")
            swatch.setToolTip(f"Colour of '{name}': click to change it")
            swatch.clicked.connect(lambda _=False, r=row: self._pick_color(r))
            cell = QWidget()  # centres the swatch in its cell
            cell_layout = QHBoxLayout(cell)
            cell_layout.setContentsMargins(0, 0, 0, 0)
            cell_layout.addWidget(swatch, 0, Qt.AlignCenter)
            cell.setToolTip(swatch.toolTip())
            self.table.setCellWidget(row, 1, cell)
            item = QTableWidgetItem(name)
            flags = Qt.ItemIsSelectable | Qt.ItemIsEnabled
            if row > 0:
                flags |= Qt.ItemIsEditable
                item.setToolTip("Class name: double-click to rename")
            else:
                item.setToolTip("Background (label 1) is always the first class")
            item.setFlags(flags)
            self.table.setItem(row, 2, item)
        self.remove_button.setEnabled(len(self._names) > 2)
        rows = len(self._names)
        header = max(self.table.horizontalHeader().sizeHint().height(), self.table.horizontalHeader().height())
        row_height = max(self.table.verticalHeader().defaultSectionSize(), 24)
        for r in range(rows):
            self.table.setRowHeight(r, row_height)
        visible = min(rows, 6)  # beyond six classes the table scrolls
        self.table.setVerticalScrollBarPolicy(Qt.ScrollBarAsNeeded if rows > 6 else Qt.ScrollBarAlwaysOff)
        self.table.setFixedHeight(header + visible * row_height + 2 * self.table.frameWidth() + 8)
        for r in range(rows):  # placed now: Qt would place a new cell widget only at the next layout pass
            self.table.cellWidget(r, 1).setGeometry(self.table.visualRect(self.table.model().index(r, 1)))
        self._updating = False

    def _on_item_changed(self, item: QTableWidgetItem) -> None:
        if self._updating or item.column() != 2:
            return
        name = item.text().strip() or f"class {item.row()}"
        self._names[item.row()] = name
        self._emit()

    def _on_selection(self) -> None:
        if self._updating:
            return
        rows = {index.row() for index in self.table.selectedIndexes()}
        if rows:
            self.label_chosen.emit(c.label_value(min(rows)))

    def _pick_color(self, row: int) -> None:
        # Non-modal: the colour applies live and the viewer stays usable.
        if self._dialog is not None:
            self._dialog.close()
        dialog = QColorDialog(_qcolor(self._colors[row]), self)
        dialog.setWindowTitle(f"Colour of '{self._names[row]}'")
        dialog.setOption(QColorDialog.ShowAlphaChannel, False)
        dialog.setModal(False)

        def apply(color: QColor, r=row) -> None:
            if color.isValid() and r < len(self._colors):
                self._colors[r] = (color.redF(), color.greenF(), color.blueF(), 1.0)
                self._rebuild()
                self._emit()

        dialog.currentColorChanged.connect(apply)
        dialog.colorSelected.connect(apply)
        self._dialog = dialog
        dialog.show()

    def _emit(self) -> None:
        self.changed.emit(self.names, self.colors)
