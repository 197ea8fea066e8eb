"""Step 1 of the dock: pick the image, its channel axis and the classes; paint annotations."""

from __future__ import annotations

import numpy as np
from napari.layers import Image
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QComboBox, QWidget

from napari_unet import conventions as c
from napari_unet.errors import UserInputError
from napari_unet.functionals.data import label_counts
from napari_unet.functionals.layout import plane_label
from napari_unet.napari import channels as ch
from napari_unet.napari import layers as lb
from napari_unet.widgets import ui
from napari_unet.widgets.class_editor import ClassEditor
from napari_unet.widgets.controller import Controller
from napari_unet.widgets.layer_picker import LayerPicker
from napari_unet.widgets.messages import guarded


class AnnotateStep(QWidget):
    """Image, channels, class table and the annotation counts of the plane on display."""

    def __init__(self, controller: Controller, parent=None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.viewer = controller.viewer
        layout = ui.step_layout(self, "Pick the image to annotate; napari-unet pairs a training Labels layer with it")
        form = ui.form()
        self.image_picker = LayerPicker(self.viewer, (Image,), accept=lambda layer: lb.is_segmentable(self.viewer, layer),
                                        placeholder="(open an image first)")
        self.image_picker.setToolTip(
            "Image to annotate, train on and predict. Its annotations layer is created (or adopted) "
            "automatically. Training uses every image that has annotations."
        )
        self.image_picker.currentIndexChanged.connect(lambda _: self._on_image_picked())
        form.addRow(ui.label("Image", self.image_picker.toolTip()), self.image_picker)
        self.channel_combo = QComboBox()
        self.channel_combo.setToolTip(
            "Which axis holds the channels: 'none' treats extra axes as a stack of planes (Z, T); RGB images "
            "use their colour channels. Set before painting: the annotations layer has no channel axis."
        )
        self.channel_combo.currentIndexChanged.connect(lambda _: self._on_channel_changed())
        self.combine_button = ui.button(
            "Combine",
            "Use several image layers as the channels of one image (napari opens a multichannel file as one "
            "layer per channel): the layers selected in the layer list, else those opened with the picked one. "
            "Training and prediction then see all channels; labels lie on the first channel's pixels.",
            self.combine_channels,
        )
        form.addRow(ui.label("Channels", self.channel_combo.toolTip()), ui.row(self.channel_combo, self.combine_button))
        layout.addLayout(form)

        self.annotate_button = ui.button(
            "Paint annotations",
            "Select the image's annotations layer in paint mode with the class chosen below "
            "(creates it, or restores one you deleted)",
            self.annotate,
        )
        layout.addWidget(self.annotate_button)
        self.class_editor = ClassEditor()
        self.class_editor.changed.connect(self._on_classes_changed)
        self.class_editor.label_chosen.connect(self._on_label_chosen)
        self.class_editor.remove_button.clicked.connect(lambda: self.remove_last_class())
        layout.addWidget(self.class_editor)
        layout.addWidget(
            ui.hint("0 = not annotated (erase), 1 = background, 2+ = classes. A few strokes per class are enough.")
        )
        self.annotation_status = ui.label("", "Annotated pixels per label in the plane on display")
        self.annotation_status.setWordWrap(True)
        layout.addWidget(self.annotation_status)
        layout.addStretch(1)

        self._status_timer = QTimer(self)  # painting emits an event per stroke segment: count at most every 0.4 s
        self._status_timer.setSingleShot(True)
        self._status_timer.setInterval(400)
        self._status_timer.timeout.connect(self.update_status)
        ui.listen(controller.annotations_changed, self._schedule_status)
        ui.listen(controller.plane_changed, self._schedule_status)
        ui.listen(controller.suggestion_shown, self._on_suggestion)
        self._offered: set[str] = set()  # layers whose channel group was already pointed out
        self._on_image_picked()

    def _schedule_status(self) -> None:
        self._status_timer.start()

    def notify(self, level: str, text: str) -> None:
        self.controller.notify(level, text)

    # --- image and channels ---------------------------------------------------------------------

    def _on_image_picked(self) -> None:
        if self.controller.closed:
            return
        image = self.image_picker.layer()
        self._refresh_channel_combo(image)
        self._offer_combined_channels(image)
        self.controller.select_image(image)
        if image is not None:
            if self.controller.paired(c.ROLE_ANNOTATIONS) is None:
                # Created a moment later: a reader or sample adding an image *and* its annotations
                # layer in one go must get its own layer adopted, not a duplicate.
                ui.later(self._ensure_annotations, image.name)
            else:
                self._ensure_annotations(image.name)
        self._show_classes()

    def _on_suggestion(self, region) -> None:
        """A suggestion in another image: work on that image (its annotations layer becomes the one to paint)."""
        image = lb.get_layer(self.viewer, region.image, Image)
        current = self.image_picker.layer()
        if image is not None and (current is None or current.name != image.name):
            self.image_picker.set_layer(image)

    def _ensure_annotations(self, image_name: str) -> None:
        image = self.image_picker.layer()
        if self.controller.closed or image is None or image.name != image_name:
            return
        try:
            self.controller.annotations_layer(image)
        except UserInputError as error:
            self.notify("error", str(error))
        self._show_classes()

    def _show_classes(self) -> None:
        self.class_editor.set_classes(*self.controller.load_classes())
        self.update_status()

    def _refresh_channel_combo(self, image) -> None:
        self.channel_combo.blockSignals(True)
        self.channel_combo.clear()
        if image is None:
            self.channel_combo.addItem("—", None)
        elif image.rgb:
            self.channel_combo.addItem("RGB colour channels", None)
        elif lb.is_channel_stack(image):
            self.channel_combo.addItem(f"{len(lb.meta(image)['channel_layers'])} channel layers", 0)
        else:
            self.channel_combo.addItem("none (1 channel)", None)
            shape = lb.image_data(image).shape
            for axis in range(len(shape) - 2):
                self.channel_combo.addItem(f"axis {axis} ({shape[axis]} channels)", axis)
            annotations = self.controller.paired(c.ROLE_ANNOTATIONS, image)
            axis = lb.meta(annotations).get("channel_axis") if annotations is not None else None
            self.channel_combo.setCurrentIndex(max(self.channel_combo.findData(axis), 0))
        self.channel_combo.setEnabled(image is not None and not image.rgb and self.channel_combo.count() > 1)
        self.channel_combo.blockSignals(False)

    def _channel_layers(self) -> list:
        """Layers to combine: the image layers selected in the layer list (two or more, in list
        order), else the detected group of the picked image; [] when there are none."""
        selected = [layer for layer in self.viewer.layers
                    if layer in self.viewer.layers.selection and lb.is_segmentable(self.viewer, layer)]
        if len(selected) >= 2:
            return selected
        image = self.image_picker.layer()
        return (ch.group_of(self.viewer, image) or []) if image is not None else []

    def _offer_combined_channels(self, image) -> None:
        """Say so when the picked image looks like one channel of a file napari split into layers."""
        group = ch.group_of(self.viewer, image) if image is not None else None
        self.combine_button.setText(f"Combine {len(group)}" if group else "Combine")
        if group and image.name not in self._offered:
            self._offered.update(layer.name for layer in group)
            names = ", ".join(f"'{layer.name}'" for layer in group)
            self.notify("info", f"{names} look like the channels of one image: 'Combine' segments them as "
                        f"one {len(group)}-channel image")

    @guarded
    def combine_channels(self) -> None:
        """Combine the channel layers into one image and make it the picked image."""
        layers = self._channel_layers()
        if not layers:
            raise UserInputError("no channels to combine: select two or more image layers in the layer list "
                                 "(Ctrl+click), then press Combine")
        combined = ch.combine_channels(self.viewer, layers)
        self.image_picker.set_layer(combined)
        self._remove_empty_annotations(layers)
        self.notify("info", f"'{combined.name}': {', '.join(layer.name for layer in layers)} as one image's channels")

    def _remove_empty_annotations(self, channels: list) -> None:
        """The channels' own annotations layers, made when one was picked before combining: gone when
        nothing is painted in them (the combined image has its own), so that one layer is painted."""
        for channel in channels:
            layer = self.controller.paired(c.ROLE_ANNOTATIONS, channel)
            if layer is not None and not lb.is_lazy(layer) and not np.any(np.asarray(layer.data)):
                self.viewer.layers.remove(layer)

    @guarded
    def _on_channel_changed(self) -> None:
        if self.controller.image is None:
            return
        try:
            self.controller.set_channel_axis(self.channel_combo.currentData())
        except UserInputError:
            self._refresh_channel_combo(self.controller.image)
            raise

    # --- painting -------------------------------------------------------------------------------

    @guarded
    def annotate(self) -> None:
        """Make the annotations layer active in paint mode, ready to paint the chosen class."""
        layer = self.controller.annotations_layer()
        self.viewer.layers.selection.active = layer
        layer.mode = "paint"
        rows = {index.row() for index in self.class_editor.table.selectedIndexes()}
        layer.selected_label = c.label_value(min(rows)) if rows else max(layer.selected_label, c.BACKGROUND)
        self.class_editor.select_label(layer.selected_label)
        self.notify("info", f"paint in '{layer.name}': label {layer.selected_label} "
                    f"({self.class_editor.names[c.class_index(layer.selected_label)]}); 1 = background")

    def _on_label_chosen(self, value: int) -> None:
        layer = self.controller.paired(c.ROLE_ANNOTATIONS)
        if layer is not None:
            layer.selected_label = value
            self.viewer.layers.selection.active = layer
            if layer.mode not in ("paint", "fill", "polygon"):
                layer.mode = "paint"

    def _on_classes_changed(self, names: list, colors: list) -> None:
        self.controller.set_classes(names, colors)
        self.update_status()

    @guarded
    def remove_last_class(self) -> None:
        value = len(self.class_editor.names)  # label value of the last class
        if value <= 2:
            raise UserInputError("keep at least background and one class")
        layer = self.controller.paired(c.ROLE_ANNOTATIONS)
        if layer is not None:
            count = int(np.count_nonzero(np.asarray(layer.data) == value))
            if count:
                raise UserInputError(
                    f"label {value} ({self.class_editor.names[-1]}) is painted on {count} pixels: "
                    "erase them first (or keep the class)"
                )
        self.class_editor.remove_last()

    def update_status(self) -> None:
        if self.controller.closed:
            return
        image, layout, plane = self.controller.selected(required=False)
        layer = self.controller.paired(c.ROLE_ANNOTATIONS)
        if layer is None:
            self.annotation_status.setText("no annotations layer")
            return
        try:
            counts = label_counts(lb.read_plane(layer, plane))
        except Exception:  # a layer of another shape: check_pair reports it when it is used
            self.annotation_status.setText("")
            return
        names = self.class_editor.names
        parts = []
        for value in range(1, len(counts)):
            if counts[value]:
                name = names[c.class_index(value)] if c.class_index(value) < len(names) else "?"
                parts.append(f"{value}\u00a0{name}:\u00a0{counts[value]:,}\u00a0px")  # wraps between classes only
        where = f" ({plane_label(plane)})" if plane else ""
        text = "; ".join(parts) if parts else "nothing painted yet"
        if len(parts) == 1:
            text += " — paint one more class to train"
        self.annotation_status.setText(f"Annotated{where}: {text}")
