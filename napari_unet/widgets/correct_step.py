"""Step 4 of the dock: correct the objects (merge, split, remove, renumber), then accept a region."""

from __future__ import annotations

import re

import numpy as np
from napari.layers import Image, Labels, Shapes
from qtpy.QtCore import Signal
from qtpy.QtWidgets import QComboBox, QFrame, QHBoxLayout, QLineEdit, QSpinBox, QWidget

from napari_unet import conventions as c
from napari_unet.errors import UserInputError
from napari_unet.functionals.corrections import (
    accept_region,
    clear_accepted,
    merge_objects,
    object_at,
    region_box,
    region_mask,
    relabel_sequential,
    remove_small_objects,
    split_object_by_line,
    split_object_by_seeds,
)
from napari_unet.napari import layers as lb
from napari_unet.napari.layer_events import LayerListWatch
from napari_unet.napari.linked_undo import LinkedUndo
from napari_unet.widgets import ui
from napari_unet.widgets.controller import Controller
from napari_unet.widgets.messages import guarded

ROLE_CORRECTIONS = "corrections"  # the Shapes layer for cut lines and accept rectangles

REGIONS = {
    "view": "current view",
    "rectangle": "drawn rectangle",
    "plane": "whole plane",
    "image": "whole image (all planes)",
}


class CorrectStep(QWidget):
    """Object ids and the correction tools; region choice, Accept and Clear accepted."""

    corrected = Signal(str)

    def __init__(self, controller: Controller, parent=None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.viewer = controller.viewer
        self._undo_links = LinkedUndo(on_change=self._after_linked_undo)
        layout = ui.step_layout(self, "Fix the objects (napari's brush, eraser and fill work too), "
                                      "then accept a region as training data")
        self.predict_first = ui.hint("Predict first (step 3, Shift+R): these tools edit the predicted objects, "
                                     "and Accept keeps them as training data.")
        layout.addWidget(self.predict_first)
        form = ui.form()
        self.ids_edit = QLineEdit()
        self.ids_edit.setPlaceholderText("object ids, e.g. 4, 9")
        self.ids_edit.setToolTip("Objects to merge or split: type their ids, or press 'Pick' and click them in the viewer")
        self.pick_button = ui.button(
            "Pick", "Click objects in the viewer to add (or remove) them to the list; click Pick again to finish",
            self._toggle_pick, checkable=True,
        )
        ids_row = QHBoxLayout()
        ids_row.setContentsMargins(0, 0, 0, 0)
        ids_row.addWidget(self.ids_edit, 1)
        ids_row.addWidget(self.pick_button)
        form.addRow(ui.label("Objects", self.ids_edit.toolTip()), ids_row)
        layout.addLayout(form)

        self.merge_button = ui.button("Merge  (Shift+M)", "Merge the listed objects into one", self.merge)
        self.parts_spin = QSpinBox()
        self.parts_spin.setRange(2, 20)
        self.parts_spin.setValue(2)
        self.parts_spin.setPrefix("into ")
        self.parts_spin.setToolTip("Number of parts 'Split' cuts the first listed object into")
        self.split_button = ui.button("Split", "Split the first listed object at its centres (watershed)",
                                      self.split_by_seeds)
        layout.addLayout(ui.row(self.merge_button, self.split_button, self.parts_spin))
        self.draw_line_button = ui.button(
            "Draw cut line", "Draw a line across an object (double-click ends it), then press 'Split along line'",
            lambda: self.start_drawing("path"),
        )
        self.split_line_button = ui.button("Split along line", "Cut the object the drawn line crosses most into its parts",
                                           self.split_by_line)
        layout.addLayout(ui.row(self.draw_line_button, self.split_line_button))
        self.small_spin = QSpinBox()
        self.small_spin.setRange(1, 1_000_000)
        self.small_spin.setValue(30)
        self.small_spin.setPrefix("< ")
        self.small_spin.setSuffix(" px")
        self.small_spin.setToolTip("Objects smaller than this are removed by 'Remove small'")
        self.remove_small_button = ui.button("Remove small", "Delete the objects of this plane below the size on the right",
                                             self.remove_small)
        self.relabel_button = ui.button("Relabel 1…n", "Renumber the objects of this plane 1, 2, 3, … (keeps ids small)",
                                        self.relabel)
        layout.addLayout(ui.row(self.remove_small_button, self.small_spin, self.relabel_button))

        line = QFrame()
        line.setFrameShape(QFrame.HLine)
        line.setFrameShadow(QFrame.Sunken)
        layout.addWidget(line)
        accept_form = ui.form()
        self.region_combo = QComboBox()
        for key, text in REGIONS.items():
            self.region_combo.addItem(text, key)
        self.region_combo.setToolTip("Region to accept or clear: what you see, a rectangle drawn with 'Draw rectangle', "
                                     "the plane on display, or every predicted plane")
        accept_form.addRow(ui.label("Region", self.region_combo.toolTip()), self.region_combo)
        layout.addLayout(accept_form)
        self.draw_rect_button = ui.button("Draw rectangle", "Draw the rectangle to accept (then choose Region: drawn "
                                          "rectangle)", lambda: self.start_drawing("rectangle"))
        layout.addWidget(self.draw_rect_button)
        self.accept_button = ui.button(
            "Accept region  (Shift+K)",
            "The corrected prediction in the region becomes dense training data (annotations + accepted objects); "
            "Ctrl+Z in the annotations layer undoes both",
            self.accept,
        )
        self.clear_accepted_button = ui.button("Clear accepted", "Un-accept the region (your annotations stay as they are)",
                                               self.clear_accepted)
        layout.addLayout(ui.row(self.accept_button, self.clear_accepted_button))
        self.accepted_status = ui.label("", "Accepted pixels of the selected image")
        self.accepted_status.setWordWrap(True)
        layout.addWidget(self.accepted_status)
        layout.addWidget(ui.hint("Then train again (Shift+T): accepted regions train classes and object borders, "
                                 "and new predictions keep your objects there (Clear accepted to see the model's)."))
        layout.addStretch(1)
        ui.listen(controller.image_changed, self.update_status)
        ui.listen(controller.accepted_changed, self.update_status)
        for signal in (controller.image_changed, controller.accepted_changed, controller.busy_changed):
            ui.listen(signal, self.update_state)
        self._layers_watch = LayerListWatch(self.viewer, lambda: ui.later(self.update_state))  # deleted, re-added
        self.update_status()
        self.update_state()

    def update_state(self) -> None:
        """Enable the tools that can work now: object edits need the image's instance layer, Accept its
        predictions, Clear accepted an accepted layer; the hint on top says to predict first."""
        if self.controller.closed:
            return
        has_image = self.controller.image is not None
        has_objects = self.controller.paired(c.ROLE_INSTANCES) is not None
        predicted = has_objects and self.controller.paired(c.ROLE_SEMANTIC) is not None
        for widget in (self.ids_edit, self.pick_button, self.merge_button, self.split_button, self.parts_spin,
                       self.draw_line_button, self.split_line_button, self.remove_small_button, self.small_spin,
                       self.relabel_button):
            widget.setEnabled(has_objects)
        for widget in (self.region_combo, self.draw_rect_button, self.accept_button):
            widget.setEnabled(predicted)
        self.clear_accepted_button.setEnabled(self.controller.paired(c.ROLE_ACCEPTED) is not None)
        self.predict_first.setVisible(has_image and not has_objects)

    def notify(self, level: str, text: str) -> None:
        self.controller.notify(level, text)

    # --- object ids -----------------------------------------------------------------------------

    def object_ids(self) -> list[int]:
        ids = [int(t) for t in re.findall(r"\d+", self.ids_edit.text())]
        return [i for i in dict.fromkeys(ids) if i > 0]

    def set_object_ids(self, ids) -> None:
        self.ids_edit.setText(", ".join(str(int(i)) for i in ids))

    def _require_instances(self):
        image, layout, plane = self.controller.selected()
        layer = self.controller.paired(c.ROLE_INSTANCES)
        if layer is None:
            raise UserInputError("no instance layer yet: predict first (step 3, Shift+R)")
        lb.check_pair(image, layer, layout)
        return image, layout, plane, layer

    def _edit_instances(self, edit, what: str) -> None:
        """Apply `edit(labels, origin)` to the plane on display, or for a plane too big for memory (a
        prediction store) to the part in view; `origin` is the (row, col) of its first pixel."""
        image, layout, plane, layer = self._require_instances()
        region = lb.view_region(self.viewer, image, layout) if lb.is_lazy(layer) else None
        if region is not None:
            what += " (in the current view)"
        origin = np.array([0, 0] if region is None else [region[0].start, region[1].start])
        changed = lb.write_undoable(layer, plane, edit(lb.read_plane(layer, plane, region), origin), region)
        self.controller.instances_updated.emit()
        undo = "a pyramid's edits are not undoable" if layer.multiscale else "Ctrl+Z in the instance layer undoes it"
        self.notify("info", f"{what} ({changed:,} pixels changed; {undo})")
        self.corrected.emit(what)

    # --- corrections ----------------------------------------------------------------------------

    @guarded
    def merge(self, ids=None) -> None:
        ids = list(ids) if ids is not None else self.object_ids()
        self._edit_instances(lambda labels, _: merge_objects(labels, ids), f"merged objects {', '.join(map(str, ids))}")
        self.set_object_ids([])

    @guarded
    def split_by_seeds(self, object_id: int | None = None, parts: int | None = None) -> None:
        ids = [object_id] if object_id is not None else self.object_ids()
        if not ids:
            raise UserInputError("type the id of the object to split (or Pick it in the viewer)")
        n = parts or self.parts_spin.value()
        self._edit_instances(lambda labels, _: split_object_by_seeds(labels, ids[0], n), f"split object {ids[0]} in {n}")

    @guarded
    def split_by_line(self, line=None, object_id: int | None = None) -> None:
        image, _, plane, layer = self._require_instances()
        shapes = self._corrections_layer(image, create=False)
        used = None
        if line is None:
            used, data = lb.last_shape(shapes, ("path", "line"))
            if data is None:
                raise UserInputError("draw a cut line first: 'Draw cut line', then click across the object, "
                                     "double-click to finish")
            line = lb.world_points_to_plane(data, shapes, layer)
        line = np.asarray(line, dtype=float)[:, -2:]
        if object_id is None:
            ids = self.object_ids()
            object_id = ids[0] if ids else _object_under_line(layer, plane, line)
        self._edit_instances(lambda lab, origin: split_object_by_line(lab, object_id, line - origin), f"split object {object_id} along the line")
        if used is not None:
            shapes.data = [d for i, d in enumerate(shapes.data) if i != used]  # the cut is done: tidy up

    @guarded
    def remove_small(self, min_size: int | None = None) -> None:
        size = int(min_size or self.small_spin.value())
        self._edit_instances(lambda labels, _: remove_small_objects(labels, size), f"removed objects below {size} px")

    @guarded
    def relabel(self) -> None:
        if lb.is_lazy(self._require_instances()[3]):
            raise UserInputError("renumbering needs every object of the image: this one is too big for memory")
        self._edit_instances(lambda labels, _: relabel_sequential(labels), "objects renumbered 1…n")

    # --- picking --------------------------------------------------------------------------------

    def _toggle_pick(self) -> None:
        callbacks = self.viewer.mouse_drag_callbacks
        if self.pick_button.isChecked():
            try:
                _, _, _, layer = self._require_instances()
            except UserInputError as error:
                self.pick_button.setChecked(False)
                self.notify("error", str(error))
                return
            self.viewer.layers.selection.active = layer
            layer.mode = "pan_zoom"
            if self._on_pick_click not in callbacks:
                callbacks.append(self._on_pick_click)
            self.notify("info", "click objects to list them (click again to unlist); press Pick again when done")
        elif self._on_pick_click in callbacks:
            callbacks.remove(self._on_pick_click)

    def _on_pick_click(self, viewer, event):
        start = np.asarray(event.position)
        yield
        while event.type == "mouse_move":
            yield
        if np.linalg.norm(np.asarray(event.position) - start) > 3:
            return  # a drag pans the view; only clicks pick
        self.pick_at(event.position)

    @guarded
    def pick_at(self, world_position) -> int:
        """Add (or remove) the object under a world position to the object list; returns its id."""
        _, _, _, layer = self._require_instances()
        data = np.asarray(layer.world_to_data(world_position))
        plane = tuple(int(round(v)) for v in data[:-2])
        h, w = layer.data.shape[-2:]
        row, col = (int(np.clip(np.round(v), 0, n - 1)) for v, n in zip(data[-2:], (h, w)))
        object_id = object_at(lb.read_plane(layer, plane, (slice(row, row + 1), slice(col, col + 1))), (0, 0))
        if object_id == 0:
            self.notify("info", "no object there (background)")
            return 0
        ids = self.object_ids()
        self.set_object_ids([i for i in ids if i != object_id] if object_id in ids else ids + [object_id])
        return object_id

    # --- drawing --------------------------------------------------------------------------------

    def _corrections_layer(self, image: Image, *, create: bool = True) -> Shapes | None:
        for layer in self.viewer.layers:
            if isinstance(layer, Shapes) and lb.role_of(layer) == ROLE_CORRECTIONS and lb.meta(layer).get("image") == image.name:
                return layer
        if not create:
            return None
        layout = lb.layout_in(self.viewer, image)
        scale, translate = lb.labels_scale_translate(image, layout)
        return self.viewer.add_shapes(
            name=c.layer_name(image.name, ROLE_CORRECTIONS), ndim=len(layout.labels_shape), scale=scale,
            translate=translate, edge_color="yellow", face_color="transparent",
            edge_width=max(1.0, min(layout.plane_shape) / 300),
            metadata={c.METADATA_KEY: {"role": ROLE_CORRECTIONS, "image": image.name}},
        )

    @guarded
    def start_drawing(self, kind: str) -> None:
        image = self.controller.selected()[0]
        layer = self._corrections_layer(image)
        self.viewer.layers.selection.active = layer
        layer.mode = "add_path" if kind == "path" else "add_rectangle"
        if kind == "rectangle":
            self.region_combo.setCurrentIndex(self.region_combo.findData("rectangle"))
            self.notify("info", "drag a rectangle over the corrected area, then 'Accept region'")
        else:
            self.notify("info", "click points across the object, double-click to finish, then 'Split along line'")

    # --- accept ---------------------------------------------------------------------------------

    def _region(self, kind: str, image: Image, target: Labels):
        """The region argument of corrections.region_mask for a region kind ('image' -> None per plane)."""
        if kind == "view":
            return lb.view_region(self.viewer, image, lb.layout_in(self.viewer, image))
        if kind == "rectangle":
            shapes = self._corrections_layer(image, create=False)
            _, data = lb.last_shape(shapes, ("rectangle", "polygon"))
            if data is None:
                raise UserInputError("no rectangle drawn: click 'Draw rectangle' and drag one over the image")
            return lb.world_points_to_plane(data, shapes, target)
        return None

    @guarded
    def accept(self, region: str | None = None) -> int:
        """Accept the corrected prediction in a region ('view', 'rectangle', 'plane', 'image'); returns pixels."""
        kind = region or self.region_combo.currentData()
        image, layout, plane = self.controller.selected()
        semantic = self.controller.paired(c.ROLE_SEMANTIC)
        instances = self.controller.paired(c.ROLE_INSTANCES)
        if semantic is None or instances is None:
            raise UserInputError("nothing to accept yet: predict first (step 3, Shift+R), correct, then accept")
        annotations = self.controller.annotations_layer(image)
        for layer in (semantic, instances):
            lb.check_pair(image, layer, layout)
        accepted = self.controller.accepted_layer(image, layout)
        spec = self._region(kind, image, annotations)
        box, spec = self._lazy_box(kind, layout, spec, semantic)
        planes = list(layout.planes_with_data(semantic.data)) if kind == "image" and box is None else [plane]
        total = 0
        with annotations.block_history(), accepted.block_history():  # one Ctrl+Z step, however many planes
            for p in planes:
                mask = region_mask(layout.plane_shape if box is None else _box_shape(box), spec)
                new_accepted, new_annotations = accept_region(
                    lb.read_plane(accepted, p, box), lb.read_plane(annotations, p, box),
                    lb.read_plane(semantic, p, box), lb.read_plane(instances, p, box), mask,
                )
                lb.write_undoable(accepted, p, new_accepted, box)
                lb.write_undoable(annotations, p, new_annotations, box)
                total += int(np.count_nonzero(mask))
        if total == 0:
            raise UserInputError("there is no prediction to accept: predict first")
        self._undo_links.link_last(annotations, accepted)
        self.controller.annotations_changed.emit()
        if self.controller.is_uncorrected(image):
            self.notify("warning", f"accepted {total:,} pixels ({REGIONS[kind]}) that you did not correct since the "
                                   "last prediction: the model will learn its own mistakes there. Look first; "
                                   "Ctrl+Z undoes the accept")
        else:
            self.notify("info", f"accepted {total:,} pixels as training data ({REGIONS[kind]}); "
                                "train again to use them")
        self.controller.accepted_changed.emit()
        return total

    @staticmethod
    def _lazy_box(kind: str, layout, spec, layer):
        """(box, region in it) for a layer too big for memory (a prediction store): only the region's
        bounding box is read and written; (None, spec) for layers in memory."""
        if not lb.is_lazy(layer):
            return None, spec
        if spec is None:
            h, w = layout.plane_shape
            raise UserInputError(f"this image is too big ({h}x{w}) to use all of it at once: "
                                 "zoom in and use 'current view', or use a 'drawn rectangle'")
        return region_box(layout.plane_shape, spec)

    def _after_linked_undo(self) -> None:
        self.controller.accepted_changed.emit()

    @guarded
    def clear_accepted(self, region: str | None = None) -> None:
        kind = region or self.region_combo.currentData()
        image, layout, plane = self.controller.selected()
        accepted = self.controller.paired(c.ROLE_ACCEPTED)
        if accepted is None:
            raise UserInputError("nothing accepted yet")
        spec = self._region(kind, image, accepted)
        box, spec = self._lazy_box(kind, layout, spec, accepted)
        with accepted.block_history():
            for p in layout.planes() if kind == "image" and box is None else [plane]:
                mask = region_mask(layout.plane_shape if box is None else _box_shape(box), spec)
                lb.write_undoable(accepted, p, clear_accepted(lb.read_plane(accepted, p, box), mask), box)
        self.notify("info", f"cleared accepted pixels ({REGIONS[kind]}); the annotations keep their labels")
        self.controller.accepted_changed.emit()

    def update_status(self) -> None:
        if self.controller.closed:
            return
        image, layer = self.controller.image, self.controller.paired(c.ROLE_ACCEPTED)
        if layer is None:
            self.accepted_status.setText("nothing accepted yet")
            return
        if lb.is_lazy(layer):  # too big to count on the GUI thread
            self.accepted_status.setText(f"accepted objects of '{image.name}' are saved in {lb.meta(layer).get('store')}")
            return
        self.accepted_status.setText(f"{int(np.count_nonzero(layer.data)):,} accepted pixels in '{image.name}'")

    def shutdown(self) -> None:
        self._layers_watch.disconnect()
        try:
            if self._on_pick_click in self.viewer.mouse_drag_callbacks:
                self.viewer.mouse_drag_callbacks.remove(self._on_pick_click)
        except Exception:  # the viewer is already gone
            pass


def _box_shape(box: tuple[slice, slice]) -> tuple[int, int]:
    return box[0].stop - box[0].start, box[1].stop - box[1].start


def _object_under_line(layer: Labels, plane: tuple, line: np.ndarray) -> int:
    """The object a drawn line crosses most (only the line's bounding box is read)."""
    h, w = layer.data.shape[-2:]
    low = np.clip(np.floor(line.min(axis=0)).astype(int), 0, (h, w))
    high = np.clip(np.ceil(line.max(axis=0)).astype(int) + 1, 0, (h, w))
    labels = lb.read_plane(layer, plane, (slice(low[0], high[0]), slice(low[1], high[1])))
    line = line - low
    samples = []
    for a, b in zip(line[:-1], line[1:]):
        n = int(np.ceil(np.abs(b - a).max())) + 1
        samples.append(np.linspace(a, b, max(n, 2)))
    points = np.round(np.concatenate(samples)).astype(int)
    h, w = labels.shape
    inside = (points[:, 0] >= 0) & (points[:, 0] < h) & (points[:, 1] >= 0) & (points[:, 1] < w)
    ids = labels[points[inside, 0], points[inside, 1]]
    ids = ids[ids > 0]
    if ids.size == 0:
        raise UserInputError("the line crosses no object: draw it across the object to split")
    values, counts = np.unique(ids, return_counts=True)
    return int(values[np.argmax(counts)])
