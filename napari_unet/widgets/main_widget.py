"""The napari-unet dock: one workflow from top to bottom.

1 Image & annotations -> 2 Train -> 3 Predict -> 4 Correct & accept -> back to 2.

The dock only translates between napari layers and the compute core (see napari_unet.napari.layers);
training and prediction run in napari generator workers, so the viewer never freezes.
Every public action (`train`, `stop`, `predict`, `merge`, `accept`, ...) can be called
from code and tests; user mistakes become napari notifications, never tracebacks.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import weakref
from pathlib import Path

import numpy as np
from napari.layers import Image, Labels, Shapes
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import QEvent, QObject, Qt, QTimer, Signal
from qtpy.QtWidgets import (
    QApplication,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMainWindow,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)
from superqt import QCollapsible, QLabeledDoubleSlider

from napari_unet import conventions as c
from napari_unet.errors import UserInputError
from napari_unet.functionals.corrections import (
    accept_region,
    clear_accepted,
    merge_objects,
    object_at,
    region_mask,
    relabel_sequential,
    remove_small_objects,
    split_object_by_line,
    split_object_by_seeds,
)
from napari_unet.functionals.instances import InstanceParams
from napari_unet.napari import layers as lb
from napari_unet.nn.device import describe, is_out_of_memory, pick_device
from napari_unet.nn.model import PRESETS
from napari_unet.nn.segmenter import Segmenter
from napari_unet.nn.training import TrainConfig, Trainer
from napari_unet.widgets.class_editor import ClassEditor
from napari_unet.widgets.guarded import guarded
from napari_unet.widgets.layer_picker import LayerPicker
from napari_unet.widgets.loss_plot import LossPlot
from napari_unet.widgets.session import CachedPlane, Session
from napari_unet.widgets.workers import (
    PlaneResult,
    WorkerFailure,
    gui_friendly_threads,
    predict_generator,
    start_worker,
    train_generator,
    warm_up_torch,
)

log = logging.getLogger(__name__)

ROLE_CORRECTIONS = "corrections"  # the Shapes layer for cut lines and accept rectangles

# Viewer shortcuts (none of them is bound by napari 0.9 to the viewer or any layer type).
SHORTCUTS = {
    "Shift-T": ("train", "train / continue training"),
    "Shift-S": ("stop", "stop training (keeps the model) or cancel prediction"),
    "Shift-R": ("predict", "run prediction"),
    "Shift-M": ("merge", "merge the listed objects"),
    "Shift-K": ("accept", "accept (keep) the chosen region as training data"),
}

REGIONS = {
    "view": "current view",
    "rectangle": "drawn rectangle",
    "plane": "whole plane",
    "image": "whole image (all planes)",
}

PREVIEW_MAX = 512  # largest side of the live-preview crop (the network runs on it in the training thread)
PREVIEW_MARGIN = 16  # context around the view so the crop's border does not show


def _weak_call(obj, name: str, *args):
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


def _shortcut_label(key: str) -> str:
    return key.replace("-", "+")


class _CloseWatcher(QObject):
    """Calls `callback` when the watched window is about to close."""

    def __init__(self, callback, parent=None) -> None:
        super().__init__(parent)
        self._callback = callback

    def eventFilter(self, obj, event):  # noqa: N802 (Qt API)
        if event.type() == QEvent.Close:
            self._callback()
        return False


class UNetWidget(QWidget):
    """napari-unet's dock widget (npe2 command `napari-unet.unet_widget`)."""

    training_finished = Signal(bool)  # True when a trained model came back
    prediction_finished = Signal(str)  # "done", "cancelled" or "failed"
    instances_updated = Signal()
    preview_painted = Signal()
    corrected = Signal(str)
    accepted_changed = Signal()

    def __init__(self, napari_viewer, parent=None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.session = Session()
        self.last_training_items: list = []
        self.last_message: tuple[str, str] | None = None
        self.messages: list[tuple[str, str]] = []
        self.train_threads: int | None = gui_friendly_threads()
        self._provenance: tuple[int, dict] | None = None  # (model version, model provenance)
        self._trainer: Trainer | None = None
        self._train_worker = None
        self._train_stop = threading.Event()
        self._train_images: set[str] = set()
        self._last_progress = None
        self._last_ui_update = 0.0
        self._preview_pending = False
        self._predict_worker = None
        self._predict_stop = threading.Event()
        self._predict_status = "done"
        self._predicting_image: str | None = None
        self._predict_total = 1
        self._predict_done = 0
        self._train_ok = False
        self._finish_message = ""
        self._tile_progress = [0, 0]
        self._instance_worker = None
        self._instance_pending = False
        self._removed_annotations: dict[str, tuple[np.ndarray, dict, object]] = {}
        self._layer_names: dict[int, str] = {}
        self._adopted: set[int] = set()
        self._picked: list[int] = []
        self._closed = False
        self._bound_keys: dict[str, object] = {}

        self._device = pick_device("auto")
        warm_up_torch()
        self._build_ui()
        self._connect_viewer()
        self._bind_keys()
        self._on_image_changed()
        self._update_state()

    # =========================================================================================
    # UI
    # =========================================================================================

    def _build_ui(self) -> None:
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        outer.addWidget(scroll)
        body = QWidget()
        body.setMinimumWidth(330)
        scroll.setWidget(body)
        self.setMinimumWidth(360)
        layout = QVBoxLayout(body)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.setSpacing(8)

        intro = QLabel(
            "<b>napari-unet</b> · paint a few strokes, train, correct, accept, repeat. "
            "Shortcuts: " + ", ".join(f"{_shortcut_label(k)} {v[0]}" for k, v in SHORTCUTS.items())
        )
        intro.setWordWrap(True)
        intro.setToolTip("\n".join(f"{_shortcut_label(k)}: {v[1]}" for k, v in SHORTCUTS.items()))
        layout.addWidget(intro)
        self.message_label = QLabel("")
        self.message_label.setWordWrap(True)
        self.message_label.setToolTip("The latest napari-unet message (also shown as a napari notification)")
        self.message_label.setVisible(False)
        layout.addWidget(self.message_label)

        layout.addWidget(self._build_annotate_section())
        layout.addWidget(self._build_train_section())
        layout.addWidget(self._build_predict_section())
        layout.addWidget(self._build_correct_section())
        layout.addStretch(1)

    @staticmethod
    def _section(title: str, tooltip: str) -> tuple[QGroupBox, QVBoxLayout]:
        box = QGroupBox(title)
        box.setToolTip(tooltip)
        box.setStyleSheet("QGroupBox { font-weight: bold; } QGroupBox * { font-weight: normal; }")
        layout = QVBoxLayout(box)
        layout.setContentsMargins(6, 8, 6, 6)
        layout.setSpacing(5)
        return box, layout

    @staticmethod
    def _form() -> QFormLayout:
        form = QFormLayout()
        form.setContentsMargins(0, 0, 0, 0)
        form.setFieldGrowthPolicy(QFormLayout.AllNonFixedFieldsGrow)
        form.setLabelAlignment(Qt.AlignRight)
        return form

    @staticmethod
    def _button(text: str, tooltip: str, slot, *, checkable: bool = False) -> QPushButton:
        button = QPushButton(text)
        button.setToolTip(tooltip)
        button.setCheckable(checkable)
        button.clicked.connect(lambda checked=False: slot())
        return button

    @staticmethod
    def _row(*widgets, stretch: bool = False) -> QHBoxLayout:
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        for widget in widgets:
            row.addWidget(widget)
        if stretch:
            row.addStretch(1)
        return row

    @staticmethod
    def _label(text: str, tooltip: str) -> QLabel:
        label = QLabel(text)
        label.setToolTip(tooltip)
        return label

    @staticmethod
    def _hint(text: str) -> QLabel:
        label = QLabel(text)
        label.setWordWrap(True)
        label.setToolTip(text)
        label.setStyleSheet("font-size: 11px;")
        return label

    # --- 1 image & annotations -----------------------------------------------------------------

    def _build_annotate_section(self) -> QGroupBox:
        box, layout = self._section(
            "1 · Image && annotations",
            "Pick the image to annotate; napari-unet pairs a training Labels layer with it",
        )
        form = self._form()
        self.image_picker = LayerPicker(self.viewer, (Image,), accept=lambda layer: lb.role_of(layer) is None,
                                        placeholder="(open an image first)")
        self.image_picker.setToolTip(
            "Image to annotate, train on and predict. Its annotations layer is created (or adopted) "
            "automatically. Training uses every image that has annotations."
        )
        self.image_picker.currentIndexChanged.connect(lambda _: self._on_image_changed())
        form.addRow(self._label("Image", self.image_picker.toolTip()), self.image_picker)
        self.channel_combo = QComboBox()
        self.channel_combo.setToolTip(
            "Which axis holds the channels: 'none' treats extra axes as a stack of planes (Z, T); RGB images "
            "use their colour channels. Set before painting: the annotations layer has no channel axis."
        )
        self.channel_combo.currentIndexChanged.connect(lambda _: self._on_channel_changed())
        form.addRow(self._label("Channels", self.channel_combo.toolTip()), self.channel_combo)
        layout.addLayout(form)

        self.annotate_button = self._button(
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
            self._hint("0 = not annotated (erase), 1 = background, 2+ = classes. A few strokes per class are enough.")
        )
        self.annotation_status = self._label("", "Annotated pixels per label in the plane on display")
        self.annotation_status.setWordWrap(True)
        layout.addWidget(self.annotation_status)
        return box

    # --- 2 train ----------------------------------------------------------------------------------

    def _build_train_section(self) -> QGroupBox:
        box, layout = self._section(
            "2 · Train",
            "Fine-tune a U-Net on all annotated images in the background; training again continues from "
            "the current model",
        )
        gpu = self._device.type != "cpu"
        form = self._form()
        self.preset_combo = QComboBox()
        for name, arch in PRESETS.items():
            self.preset_combo.addItem(name)
            self.preset_combo.setItemData(
                self.preset_combo.count() - 1,
                f"depth {arch['depth']}, width {arch['base_width']}",
                Qt.ToolTipRole,
            )
        self.preset_combo.setCurrentText("balanced" if gpu else "fast")
        self.preset_combo.setToolTip(
            "Model size for a new model: fast (small, best on a CPU), balanced, accurate (large, best on a GPU). "
            "A model already trained keeps its size: click 'New model' to change it."
        )
        form.addRow(self._label("Model size", self.preset_combo.toolTip()), self.preset_combo)
        self.device_combo = QComboBox()
        self.device_combo.addItems(["auto", "cpu", "cuda", "mps"])
        self.device_combo.setToolTip("Where to train: auto picks a CUDA GPU, then Apple MPS, then the CPU")
        self.device_combo.currentTextChanged.connect(lambda _: self._on_device_changed())
        form.addRow(self._label("Device", self.device_combo.toolTip()), self.device_combo)
        self.budget_spin = QSpinBox()
        self.budget_spin.setRange(0, 24 * 3600)
        self.budget_spin.setSingleStep(30)
        self.budget_spin.setValue(60)
        self.budget_spin.setSuffix(" s")
        self.budget_spin.setSpecialValueText("until stopped")
        self.budget_spin.setToolTip("Training time budget in seconds; 0 = until you press Stop")
        form.addRow(self._label("Time budget", self.budget_spin.toolTip()), self.budget_spin)
        layout.addLayout(form)

        advanced = QCollapsible("Advanced training options")
        advanced.setToolTip("Patch size, batch size, step limit, live preview")
        adv = QWidget()
        adv_form = self._form()
        adv.setLayout(adv_form)
        self.patch_spin = QSpinBox()
        self.patch_spin.setRange(32, 1024)
        self.patch_spin.setSingleStep(32)
        self.patch_spin.setValue(256 if gpu else 128)
        self.patch_spin.setToolTip("Side of the square training patches (pixels); larger sees more context, is slower")
        adv_form.addRow(self._label("Patch size", self.patch_spin.toolTip()), self.patch_spin)
        self.batch_spin = QSpinBox()
        self.batch_spin.setRange(1, 128)
        self.batch_spin.setValue(16 if gpu else 4)
        self.batch_spin.setToolTip("Patches per training step (halved automatically if the GPU runs out of memory)")
        adv_form.addRow(self._label("Batch size", self.batch_spin.toolTip()), self.batch_spin)
        self.steps_spin = QSpinBox()
        self.steps_spin.setRange(0, 10_000_000)
        self.steps_spin.setValue(0)
        self.steps_spin.setSpecialValueText("no limit")
        self.steps_spin.setToolTip("Stop after this many steps (0 = no step limit; the time budget still applies)")
        adv_form.addRow(self._label("Max steps", self.steps_spin.toolTip()), self.steps_spin)
        self.preview_spin = QDoubleSpinBox()
        self.preview_spin.setRange(0.0, 600.0)
        self.preview_spin.setValue(4.0)
        self.preview_spin.setSuffix(" s")
        self.preview_spin.setSpecialValueText("off")
        self.preview_spin.setToolTip(
            "While training, refresh the semantic prediction of the visible field of view this often (0 = off)"
        )
        adv_form.addRow(self._label("Live preview", self.preview_spin.toolTip()), self.preview_spin)
        self.autopredict_check = QCheckBox("predict the plane on display when training ends")
        self.autopredict_check.setChecked(True)
        self.autopredict_check.setToolTip("Run section 3 on the current plane as soon as training finishes")
        adv_form.addRow(self.autopredict_check)
        advanced.addWidget(adv)
        layout.addWidget(advanced)

        self.train_button = self._button(
            "Train  (Shift+T)",
            "Train on every image with annotations (warm start from the current model, if any)",
            self.train,
        )
        self.stop_button = self._button(
            "Stop  (Shift+S)", "Stop at the next step and keep the model trained so far", self.stop
        )
        layout.addLayout(self._row(self.train_button, self.stop_button))
        self.train_progress = QProgressBar()
        self.train_progress.setToolTip("Training progress within the time budget / step limit")
        self.train_progress.setRange(0, 1000)
        self.train_progress.setValue(0)
        self.train_progress.setTextVisible(True)
        self.train_progress.setFormat("idle")
        layout.addWidget(self.train_progress)
        self.train_stats = self._label("", "Step, smoothed loss, training throughput and time left")
        self.train_stats.setWordWrap(True)
        layout.addWidget(self.train_stats)
        self.device_label = self._label("", "The device training and prediction run on")
        layout.addWidget(self.device_label)
        self.loss_plot = LossPlot()
        layout.addWidget(self.loss_plot)

        self.model_label = self._label("", "The current model (trained here or loaded)")
        self.model_label.setWordWrap(True)
        layout.addWidget(self.model_label)
        self.new_model_button = self._button(
            "New model", "Forget the current model: the next training starts from scratch", self.new_model
        )
        self.save_button = self._button("Save…", "Save the current model as a checkpoint file", self._save_dialog)
        self.load_button = self._button("Load…", "Load a napari-unet model checkpoint", self._load_dialog)
        layout.addLayout(self._row(self.new_model_button, self.save_button, self.load_button))
        self._on_device_changed()
        return box

    # --- 3 predict -------------------------------------------------------------------------------

    def _build_predict_section(self) -> QGroupBox:
        box, layout = self._section(
            "3 · Predict",
            "Overlay the model's semantic classes and separate objects on the selected image",
        )
        form = self._form()
        self.scope_combo = QComboBox()
        self.scope_combo.addItem("plane on display", "plane")
        self.scope_combo.addItem("whole stack", "stack")
        self.scope_combo.setToolTip("Predict only the plane on display, or every plane of a stack")
        form.addRow(self._label("Predict", self.scope_combo.toolTip()), self.scope_combo)
        self.prob_check = QCheckBox("add per-class probability layers")
        self.prob_check.setToolTip("Also add one Image layer per class with its probability (0..1)")
        form.addRow(self.prob_check)
        self.tile_spin = QSpinBox()
        self.tile_spin.setRange(64, 4096)
        self.tile_spin.setSingleStep(64)
        self.tile_spin.setValue(512)
        self.tile_spin.setSuffix(" px")
        self.tile_spin.setToolTip("Tile size for prediction; lower it if the GPU runs out of memory")
        form.addRow(self._label("Tile size", self.tile_spin.toolTip()), self.tile_spin)
        layout.addLayout(form)
        self.predict_button = self._button("Predict  (Shift+R)", "Run the model on the selected image", self.predict)
        self.cancel_button = self._button("Cancel", "Cancel the running prediction", self.cancel_prediction)
        layout.addLayout(self._row(self.predict_button, self.cancel_button))
        self.predict_progress = QProgressBar()
        self.predict_progress.setRange(0, 1000)
        self.predict_progress.setFormat("idle")
        self.predict_progress.setToolTip("Prediction progress (tiles of the current plane, planes of the stack)")
        layout.addWidget(self.predict_progress)

        layout.addWidget(self._hint("Objects update live from the cached network outputs (no new prediction):"))
        inst_form = self._form()
        self.threshold_slider = QLabeledDoubleSlider(Qt.Horizontal)
        self.threshold_slider.setRange(0.05, 0.95)
        self.threshold_slider.setDecimals(2)
        self.threshold_slider.setSingleStep(0.05)
        defaults = InstanceParams()
        self.threshold_slider.setValue(defaults.threshold)
        self.threshold_slider.setToolTip(
            "Foreground threshold: pixels more likely than this to belong to a class become objects"
        )
        inst_form.addRow(self._label("Threshold", self.threshold_slider.toolTip()), self.threshold_slider)
        self.min_size_spin = QSpinBox()
        self.min_size_spin.setRange(0, 1_000_000)
        self.min_size_spin.setValue(defaults.min_size)
        self.min_size_spin.setSuffix(" px")
        self.min_size_spin.setToolTip("Objects smaller than this (in pixels) are dropped")
        inst_form.addRow(self._label("Minimum size", self.min_size_spin.toolTip()), self.min_size_spin)
        self.spacing_spin = QSpinBox()
        self.spacing_spin.setRange(1, 200)
        self.spacing_spin.setValue(defaults.seed_spacing)
        self.spacing_spin.setSuffix(" px")
        self.spacing_spin.setToolTip("Closest distance between two object centres: raise it if objects are split too often")
        inst_form.addRow(self._label("Seed spacing", self.spacing_spin.toolTip()), self.spacing_spin)
        layout.addLayout(inst_form)
        self.instance_status = self._label("", "Objects in the instance layer of the plane on display")
        layout.addWidget(self.instance_status)

        self._instance_timer = QTimer(self)
        self._instance_timer.setSingleShot(True)
        self._instance_timer.setInterval(150)
        self._instance_timer.timeout.connect(self._update_instances)
        self.threshold_slider.valueChanged.connect(lambda _: self._instance_timer.start())
        self.min_size_spin.valueChanged.connect(lambda _: self._instance_timer.start())
        self.spacing_spin.valueChanged.connect(lambda _: self._instance_timer.start())
        return box

    # --- 4 correct & accept ---------------------------------------------------------------------

    def _build_correct_section(self) -> QGroupBox:
        box, layout = self._section(
            "4 · Correct && accept",
            "Fix the objects (napari's brush, eraser and fill work too), then accept a region as training data",
        )
        form = self._form()
        self.ids_edit = QLineEdit()
        self.ids_edit.setPlaceholderText("object ids, e.g. 4, 9")
        self.ids_edit.setToolTip(
            "Objects to merge or split: type their ids, or press 'Pick' and click them in the viewer"
        )
        self.pick_button = self._button(
            "Pick", "Click objects in the viewer to add (or remove) them to the list; click Pick again to finish",
            self._toggle_pick, checkable=True,
        )
        ids_row = QHBoxLayout()
        ids_row.setContentsMargins(0, 0, 0, 0)
        ids_row.addWidget(self.ids_edit, 1)
        ids_row.addWidget(self.pick_button)
        form.addRow(self._label("Objects", self.ids_edit.toolTip()), ids_row)
        layout.addLayout(form)

        self.merge_button = self._button("Merge  (Shift+M)", "Merge the listed objects into one", self.merge)
        self.parts_spin = QSpinBox()
        self.parts_spin.setRange(2, 20)
        self.parts_spin.setValue(2)
        self.parts_spin.setPrefix("into ")
        self.parts_spin.setToolTip("Number of parts 'Split' cuts the first listed object into")
        self.split_button = self._button(
            "Split", "Split the first listed object at its centres (watershed)", self.split_by_seeds
        )
        layout.addLayout(self._row(self.merge_button, self.split_button, self.parts_spin))
        self.draw_line_button = self._button(
            "Draw cut line", "Draw a line across an object (double-click ends it), then press 'Split along line'",
            lambda: self.start_drawing("path"),
        )
        self.split_line_button = self._button(
            "Split along line", "Cut the object the drawn line crosses most into its parts", self.split_by_line
        )
        layout.addLayout(self._row(self.draw_line_button, self.split_line_button))
        self.small_spin = QSpinBox()
        self.small_spin.setRange(1, 1_000_000)
        self.small_spin.setValue(30)
        self.small_spin.setPrefix("< ")
        self.small_spin.setSuffix(" px")
        self.small_spin.setToolTip("Objects smaller than this are removed by 'Remove small'")
        self.remove_small_button = self._button(
            "Remove small", "Delete the objects of this plane below the size on the right", self.remove_small
        )
        self.relabel_button = self._button(
            "Relabel 1…n", "Renumber the objects of this plane 1, 2, 3, … (keeps ids small)", self.relabel
        )
        layout.addLayout(self._row(self.remove_small_button, self.small_spin, self.relabel_button))

        line = QFrame()
        line.setFrameShape(QFrame.HLine)
        line.setFrameShadow(QFrame.Sunken)
        layout.addWidget(line)
        accept_form = self._form()
        self.region_combo = QComboBox()
        for key, text in REGIONS.items():
            self.region_combo.addItem(text, key)
        self.region_combo.setToolTip(
            "Region to accept or clear: what you see, a rectangle drawn with 'Draw rectangle', "
            "the plane on display, or every predicted plane"
        )
        accept_form.addRow(self._label("Region", self.region_combo.toolTip()), self.region_combo)
        layout.addLayout(accept_form)
        self.draw_rect_button = self._button(
            "Draw rectangle", "Draw the rectangle to accept (then choose Region: drawn rectangle)",
            lambda: self.start_drawing("rectangle"),
        )
        layout.addWidget(self.draw_rect_button)
        self.accept_button = self._button(
            "Accept region  (Shift+K)",
            "The corrected prediction in the region becomes dense training data (annotations + accepted objects)",
            self.accept,
        )
        self.clear_accepted_button = self._button(
            "Clear accepted", "Un-accept the region (your annotations stay as they are)", self.clear_accepted
        )
        layout.addLayout(self._row(self.accept_button, self.clear_accepted_button))
        self.accepted_status = self._label("", "Accepted pixels of the selected image")
        self.accepted_status.setWordWrap(True)
        layout.addWidget(self.accepted_status)
        layout.addWidget(self._hint("Then train again (Shift+T): accepted regions train classes and object borders."))
        return box

    # =========================================================================================
    # viewer wiring
    # =========================================================================================

    def _connect_viewer(self) -> None:
        layers = self.viewer.layers
        layers.events.inserted.connect(self._on_layer_inserted)
        layers.events.removed.connect(self._on_layer_removed)
        for layer in layers:
            self._watch_layer(layer)
        self.viewer.dims.events.current_step.connect(self._on_dims_changed)
        self._dims_timer = QTimer(self)
        self._dims_timer.setSingleShot(True)
        self._dims_timer.setInterval(120)
        self._dims_timer.timeout.connect(self._on_plane_shown)
        self._status_timer = QTimer(self)
        self._status_timer.setSingleShot(True)
        self._status_timer.setInterval(400)
        self._status_timer.timeout.connect(self._update_annotation_status)
        self._preview_timer = QTimer(self)
        self._preview_timer.timeout.connect(self._request_preview)
        self._tile_timer = QTimer(self)
        self._tile_timer.setInterval(150)
        self._tile_timer.timeout.connect(self._show_tile_progress)
        self._close_watcher = _CloseWatcher(self.shutdown, self)
        self._watched_window = None
        app = QApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(_weak_call(self, "shutdown"))

    def _watch_main_window(self) -> None:
        """Watch the viewer's main window (found through the dock's parents) for its Close event."""
        if self._closed:
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
            # napari took the dock out of its window (its close button): stop work, release shortcuts
            self.shutdown()
        elif event.type() in (QEvent.ParentChange, QEvent.Show):
            self._watch_main_window()
            # napari puts the dock into its main window right after wrapping us in it
            QTimer.singleShot(0, _weak_call(self, "_watch_main_window"))
        return super().event(event)

    def _watch_layer(self, layer) -> None:
        self._layer_names[id(layer)] = layer.name
        layer.events.name.connect(self._on_layer_renamed)
        if isinstance(layer, Labels):
            layer.events.paint.connect(self._on_paint)

    def _on_layer_inserted(self, event) -> None:
        self._watch_layer(event.value)
        if self.image_picker.layer() is not None and lb.meta(event.value).get("image") == self.image_picker.currentText():
            self._status_timer.start()

    def _on_layer_removed(self, event) -> None:
        if self._closed:
            return
        layer = event.value
        self._layer_names.pop(id(layer), None)
        role = lb.role_of(layer)
        messages = []
        if isinstance(layer, Labels) and role == c.ROLE_ANNOTATIONS:
            image = lb.meta(layer).get("image", "")
            self._removed_annotations[image] = (np.asarray(layer.data), dict(layer.metadata), layer.colormap)
            if np.any(layer.data):
                messages.append(
                    f"'{layer.name}' was deleted; its strokes are kept: select '{image}' and click "
                    "'Paint annotations' to restore them"
                )
        elif isinstance(layer, Image) and role is None:
            self.session.cache.drop_image(layer.name)
        used = layer.name if isinstance(layer, Image) else lb.meta(layer).get("image") if role == c.ROLE_ANNOTATIONS else None
        if self.is_training and used in self._train_images:
            messages.append(
                f"'{layer.name}' was removed while training: training goes on with the data it started with"
            )
        if self.is_predicting and isinstance(layer, Image) and layer.name == self._predicting_image:
            self.cancel_prediction()
            messages.append(f"'{layer.name}' was removed: prediction cancelled")
        # Deferred: when the whole viewer closes, its layers go first and these would only be noise.
        self._watch_main_window()
        for text in messages:
            QTimer.singleShot(0, _weak_call(self, "_deferred_warning", text))
        QTimer.singleShot(0, _weak_call(self, "_after_layers_changed"))

    def _deferred_warning(self, text: str) -> None:
        # no layer left: the viewer is closing (or the user cleared it on purpose); the strokes are kept anyway
        if not self._closed and len(self.viewer.layers):
            self.notify("warning", text)

    def _after_layers_changed(self) -> None:
        if not self._closed:
            self._update_state()

    def _on_layer_renamed(self, event) -> None:
        layer = event.source
        old = self._layer_names.get(id(layer))
        self._layer_names[id(layer)] = layer.name
        if not old or old == layer.name or not isinstance(layer, Image) or lb.role_of(layer) is not None:
            return
        for other in self.viewer.layers:  # keep paired layers paired
            if other is not layer and lb.meta(other).get("image") == old:
                lb.set_meta(other, image=layer.name)
        self.session.cache.rename(old, layer.name)

    def _on_paint(self, event=None) -> None:
        self._status_timer.start()

    def _on_dims_changed(self, event=None) -> None:
        self._dims_timer.start()

    def _on_plane_shown(self) -> None:
        self._update_annotation_status()
        self._update_instance_status()
        self._instance_timer.start()

    def _bind_keys(self) -> None:
        for key, (action, _) in SHORTCUTS.items():
            def handler(viewer, action=action):
                getattr(self, action)()

            self.viewer.bind_key(key, handler, overwrite=True)
            self._bound_keys[key] = handler

    def _unbind_keys(self) -> None:
        for key, handler in self._bound_keys.items():
            try:
                keymap = self.viewer.keymap
                bound = [k for k, f in keymap.items() if f is handler]
                for k in bound:
                    keymap.pop(k, None)
            except Exception:  # viewer already gone
                pass
        self._bound_keys.clear()

    # =========================================================================================
    # messages and state
    # =========================================================================================

    def notify(self, level: str, text: str) -> None:
        """Show a napari notification and remember it (tests and the message line read it).

        While training runs, routine information goes to the dock's message line only: a toast
        animates over the canvas, and every repaint of the canvas is an event-loop stall.
        """
        self.last_message = (level, text)
        self.messages.append((level, text))
        colors = {"error": "#e0504d", "warning": "#e0a030", "info": ""}
        try:
            self.message_label.setText(text)
            self.message_label.setStyleSheet(f"color: {colors.get(level, '')};" if colors.get(level) else "")
            self.message_label.setVisible(True)
        except RuntimeError:
            pass
        if level == "info" and self.is_training:
            return
        {"error": show_error, "warning": show_warning}.get(level, show_info)(f"napari-unet: {text}")

    @property
    def is_training(self) -> bool:
        return self._train_worker is not None

    @property
    def is_predicting(self) -> bool:
        return self._predict_worker is not None

    def _update_state(self) -> None:
        if self._closed:
            return
        training, predicting = self.is_training, self.is_predicting
        has_image = self.image_picker.layer() is not None
        has_model = self.session.segmenter is not None
        self.train_button.setEnabled(not training and not predicting)
        self.train_button.setText("Train  (Shift+T)" if not has_model else "Continue training  (Shift+T)")
        self.stop_button.setEnabled(training)
        self.predict_button.setEnabled(has_model and has_image and not training and not predicting)
        self.cancel_button.setEnabled(predicting)
        for widget in (self.new_model_button, self.save_button, self.load_button, self.preset_combo,
                       self.device_combo):
            widget.setEnabled(not training and not predicting)
        self.save_button.setEnabled(has_model and not training and not predicting)
        self.model_label.setText("Model: " + self.session.model_summary())

    # =========================================================================================
    # 1 image & annotations
    # =========================================================================================

    def _selected(self, *, required: bool = True):
        """(image layer, geometry, plane on display), or a UserInputError saying what to do."""
        image = self.image_picker.layer()
        if image is None:
            if required:
                raise UserInputError("no image: open an image (or File > Open Sample > napari-unet) and pick it in section 1")
            return None, None, None
        geometry = lb.geometry_of(self.viewer, image)
        return image, geometry, lb.current_plane(self.viewer, image, geometry)

    def _on_image_changed(self) -> None:
        if self._closed:
            return
        image = self.image_picker.layer()
        self._refresh_channel_combo(image)
        if image is not None:
            if lb.find_paired(self.viewer, image.name, c.ROLE_ANNOTATIONS) is None:
                # Created a moment later: a reader or sample adding an image *and* its annotations
                # layer in one go must get its own layer adopted, not a duplicate.
                QTimer.singleShot(0, _weak_call(self, "_ensure_annotations", image.name))
            else:
                self._ensure_annotations(image.name)
        self._show_classes(image)

    def _ensure_annotations(self, image_name: str) -> None:
        image = self.image_picker.layer()
        if self._closed or image is None or image.name != image_name:
            return
        try:
            self.annotations_layer(image)
        except UserInputError as error:
            self.notify("error", str(error))
        self._show_classes(image)

    def _show_classes(self, image) -> None:
        annotations = lb.find_paired(self.viewer, image.name, c.ROLE_ANNOTATIONS) if image is not None else None
        names = lb.class_names_of(annotations)
        self.class_editor.set_classes(names, lb.class_colors_of(annotations, len(names)))
        self._update_annotation_status()
        self._update_instance_status()
        self._update_accepted_status()
        self._update_state()

    def _refresh_channel_combo(self, image) -> None:
        self.channel_combo.blockSignals(True)
        self.channel_combo.clear()
        if image is None:
            self.channel_combo.addItem("—", None)
        elif image.rgb:
            self.channel_combo.addItem("RGB colour channels", None)
        else:
            self.channel_combo.addItem("none (single channel)", None)
            shape = image.data[0].shape if image.multiscale else image.data.shape
            for axis in range(len(shape) - 2):
                self.channel_combo.addItem(f"axis {axis} ({shape[axis]} channels)", axis)
            annotations = lb.find_paired(self.viewer, image.name, c.ROLE_ANNOTATIONS)
            axis = lb.meta(annotations).get("channel_axis") if annotations is not None else None
            index = self.channel_combo.findData(axis)
            self.channel_combo.setCurrentIndex(max(index, 0))
        self.channel_combo.setEnabled(image is not None and not image.rgb and self.channel_combo.count() > 1)
        self.channel_combo.blockSignals(False)

    @guarded
    def _on_channel_changed(self) -> None:
        image = self.image_picker.layer()
        if image is None:
            return
        axis = self.channel_combo.currentData()
        annotations = lb.find_paired(self.viewer, image.name, c.ROLE_ANNOTATIONS)
        geometry = lb.Geometry.of(image, axis)
        if annotations is not None and tuple(annotations.data.shape) != geometry.labels_shape:
            if np.any(annotations.data):
                self._refresh_channel_combo(image)
                raise UserInputError(
                    f"'{annotations.name}' already holds strokes for another channel layout: "
                    "delete or rename it first to change the channel axis"
                )
            self.viewer.layers.remove(annotations)
            self._removed_annotations.pop(image.name, None)
            annotations = None
        if annotations is None:
            annotations = self.annotations_layer(image, channel_axis=axis)
        lb.set_meta(annotations, channel_axis=axis)
        self.session.cache.drop_image(image.name)
        self._update_annotation_status()

    def annotations_layer(self, image: Image | None = None, channel_axis=None) -> Labels:
        """The selected image's annotations layer, adopted, restored or created (with classes and colours)."""
        image = image or self._selected()[0]
        existing = lb.find_paired(self.viewer, image.name, c.ROLE_ANNOTATIONS)
        if existing is not None:
            if lb.role_of(existing) != c.ROLE_ANNOTATIONS or "class_names" not in lb.meta(existing):
                names = lb.class_names_of(existing)
                lb.set_meta(existing, role=c.ROLE_ANNOTATIONS, image=image.name, class_names=names)
            geometry = lb.geometry_of(self.viewer, image)
            lb.check_pair(image, existing, geometry)
            if id(existing) not in self._adopted:  # first sight: ready to paint the first class
                self._adopted.add(id(existing))
                if existing.selected_label <= c.BACKGROUND:
                    existing.selected_label = c.FIRST_CLASS
            return existing
        geometry = lb.Geometry.of(image, channel_axis)
        backup = self._removed_annotations.get(image.name)
        names = self.class_editor.names if image is self.image_picker.layer() else list(c.DEFAULT_CLASS_NAMES)
        colors = self.class_editor.colors if image is self.image_picker.layer() else lb.class_colors_of(None, len(names))
        layer = lb.paired_labels(self.viewer, image, c.ROLE_ANNOTATIONS, geometry, dtype=np.uint8, opacity=0.8)
        if backup is not None and backup[0].shape == tuple(layer.data.shape):
            layer.data = backup[0]
            meta = backup[1].get(c.METADATA_KEY, {})
            names = list(meta.get("class_names") or names)
            colors = lb.class_colors_of(None, len(names)) if "class_colors" not in meta else meta["class_colors"]
            del self._removed_annotations[image.name]
            self.notify("info", f"restored the deleted annotations of '{image.name}'")
        lb.set_meta(layer, class_names=list(names), class_colors=[list(col) for col in colors],
                    channel_axis=geometry.channel_axis)
        layer.colormap = lb.class_colormap(colors)
        layer.selected_label = c.FIRST_CLASS
        self._adopted.add(id(layer))
        layer.brush_size = max(3, min(15, min(geometry.plane_shape) // 60))
        return layer

    @guarded
    def annotate(self) -> None:
        """Make the annotations layer active in paint mode, ready to paint the chosen class."""
        image, _, _ = self._selected()
        layer = self.annotations_layer(image)
        self.viewer.layers.selection.active = layer
        layer.mode = "paint"
        rows = {index.row() for index in self.class_editor.table.selectedIndexes()}
        layer.selected_label = c.label_value(min(rows)) if rows else max(layer.selected_label, c.BACKGROUND)
        self.class_editor.select_label(layer.selected_label)
        self.notify("info", f"paint in '{layer.name}': label {layer.selected_label} "
                    f"({self.class_editor.names[c.class_index(layer.selected_label)]}); 1 = background")

    def _on_label_chosen(self, value: int) -> None:
        image = self.image_picker.layer()
        if image is None:
            return
        layer = lb.find_paired(self.viewer, image.name, c.ROLE_ANNOTATIONS)
        if layer is not None:
            layer.selected_label = value
            self.viewer.layers.selection.active = layer
            if layer.mode not in ("paint", "fill", "polygon"):
                layer.mode = "paint"

    def _on_classes_changed(self, names: list, colors: list) -> None:
        image = self.image_picker.layer()
        if image is None:
            return
        layer = lb.find_paired(self.viewer, image.name, c.ROLE_ANNOTATIONS)
        if layer is not None:
            lb.set_meta(layer, class_names=list(names), class_colors=[list(col) for col in colors])
            layer.colormap = lb.class_colormap(colors)
        semantic = lb.find_paired(self.viewer, image.name, c.ROLE_SEMANTIC)
        if semantic is not None:
            semantic.colormap = lb.class_colormap(colors, background_visible=False)
        self._update_annotation_status()

    @guarded
    def remove_last_class(self) -> None:
        image = self.image_picker.layer()
        value = len(self.class_editor.names)  # label value of the last class
        if value <= 2:
            raise UserInputError("keep at least background and one class")
        if image is not None:
            layer = lb.find_paired(self.viewer, image.name, c.ROLE_ANNOTATIONS)
            if layer is not None:
                count = int(np.count_nonzero(np.asarray(layer.data) == value))
                if count:
                    raise UserInputError(
                        f"label {value} ({self.class_editor.names[-1]}) is painted on {count} pixels: "
                        "erase them first (or keep the class)"
                    )
        self.class_editor.remove_last()

    def _update_annotation_status(self) -> None:
        if self._closed:
            return
        image = self.image_picker.layer()
        layer = lb.find_paired(self.viewer, image.name, c.ROLE_ANNOTATIONS) if image is not None else None
        if layer is None:
            self.annotation_status.setText("no annotations layer")
            return
        try:
            geometry = lb.geometry_of(self.viewer, image)
            plane = lb.current_plane(self.viewer, image, geometry)
            counts = np.bincount(lb.read_plane(layer, plane).ravel().astype(np.intp))
        except Exception:
            self.annotation_status.setText("")
            return
        names = self.class_editor.names
        parts = []
        for value in range(1, len(counts)):
            if counts[value]:
                name = names[c.class_index(value)] if c.class_index(value) < len(names) else "?"
                parts.append(f"{value} {name}: {counts[value]:,} px")
        where = f" (plane {plane})" if plane else ""
        text = "; ".join(parts) if parts else "nothing painted yet"
        if len(parts) == 1:
            text += " — paint one more class to train"
        self.annotation_status.setText(f"Annotated{where}: {text}")

    # =========================================================================================
    # 2 train
    # =========================================================================================

    def _on_device_changed(self) -> None:
        try:
            self._device = pick_device(self.device_combo.currentText())
            text = describe(self._device)
            if self._device.type == "cpu" and self.train_threads:
                text = f"cpu ({self.train_threads} training thread(s), one core left for the viewer)"
            self.device_label.setText(f"Device: {text}")
        except UserInputError as error:
            self.device_label.setText(f"Device: {error}")

    def train_config(self) -> TrainConfig:
        budget = self.budget_spin.value()
        steps = self.steps_spin.value()
        return TrainConfig(
            preset=self.preset_combo.currentText(),
            patch_size=self.patch_spin.value(),
            batch_size=self.batch_spin.value(),
            seconds=float(budget) if budget > 0 else None,
            steps=steps if steps > 0 else None,
            device=self.device_combo.currentText(),
            threads=self.train_threads,
        )

    @guarded
    def train(self) -> None:
        """Start training on every annotated image (warm start from the current model)."""
        if self.is_training:
            self.notify("info", "already training: press Stop (Shift+S) to end it")
            return
        if self.is_predicting:
            raise UserInputError("a prediction is running: wait for it or cancel it first")
        items = lb.training_items(self.viewer)
        image = self.image_picker.layer()
        annotations = lb.find_paired(self.viewer, image.name, c.ROLE_ANNOTATIONS) if image is not None else None
        names = self.class_editor.names if annotations is not None else None
        config = self.train_config()
        pick_device(config.device)  # a clear error now, not in the thread
        trainer = Trainer(items, config, segmenter=self.session.segmenter, class_names=names)
        self.last_training_items = items
        self._trainer = trainer
        self._train_images = {item.name.split(" plane ")[0] for item in items}
        self._train_stop.clear()
        self._last_progress = None
        self._preview_pending = False
        if self.session.segmenter is None:
            self.loss_plot.clear()
            self.session.loss_offset = 0
        self.loss_plot.start_run(self.session.loss_offset)
        self._watch_main_window()
        self._train_worker = start_worker(
            train_generator,
            trainer,
            self._train_stop,
            connect={
                "yielded": self._on_train_progress,
                "returned": self._on_train_returned,
                "errored": self._on_train_error,
                "finished": self._on_train_finished,
            },
        )
        self._train_ok = False
        n_planes = len(items)
        budget = f"{config.seconds:.0f} s" if config.seconds else "until stopped"
        self.notify("info", f"training on {n_planes} annotated plane(s) from {len(self._train_images)} image(s), {budget}")
        self.train_progress.setFormat("starting…")
        self.train_progress.setRange(0, 0 if config.seconds is None and config.steps is None else 1000)
        if self.preview_spin.value() > 0:
            if image is not None and lb.geometry_of(self.viewer, image).n_channels == items[0].image.shape[0]:
                # Created now, not at the first preview: adding a layer is the costliest GUI step.
                self._semantic_layer(image, lb.geometry_of(self.viewer, image))
            self._preview_timer.start(int(self.preview_spin.value() * 1000))
        self._update_state()

    def stop(self) -> None:
        """Stop training at the next step (the model is kept), or cancel a running prediction."""
        if self.is_training:
            self._train_stop.set()
            self.train_progress.setFormat("stopping at the next step…")
        elif self.is_predicting:
            self.cancel_prediction()

    def _on_train_progress(self, progress) -> None:
        if self._closed:
            return
        self._last_progress = progress
        step = self.session.loss_offset + progress.step
        self.loss_plot.add(step, progress.loss)
        if progress.message:
            self.notify("warning", progress.message)
        if progress.preview is not None:
            self._preview_pending = False
            self._paint_preview(*progress.preview)
        now = time.perf_counter()
        if now - self._last_ui_update < 0.1 and progress.preview is None:
            return  # at most 10 label updates a second, whatever the step rate
        self._last_ui_update = now
        self._show_progress(progress)

    def _show_progress(self, progress) -> None:
        if progress.fraction is not None:
            self.train_progress.setRange(0, 1000)
            self.train_progress.setValue(int(min(progress.fraction, 1.0) * 1000))
        left = f" · {progress.remaining:.0f} s left" if progress.remaining is not None else " · until stopped"
        self.train_progress.setFormat(f"step {progress.step}{left}")
        self.train_stats.setText(
            f"step {progress.step} · loss {progress.loss:.4f} · {progress.pixels_per_second / 1e3:,.0f} kpx/s"
            f" · {progress.elapsed:.0f} s{left}"
        )
        self.device_label.setText(f"Device: {progress.device}")

    def _on_train_returned(self, segmenter: Segmenter) -> None:
        if segmenter is None:
            return
        first = self.session.segmenter is None
        self.session.set_model(segmenter)
        run = segmenter.history[-1] if segmenter.history else {}
        self.session.loss_offset += int(run.get("steps", 0))
        self._train_ok = True
        if self._closed:
            return
        how = "stopped" if run.get("stopped") else "finished"
        loss = run.get("loss")
        loss_text = f", loss {loss:.3f}" if isinstance(loss, (int, float)) else ""
        self._finish_message = (f"training {how} after {run.get('steps', 0)} steps{loss_text}"
                                + ("" if first else " (continued from the previous model)"))

    def _on_train_error(self, error: Exception) -> None:
        self._train_ok = False
        self._report_worker_error(
            "training", error,
            "Choose a smaller model size, patch or batch size, or train on the CPU (Device: cpu)",
            "; your annotations are untouched",
        )

    def _report_worker_error(self, what: str, error: Exception, memory_advice: str, reassurance: str = "") -> None:
        """One notification for a failed worker: the user's mistake, GPU memory, or a bug (logged)."""
        error = error.original if isinstance(error, WorkerFailure) else error
        if isinstance(error, UserInputError):
            self.notify("error", f"{what} stopped: {error}")
        elif is_out_of_memory(error):
            self.notify("error", f"{what} stopped: out of GPU memory. {memory_advice}")
        else:
            log.error("napari-unet %s failed", what, exc_info=error)
            self.notify("error", f"{what} failed ({type(error).__name__}: {error}){reassurance}")

    def _on_train_finished(self) -> None:
        self._train_worker = None
        self._trainer = None
        self._preview_timer.stop()
        self._preview_pending = False
        if self._closed:
            return
        if self._last_progress is not None:
            self._show_progress(self._last_progress)
        if self._finish_message:
            self.notify("info", self._finish_message)
            self._finish_message = ""
        self.train_progress.setRange(0, 1000)
        self.train_progress.setValue(1000 if self._train_ok else 0)
        self.train_progress.setFormat("done" if self._train_ok else "idle")
        self._update_state()
        self.training_finished.emit(self._train_ok)
        if self._train_ok and self.autopredict_check.isChecked() and self.image_picker.layer() is not None:
            self.predict()

    # --- live preview ---------------------------------------------------------------------------

    def _request_preview(self) -> None:
        """Ask the training thread to predict the visible field of view (at most one request in flight)."""
        if not self.is_training or self._preview_pending or self._trainer is None or self._closed:
            return
        image = self.image_picker.layer()
        if image is None:
            return
        try:
            geometry = lb.geometry_of(self.viewer, image)
            items = self.last_training_items
            if items and items[0].image.shape[0] != geometry.n_channels:
                return
            plane = lb.current_plane(self.viewer, image, geometry)
            rows, cols = self._preview_window(lb.view_region(self.viewer, image, geometry), geometry.plane_shape)
            crop = geometry.image_plane(image, plane, (rows, cols))  # reads only the crop
        except Exception:
            log.debug("preview skipped", exc_info=True)
            return
        self._trainer.request_preview(np.ascontiguousarray(crop), (image.name, plane, rows, cols))
        self._preview_pending = True

    @staticmethod
    def _preview_window(region, shape) -> tuple[slice, slice]:
        h, w = shape
        if region is None:
            region = (slice(0, h), slice(0, w))
        out = []
        for s, n in zip(region, (h, w)):
            start, stop = max(0, s.start - PREVIEW_MARGIN), min(n, s.stop + PREVIEW_MARGIN)
            if stop - start > PREVIEW_MAX:  # keep the preview cheap: the centre of a large view
                centre = (start + stop) // 2
                start = max(0, centre - PREVIEW_MAX // 2)
                stop = min(n, start + PREVIEW_MAX)
            out.append(slice(start, stop))
        return tuple(out)

    def _paint_preview(self, tag, prediction) -> None:
        if self._closed:
            return
        image_name, plane, rows, cols = tag
        image = lb.get_layer(self.viewer, image_name, Image)
        if image is None:
            return
        try:
            geometry = lb.geometry_of(self.viewer, image)
            semantic = self._semantic_layer(image, geometry)
            lb.write_region(semantic, plane, prediction.semantic(), (rows, cols))
        except Exception:
            log.debug("preview not painted", exc_info=True)
            return
        self.preview_painted.emit()

    def _semantic_layer(self, image: Image, geometry) -> Labels:
        created = lb.find_paired(self.viewer, image.name, c.ROLE_SEMANTIC) is None
        layer = lb.paired_labels(self.viewer, image, c.ROLE_SEMANTIC, geometry, dtype=np.uint8, opacity=0.35)
        if created:
            names = self.class_editor.names
            layer.colormap = lb.class_colormap(lb.class_colors_of(
                lb.find_paired(self.viewer, image.name, c.ROLE_ANNOTATIONS), max(len(names), 2)), background_visible=False)
            self._keep_annotations_on_top(image)
        return layer

    def _instances_layer(self, image: Image, geometry) -> Labels:
        created = lb.find_paired(self.viewer, image.name, c.ROLE_INSTANCES) is None
        layer = lb.paired_labels(self.viewer, image, c.ROLE_INSTANCES, geometry, dtype=np.uint32, opacity=0.55)
        if created:
            self._keep_annotations_on_top(image)
        return layer

    def _keep_annotations_on_top(self, image: Image) -> None:
        """New prediction layers go below the annotations layer so strokes stay visible."""
        layers = self.viewer.layers
        annotations = lb.find_paired(self.viewer, image.name, c.ROLE_ANNOTATIONS)
        if annotations is None:
            return
        index = layers.index(annotations)
        if index != len(layers) - 1:
            layers.move(index, len(layers))

    # --- model files ----------------------------------------------------------------------------

    @guarded
    def new_model(self) -> None:
        if self.is_training:
            raise UserInputError("stop training first")
        self.session.set_model(None, new=True)
        self.loss_plot.clear()
        self.notify("info", "the next training starts a new model")
        self._update_state()

    @guarded
    def save_model(self, path) -> Path | None:
        """Save the current model to `path` (no dialog)."""
        if self.session.segmenter is None:
            raise UserInputError("no model to save yet: train one first")
        if self.is_training:
            raise UserInputError("stop training before saving the model")
        saved = self.session.segmenter.save(path)
        self.notify("info", f"model saved to {saved}")
        return saved

    @guarded
    def load_model(self, path) -> Segmenter | None:
        """Load a model checkpoint from `path` (no dialog); it becomes the current model."""
        if self.is_training:
            raise UserInputError("stop training before loading a model")
        segmenter = Segmenter.load(path)
        segmenter.to(self._device)
        self.session.set_model(segmenter, new=True)
        self.loss_plot.clear()
        self.notify("info", f"model loaded: {', '.join(segmenter.class_names)}")
        self._update_state()
        return segmenter

    def _save_dialog(self) -> None:
        if self.is_training:
            return
        path, _ = QFileDialog.getSaveFileName(self, "Save napari-unet model", "napari-unet-model.pt",
                                              "napari-unet model (*.pt);;All files (*)")
        if path:
            self.save_model(path)

    def _load_dialog(self) -> None:
        if self.is_training:
            return
        path, _ = QFileDialog.getOpenFileName(self, "Load napari-unet model", "",
                                              "napari-unet model (*.pt);;All files (*)")
        if path:
            self.load_model(path)

    # =========================================================================================
    # 3 predict
    # =========================================================================================

    def instance_params(self) -> InstanceParams:
        return InstanceParams(
            threshold=round(float(self.threshold_slider.value()), 4),
            min_size=int(self.min_size_spin.value()),
            seed_spacing=int(self.spacing_spin.value()),
        )

    @guarded
    def predict(self, scope: str | None = None) -> None:
        """Predict the plane on display (or the whole stack) of the selected image in a worker."""
        if self.is_training:
            raise UserInputError("training is running: the live preview shows its prediction; stop it to predict")
        if self.is_predicting:
            self.notify("info", "already predicting: Cancel stops it")
            return
        segmenter = self.session.segmenter
        if segmenter is None:
            raise UserInputError("no model yet: train one (section 2, Shift+T) or load a saved model")
        image, geometry, plane = self._selected()
        if geometry.n_channels != segmenter.config.in_channels:
            raise UserInputError(
                f"the model takes {segmenter.config.in_channels} channel(s) but '{image.name}' has "
                f"{geometry.n_channels}: set 'Channels' in section 1 or train a model for this image"
            )
        scope = scope or self.scope_combo.currentData()
        planes = geometry.planes() if scope == "stack" else [plane]
        self._semantic_layer(image, geometry)
        self._instances_layer(image, geometry)
        self._predict_stop.clear()
        self._predict_status = "done"
        self._predicting_image = image.name
        self._tile_progress[:] = [0, 0]
        version = self.session.model_version
        self._watch_main_window()

        def read(p, image=image, geometry=geometry):
            return geometry.image_plane(image, p)

        self._predict_worker = start_worker(
            predict_generator,
            segmenter,
            image.name,
            read,
            planes,
            self.instance_params(),
            version,
            self._predict_stop,
            self._tile_progress,
            self.tile_spin.value(),
            None,
            connect={
                "yielded": self._on_plane_predicted,
                "returned": self._on_predict_returned,
                "errored": self._on_predict_error,
                "finished": self._on_predict_finished,
            },
            progress={"total": len(planes), "desc": f"napari-unet: predicting {image.name}"},
        )
        self._predict_total = len(planes)
        self._predict_done = 0
        self.predict_progress.setFormat("predicting…")
        self._tile_timer.start()
        self._update_state()

    def cancel_prediction(self) -> None:
        if self.is_predicting:
            self._predict_stop.set()
            self.predict_progress.setFormat("cancelling…")

    def _show_tile_progress(self) -> None:
        done, total = self._tile_progress
        if not self.is_predicting or not total:
            return
        fraction = (self._predict_done + done / total) / max(self._predict_total, 1)
        self.predict_progress.setValue(int(fraction * 1000))
        self.predict_progress.setFormat(f"plane {self._predict_done + 1}/{self._predict_total} · tile {done}/{total}")

    def _on_plane_predicted(self, result: PlaneResult) -> None:
        if self._closed:
            return
        self._predict_done = result.done
        image = lb.get_layer(self.viewer, result.image, Image)
        if image is None:
            return
        geometry = lb.geometry_of(self.viewer, image)
        semantic = self._semantic_layer(image, geometry)
        instances = self._instances_layer(image, geometry)
        lb.write_region(semantic, result.plane, result.semantic)
        lb.write_region(instances, result.plane, result.instances.astype(instances.data.dtype, copy=False))
        provenance = self._prediction_provenance(result)
        lb.set_meta(semantic, provenance=provenance)
        lb.set_meta(instances, provenance=provenance)
        entry = CachedPlane(result.prediction, result.use_instance_heads, result.model_version, result.params)
        self.session.cache.put(result.image, result.plane, entry)
        if self.prob_check.isChecked():
            self._paint_probabilities(image, geometry, result)
        self.predict_progress.setValue(int(result.done / max(result.total, 1) * 1000))
        self._update_instance_status()
        if result.params != self.instance_params():
            self._instance_timer.start()

    def _prediction_provenance(self, result: PlaneResult) -> dict:
        """What made these predictions, recorded in the layers and exported with them."""
        segmenter = self.session.segmenter
        if self._provenance is None or self._provenance[0] != result.model_version:
            self._provenance = (result.model_version, {
                "model_sha256": segmenter.fingerprint() if segmenter is not None else None,
                "training": segmenter.history[-1] if segmenter is not None and segmenter.history else None,
            })
        return {**self._provenance[1], "instance_params": result.params.to_dict()}

    def _paint_probabilities(self, image: Image, geometry, result: PlaneResult) -> None:
        names = self.session.segmenter.class_names if self.session.segmenter else []
        annotations = lb.find_paired(self.viewer, image.name, c.ROLE_ANNOTATIONS)
        colors = lb.class_colors_of(annotations, result.prediction.probabilities.shape[0])
        scale, translate = geometry.labels_scale_translate(image)
        for k in range(1, result.prediction.probabilities.shape[0]):
            cls = names[k] if k < len(names) else f"class {k}"
            name = c.layer_name(image.name, f"probability {cls}")
            layer = lb.get_layer(self.viewer, name, Image)
            if layer is None or tuple(layer.data.shape) != geometry.labels_shape:
                from napari.utils.colormaps import Colormap

                r, g, b, _ = colors[k]
                layer = self.viewer.add_image(
                    np.zeros(geometry.labels_shape, np.float32), name=name, scale=scale, translate=translate,
                    contrast_limits=(0.0, 1.0), blending="additive", opacity=0.7, visible=True,
                    colormap=Colormap([[0, 0, 0, 0], [r, g, b, 1]], name=f"napari-unet {cls}"),
                    metadata={c.METADATA_KEY: {"role": c.ROLE_PROBABILITIES, "image": image.name, "class": cls}},
                )
            layer.data[lb.plane_index(result.plane)] = result.prediction.probabilities[k]
            layer.refresh()

    def _on_predict_returned(self, status) -> None:
        self._predict_status = status or "done"

    def _on_predict_error(self, error: Exception) -> None:
        self._predict_status = "failed"
        self._report_worker_error("prediction", error, "Lower the tile size (section 3) or use the CPU (Device: cpu)")

    def _on_predict_finished(self) -> None:
        self._predict_worker = None
        self._tile_timer.stop()
        if self._closed:
            return
        status = self._predict_status
        self.predict_progress.setValue(1000 if status == "done" else 0)
        self.predict_progress.setFormat(status)
        if status == "cancelled":
            self.notify("info", "prediction cancelled; planes already predicted are kept")
        self._update_state()
        self.prediction_finished.emit(status)

    # --- live instance parameters -----------------------------------------------------------

    def _update_instances(self) -> None:
        """Recompute the displayed plane's objects from the cached prediction (never the network)."""
        if self._closed:
            return
        image = self.image_picker.layer()
        if image is None:
            return
        geometry = lb.geometry_of(self.viewer, image)
        plane = lb.current_plane(self.viewer, image, geometry)
        entry = self.session.cache.get(image.name, plane)
        params = self.instance_params()
        if entry is None or entry.params == params:
            return
        if self._instance_worker is not None:
            self._instance_pending = True
            return

        def compute(entry=entry, params=params, name=image.name, plane=plane):
            return name, plane, params, entry.instances(params)

        from napari.qt.threading import create_worker

        worker = create_worker(compute, _ignore_errors=True)
        worker.returned.connect(self._on_instances_computed)
        worker.errored.connect(lambda error: self.notify("error", f"objects not updated: {error}"))
        worker.finished.connect(self._on_instance_worker_finished)
        self._instance_worker = worker
        worker.start()

    def _on_instances_computed(self, result) -> None:
        if self._closed:
            return
        name, plane, params, labels = result
        image = lb.get_layer(self.viewer, name, Image)
        if image is None:
            return
        geometry = lb.geometry_of(self.viewer, image)
        layer = self._instances_layer(image, geometry)
        lb.write_region(layer, plane, labels.astype(layer.data.dtype, copy=False))
        entry = self.session.cache.get(name, plane)
        if entry is not None:
            entry.params = params
        self._update_instance_status()
        self.instances_updated.emit()

    def _on_instance_worker_finished(self) -> None:
        self._instance_worker = None
        if self._instance_pending and not self._closed:
            self._instance_pending = False
            self._update_instances()

    def _update_instance_status(self) -> None:
        if self._closed:
            return
        image = self.image_picker.layer()
        layer = lb.find_paired(self.viewer, image.name, c.ROLE_INSTANCES) if image is not None else None
        if layer is None:
            self.instance_status.setText("no objects yet: predict first")
            return
        try:
            geometry = lb.geometry_of(self.viewer, image)
            plane = lb.current_plane(self.viewer, image, geometry)
            labels = lb.read_plane(layer, plane)
            n = len(np.unique(labels)) - (1 if labels.min() == 0 else 0)
        except Exception:
            return
        cached = self.session.cache.get(image.name, plane) is not None
        live = "" if cached else " (predict this plane for live updates)"
        self.instance_status.setText(f"{n} object{'' if n == 1 else 's'} in this plane{live}")

    # =========================================================================================
    # 4 correct & accept
    # =========================================================================================

    def object_ids(self) -> list[int]:
        ids = [int(t) for t in re.findall(r"\d+", self.ids_edit.text())]
        return [i for i in dict.fromkeys(ids) if i > 0]

    def set_object_ids(self, ids) -> None:
        self.ids_edit.setText(", ".join(str(int(i)) for i in ids))

    def _require_instances(self):
        image, geometry, plane = self._selected()
        layer = lb.find_paired(self.viewer, image.name, c.ROLE_INSTANCES)
        if layer is None:
            raise UserInputError("no instance layer yet: predict first (section 3, Shift+R)")
        lb.check_pair(image, layer, geometry)
        return image, geometry, plane, layer

    def _edit_instances(self, edit, what: str) -> None:
        image, geometry, plane, layer = self._require_instances()
        new = edit(lb.read_plane(layer, plane))
        changed = lb.write_undoable(layer, plane, new)
        self._update_instance_status()
        self.notify("info", f"{what} ({changed:,} pixels changed; Ctrl+Z in the instance layer undoes it)")
        self.corrected.emit(what)

    @guarded
    def merge(self, ids=None) -> None:
        ids = list(ids) if ids is not None else self.object_ids()
        self._edit_instances(lambda labels: merge_objects(labels, ids), f"merged objects {', '.join(map(str, ids))}")
        self.set_object_ids([])

    @guarded
    def split_by_seeds(self, object_id: int | None = None, parts: int | None = None) -> None:
        ids = [object_id] if object_id is not None else self.object_ids()
        if not ids:
            raise UserInputError("type the id of the object to split (or Pick it in the viewer)")
        n = parts or self.parts_spin.value()
        self._edit_instances(lambda labels: split_object_by_seeds(labels, ids[0], n), f"split object {ids[0]} in {n}")

    @guarded
    def split_by_line(self, line=None, object_id: int | None = None) -> None:
        image, geometry, plane, layer = self._require_instances()
        shapes = self._corrections_layer(image, create=False)
        used = None
        if line is None:
            used, data = lb.last_shape(shapes, ("path", "line"))
            if data is None:
                raise UserInputError("draw a cut line first: 'Draw cut line', then click across the object, "
                                     "double-click to finish")
            line = lb.world_points_to_plane(data, shapes, layer)
        line = np.asarray(line, dtype=float)[:, -2:]
        labels = lb.read_plane(layer, plane)
        if object_id is None:
            ids = self.object_ids()
            object_id = ids[0] if ids else self._object_under_line(labels, line)
        self._edit_instances(lambda lab: split_object_by_line(lab, object_id, line), f"split object {object_id} along the line")
        if used is not None:
            shapes.data = [d for i, d in enumerate(shapes.data) if i != used]  # the cut is done: tidy up

    @staticmethod
    def _object_under_line(labels: np.ndarray, line: np.ndarray) -> int:
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

    @guarded
    def remove_small(self, min_size: int | None = None) -> None:
        size = int(min_size or self.small_spin.value())
        self._edit_instances(lambda labels: remove_small_objects(labels, size), f"removed objects below {size} px")

    @guarded
    def relabel(self) -> None:
        self._edit_instances(relabel_sequential, "objects renumbered 1…n")

    # --- picking ---------------------------------------------------------------------------------

    def _toggle_pick(self) -> None:
        on = self.pick_button.isChecked()
        callbacks = self.viewer.mouse_drag_callbacks
        if on:
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
        image, geometry, plane, layer = self._require_instances()
        data = np.asarray(layer.world_to_data(world_position))
        plane = tuple(int(round(v)) for v in data[:-2])
        object_id = object_at(lb.read_plane(layer, plane), data[-2:])
        if object_id == 0:
            self.notify("info", "no object there (background)")
            return 0
        ids = self.object_ids()
        ids = [i for i in ids if i != object_id] if object_id in ids else ids + [object_id]
        self.set_object_ids(ids)
        return object_id

    # --- drawing ---------------------------------------------------------------------------------

    def _corrections_layer(self, image: Image, *, create: bool = True) -> Shapes | None:
        for layer in self.viewer.layers:
            if isinstance(layer, Shapes) and lb.role_of(layer) == ROLE_CORRECTIONS and lb.meta(layer).get("image") == image.name:
                return layer
        if not create:
            return None
        geometry = lb.geometry_of(self.viewer, image)
        scale, translate = geometry.labels_scale_translate(image)
        return self.viewer.add_shapes(
            name=c.layer_name(image.name, ROLE_CORRECTIONS),
            ndim=len(geometry.labels_shape),
            scale=scale,
            translate=translate,
            edge_color="yellow",
            face_color="transparent",
            edge_width=max(1.0, min(geometry.plane_shape) / 300),
            metadata={c.METADATA_KEY: {"role": ROLE_CORRECTIONS, "image": image.name}},
        )

    @guarded
    def start_drawing(self, kind: str) -> None:
        image, _, _ = self._selected()
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
            return lb.view_region(self.viewer, image, lb.geometry_of(self.viewer, image))
        if kind == "rectangle":
            shapes = self._corrections_layer(image, create=False)
            _, data = lb.last_shape(shapes, ("rectangle", "polygon"))
            if data is None:
                raise UserInputError("no rectangle drawn: click 'Draw rectangle' and drag one over the image")
            return lb.world_points_to_plane(data, shapes, target)
        return None

    def _accept_planes(self, kind: str, image: Image, geometry, plane, semantic: Labels | None) -> list:
        if kind != "image" or not geometry.stack_shape:
            return [plane]
        if semantic is None:
            return []
        data = np.asarray(semantic.data).reshape(int(np.prod(geometry.stack_shape)), -1)
        return [tuple(int(i) for i in np.unravel_index(k, geometry.stack_shape)) for k in np.flatnonzero(data.any(axis=1))]

    @guarded
    def accept(self, region: str | None = None) -> int:
        """Accept the corrected prediction in a region ('view', 'rectangle', 'plane', 'image'); returns pixels."""
        kind = region or self.region_combo.currentData()
        image, geometry, plane = self._selected()
        semantic = lb.find_paired(self.viewer, image.name, c.ROLE_SEMANTIC)
        instances = lb.find_paired(self.viewer, image.name, c.ROLE_INSTANCES)
        if semantic is None or instances is None:
            raise UserInputError("nothing to accept yet: predict first (section 3, Shift+R), correct, then accept")
        annotations = self.annotations_layer(image)
        for layer in (semantic, instances):
            lb.check_pair(image, layer, geometry)
        created = lb.find_paired(self.viewer, image.name, c.ROLE_ACCEPTED) is None
        accepted = lb.paired_labels(self.viewer, image, c.ROLE_ACCEPTED, geometry, dtype=np.uint32, opacity=0.6)
        if created:
            accepted.contour = 1
            accepted.editable = False
            self._keep_annotations_on_top(image)
        spec = self._region(kind, image, annotations)
        total = 0
        for p in self._accept_planes(kind, image, geometry, plane, semantic):
            mask = region_mask(geometry.plane_shape, spec)
            new_accepted, new_annotations = accept_region(
                lb.read_plane(accepted, p), lb.read_plane(annotations, p),
                lb.read_plane(semantic, p), lb.read_plane(instances, p), mask,
            )
            lb.write_region(accepted, p, new_accepted)
            lb.write_undoable(annotations, p, new_annotations)
            total += int(np.count_nonzero(mask))
        if total == 0:
            raise UserInputError("there is no prediction to accept: predict first")
        self._update_accepted_status()
        self._update_annotation_status()
        self.notify("info", f"accepted {total:,} pixels as training data ({REGIONS[kind]}); train again to use them")
        self.accepted_changed.emit()
        return total

    @guarded
    def clear_accepted(self, region: str | None = None) -> None:
        kind = region or self.region_combo.currentData()
        image, geometry, plane = self._selected()
        accepted = lb.find_paired(self.viewer, image.name, c.ROLE_ACCEPTED)
        if accepted is None:
            raise UserInputError("nothing accepted yet")
        spec = self._region(kind, image, accepted)
        planes = geometry.planes() if kind == "image" else [plane]
        for p in planes:
            mask = region_mask(geometry.plane_shape, spec)
            lb.write_region(accepted, p, clear_accepted(lb.read_plane(accepted, p), mask))
        self._update_accepted_status()
        self.notify("info", f"cleared accepted pixels ({REGIONS[kind]}); the annotations keep their labels")
        self.accepted_changed.emit()

    def _update_accepted_status(self) -> None:
        if self._closed:
            return
        image = self.image_picker.layer()
        layer = lb.find_paired(self.viewer, image.name, c.ROLE_ACCEPTED) if image is not None else None
        if layer is None:
            self.accepted_status.setText("nothing accepted yet")
            return
        n = int(np.count_nonzero(layer.data))
        self.accepted_status.setText(f"{n:,} accepted pixels in '{image.name}'")

    # =========================================================================================
    # shutdown
    # =========================================================================================

    def shutdown(self, timeout: float = 15.0) -> None:
        """Stop every worker (waiting for their threads), unbind shortcuts; called when the viewer closes."""
        if self._closed:
            return
        self._closed = True
        for timer in ("_preview_timer", "_tile_timer", "_instance_timer", "_dims_timer", "_status_timer"):
            t = getattr(self, timer, None)
            if t is not None:
                try:
                    t.stop()
                except RuntimeError:
                    pass
        self._train_stop.set()
        self._predict_stop.set()
        workers = [w for w in (self._train_worker, self._predict_worker, self._instance_worker) if w is not None]
        for worker in workers:
            worker.quit()
        deadline = time.monotonic() + timeout
        for worker in workers:
            done = getattr(worker, "done", None)
            if done is not None:
                done.wait(max(0.0, deadline - time.monotonic()))
        self._unbind_keys()
        self._watched_window = None
        try:
            if self._on_pick_click in self.viewer.mouse_drag_callbacks:
                self.viewer.mouse_drag_callbacks.remove(self._on_pick_click)
        except Exception:
            pass
        for disconnect in (
            lambda: self.viewer.layers.events.inserted.disconnect(self._on_layer_inserted),
            lambda: self.viewer.layers.events.removed.disconnect(self._on_layer_removed),
            lambda: self.viewer.dims.events.current_step.disconnect(self._on_dims_changed),
            self.image_picker.disconnect_viewer,
        ):
            try:
                disconnect()
            except Exception:
                pass

    def threads_alive(self) -> bool:
        """True while any worker thread of this dock is still running."""
        workers = [w for w in (self._train_worker, self._predict_worker) if w is not None]
        return any(not getattr(w, "done", threading.Event()).is_set() for w in workers)

