"""Step 2 of the dock: what to start from, training settings, progress, and the model files."""

from __future__ import annotations

import time
from pathlib import Path

from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QPushButton,
    QSpinBox,
    QWidget,
)
from superqt import QCollapsible

from napari_unet import conventions as c
from napari_unet.io.pretrained import available_models, model_path
from napari_unet.napari import layers as lb
from napari_unet.nn.device import describe
from napari_unet.nn.model import PRESETS
from napari_unet.nn.segmenter import Segmenter
from napari_unet.nn.training import LEARNING_RATE, WARM_START_LEARNING_RATE, TrainConfig
from napari_unet.widgets import settings, ui
from napari_unet.widgets.controller import Controller
from napari_unet.widgets.loss_plot import LossPlot
from napari_unet.widgets.messages import guarded

PREVIEW_MAX = 512  # largest side of the live-preview crop (the network runs on it in the training thread)
PREVIEW_MARGIN = 16  # context around the view so the crop's border does not show

START_CURRENT = "current model"
START_NEW = "new model"
START_FILE = "file…"
PRETRAINED = "pretrained: "  # the combo's prefix of a shipped model's name
FILE = "file: "  # the saved setting's prefix of a model file's path
# What a 1-channel image starts from when there is no model yet and no start was chosen: fine-tuning it on
# the sample's scribbles beats a new model (BENCHMARKS.md section 6).
DEFAULT_PRETRAINED = "nuclei"


def preview_window(region, shape) -> tuple[slice, slice]:
    """The part of the plane to preview: the view plus a margin, at most PREVIEW_MAX pixels a side."""
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


class TrainStep(QWidget):
    """Start model, model size, device, time budget, advanced options, Train / Stop, loss curve."""

    def __init__(self, controller: Controller, parent=None) -> None:
        super().__init__(parent)
        self.controller = controller
        self._last_ui_update = 0.0
        self._run_offset = 0
        gpu = controller.device.type != "cpu"
        layout = ui.step_layout(self, "Fine-tune a U-Net on all annotated images in the background; "
                                      "training again continues from the current model")
        form = ui.form()
        self.start_combo = QComboBox()
        self.start_combo.setToolTip(
            "What training starts from: the current model (continue), a new model, a pretrained model "
            "shipped with napari-unet, or a model file. A start model is fine-tuned at a lower learning rate "
            f"({WARM_START_LEARNING_RATE:g}, a new model {LEARNING_RATE:g}) so it keeps what it already knows"
        )
        self.start_combo.activated.connect(lambda _: self._on_start_chosen())
        form.addRow(ui.label("Start from", self.start_combo.toolTip()), self.start_combo)
        self.preset_combo = QComboBox()
        for name, arch in PRESETS.items():
            self.preset_combo.addItem(name)
            self.preset_combo.setItemData(self.preset_combo.count() - 1,
                                          f"depth {arch['depth']}, width {arch['base_width']}", Qt.ToolTipRole)
        self.preset_combo.setCurrentText("balanced" if gpu else "fast")
        self.preset_combo.setToolTip(
            "Model size for a new model: fast (small, best on a CPU), balanced, accurate (large, best on a GPU). "
            "A model already trained keeps its size: start from 'new model' to change it."
        )
        form.addRow(ui.label("Model size", self.preset_combo.toolTip()), self.preset_combo)
        self.device_combo = QComboBox()
        self.device_combo.addItems(["auto", "cpu", "cuda", "mps"])
        self.device_combo.setToolTip("Where to train: auto picks a CUDA GPU, then Apple MPS, then the CPU")
        self.device_combo.currentTextChanged.connect(lambda _: self._on_device_changed())
        form.addRow(ui.label("Device", self.device_combo.toolTip()), self.device_combo)
        self.budget_spin = QSpinBox()
        self.budget_spin.setRange(0, 24 * 3600)
        self.budget_spin.setSingleStep(30)
        self.budget_spin.setValue(60)
        self.budget_spin.setSuffix(" s")
        self.budget_spin.setSpecialValueText("until stopped")
        self.budget_spin.setToolTip("Training time budget in seconds; 0 = until you press Stop")
        form.addRow(ui.label("Time budget", self.budget_spin.toolTip()), self.budget_spin)
        layout.addLayout(form)
        layout.addWidget(self._build_advanced(gpu))

        self.train_button = ui.button("Train  (Shift+T)", "Train on every image with annotations "
                                      "(warm start from the current model, if any)", self.train)
        self.stop_button = ui.button("Stop  (Shift+S)", "Stop at the next step and keep the model trained so far",
                                     self.stop)
        layout.addLayout(ui.row(self.train_button, self.stop_button))
        self.train_progress = ui.progress_bar("Training progress within the time budget / step limit")
        layout.addWidget(self.train_progress)
        self.train_stats = ui.label("", "Step, smoothed loss, training throughput and time left")
        self.train_stats.setWordWrap(True)
        layout.addWidget(self.train_stats)
        self.device_label = ui.label("", "The device training and prediction run on")
        self.device_label.setWordWrap(True)
        layout.addWidget(self.device_label)
        self.loss_plot = LossPlot()
        layout.addWidget(self.loss_plot)
        self.model_label = ui.label("", "The current model (trained here or loaded)")
        self.model_label.setWordWrap(True)
        layout.addWidget(self.model_label)
        self.save_button = ui.button("Save model…", "Save the current model as a napari-unet checkpoint (.pt); "
                                     "to share it as a BioImage.IO package, use the export dock's "
                                     "Share the model", self._save_dialog)
        layout.addLayout(ui.row(self.save_button, stretch=True))
        layout.addStretch(1)

        self._preview_timer = QTimer(self)
        self._preview_timer.timeout.connect(lambda: controller.request_preview(preview_window))
        for widget, key in ((self.preset_combo, "preset"), (self.device_combo, "device"),
                            (self.budget_spin, "time_budget"), (self.patch_spin, "patch_size"),
                            (self.batch_spin, "batch_size"), (self.preview_spin, "preview_every"),
                            (self.autopredict_check, "predict_after_training")):
            settings.persist(widget, key)
        ui.listen(controller.training_progress, self._on_progress)
        ui.listen(controller.training_finished, self._on_finished)
        ui.listen(controller.busy_changed, self.update_state)
        ui.listen(controller.model_changed, self.update_state)
        ui.listen(controller.image_changed, self._offer_dataset_model)
        ui.listen(controller.image_changed, self.update_state)  # the default start depends on the image
        self._on_device_changed()
        self._apply_saved_start()
        self._offer_dataset_model()
        self.update_state()

    def _build_advanced(self, gpu: bool) -> QCollapsible:
        advanced = QCollapsible("Advanced training options")
        advanced.setToolTip("Patch size, batch size, step limit, live preview")
        body = QWidget()
        form = ui.form()
        body.setLayout(form)
        self.patch_spin = QSpinBox()
        self.patch_spin.setRange(32, 1024)
        self.patch_spin.setSingleStep(32)
        self.patch_spin.setValue(256 if gpu else 128)
        self.patch_spin.setToolTip("Side of the square training patches (pixels); larger sees more context, is slower")
        form.addRow(ui.label("Patch size", self.patch_spin.toolTip()), self.patch_spin)
        self.batch_spin = QSpinBox()
        self.batch_spin.setRange(1, 128)
        self.batch_spin.setValue(16 if gpu else 4)
        self.batch_spin.setToolTip("Patches per training step (halved automatically if the GPU runs out of memory)")
        form.addRow(ui.label("Batch size", self.batch_spin.toolTip()), self.batch_spin)
        self.steps_spin = QSpinBox()
        self.steps_spin.setRange(0, 10_000_000)
        self.steps_spin.setSpecialValueText("no limit")
        self.steps_spin.setToolTip("Stop after this many steps (0 = no step limit; the time budget still applies)")
        form.addRow(ui.label("Max steps", self.steps_spin.toolTip()), self.steps_spin)
        self.preview_spin = QDoubleSpinBox()
        self.preview_spin.setRange(0.0, 600.0)
        self.preview_spin.setValue(4.0)
        self.preview_spin.setSuffix(" s")
        self.preview_spin.setSpecialValueText("off")
        self.preview_spin.setToolTip(
            "While training, refresh the semantic prediction of the visible field of view this often (0 = off)"
        )
        form.addRow(ui.label("Live preview", self.preview_spin.toolTip()), self.preview_spin)
        self.autopredict_check = QCheckBox("predict after training")
        self.autopredict_check.setChecked(True)
        self.autopredict_check.setToolTip("Run step 3 on the plane on display as soon as training finishes")
        form.addRow(self.autopredict_check)
        advanced.addWidget(body)
        for header in advanced.findChildren(QPushButton):  # the fold / unfold button
            header.setToolTip("Show or hide the advanced training options: " + advanced.toolTip().lower())
        return advanced

    def notify(self, level: str, text: str) -> None:
        self.controller.notify(level, text)

    # --- state ----------------------------------------------------------------------------------

    def update_state(self) -> None:
        controller = self.controller
        if controller.closed:
            return
        busy = controller.is_training or controller.is_predicting
        has_model = controller.segmenter is not None
        self.train_button.setEnabled(not busy)
        self.train_button.setText("Continue training  (Shift+T)" if has_model else "Train  (Shift+T)")
        self.stop_button.setEnabled(controller.is_training)
        for widget in (self.start_combo, self.preset_combo, self.device_combo):
            widget.setEnabled(not busy)
        self.save_button.setEnabled(has_model and not busy)
        self.model_label.setText("Model: " + self._model_text())
        self._refresh_start_combo()

    def _model_text(self) -> str:
        """The current model, or what Train will make when there is none yet."""
        if self.controller.segmenter is not None:
            return self.controller.session.model_summary()
        if self.controller.is_training:  # "no model yet" would read as if nothing happened
            return "the first one is training; it becomes the model when training ends (or you press Stop)"
        if self._default_start():
            return (f"none yet: Train fine-tunes the shipped '{DEFAULT_PRETRAINED}' model on your annotations "
                    "(Start from: 'new model' trains one from scratch)")
        return "none yet: Train makes a new one from your annotations, or choose a model in Start from"

    def _refresh_start_combo(self) -> None:
        items = ([START_CURRENT] if self.controller.segmenter is not None else []) + [START_NEW]
        items += [PRETRAINED + name for name in available_models()] + [START_FILE]
        self.start_combo.blockSignals(True)
        self.start_combo.clear()
        self.start_combo.addItems(items)
        if self.controller.segmenter is None and self._default_start():
            self.start_combo.setCurrentText(PRETRAINED + DEFAULT_PRETRAINED)
        self.start_combo.blockSignals(False)

    def _default_start(self) -> bool:
        """Whether training with no model starts from DEFAULT_PRETRAINED: a 1-channel image, 'new model' not chosen."""
        image = self.controller.image
        return (DEFAULT_PRETRAINED in available_models() and str(settings.load("start_model") or "") != START_NEW
                and image is not None and lb.layout_in(self.controller.viewer, image).n_channels == 1)

    def _on_device_changed(self) -> None:
        try:
            self.controller.set_device(self.device_combo.currentText())
            text = describe(self.controller.device)
            if self.controller.device.type == "cpu":
                text = f"cpu ({self.controller.train_threads} training thread(s), one core left for the viewer)"
            self.device_label.setText(f"Device: {text}")
        except Exception as error:  # UserInputError: that device is not available here
            self.device_label.setText(f"Device: {error}")

    # --- start model ----------------------------------------------------------------------------

    @guarded
    def _on_start_chosen(self) -> None:
        choice = self.start_combo.currentText()
        if choice == START_NEW:
            self.new_model()
            settings.save("start_model", START_NEW)
        elif choice.startswith(PRETRAINED):
            if self.load_model(choice.removeprefix(PRETRAINED)) is not None:
                settings.save("start_model", choice)
        elif choice == START_FILE:
            path = self._load_dialog()
            if path:
                settings.save("start_model", FILE + path)
        self.update_state()

    def _apply_saved_start(self) -> None:
        """Load the start model of the last session: a pretrained one, or a file that still exists."""
        saved = str(settings.load("start_model") or "")
        if saved.startswith(PRETRAINED) and saved.removeprefix(PRETRAINED) in available_models():
            self.load_model(saved.removeprefix(PRETRAINED))
        elif saved.startswith(FILE) and Path(saved.removeprefix(FILE)).is_file():
            self.load_model(saved.removeprefix(FILE))

    def _offer_dataset_model(self) -> None:
        """An image reopened from an exported dataset names its model: load it when none is loaded yet."""
        image = self.controller.image
        if image is None or self.controller.segmenter is not None or self.controller.is_training:
            return
        annotations = self.controller.paired(c.ROLE_ANNOTATIONS)
        path = lb.meta(image).get("model_path") or (lb.meta(annotations).get("model_path") if annotations else None)
        if path and Path(path).is_file():
            if self.load_model(path) is not None:
                self.notify("info", f"loaded the model exported with '{image.name}' ({path})")

    # --- training -------------------------------------------------------------------------------

    def train_config(self) -> TrainConfig:
        budget, steps = self.budget_spin.value(), self.steps_spin.value()
        return TrainConfig(
            preset=self.preset_combo.currentText(),
            patch_size=self.patch_spin.value(),
            batch_size=self.batch_spin.value(),
            seconds=float(budget) if budget > 0 else None,
            steps=steps if steps > 0 else None,
            device=self.device_combo.currentText(),
            threads=self.controller.train_threads,
        )

    @guarded
    def train(self) -> None:
        """Start training on every annotated image (warm start from the current model)."""
        if self.controller.is_training:
            self.notify("info", "already training: press Stop (Shift+S) to end it")
            return
        config = self.train_config()
        start = None
        if self.controller.segmenter is None and self._default_start():
            start = Segmenter.load(model_path(DEFAULT_PRETRAINED))
        preview = self.preview_spin.value() > 0
        self.controller.train(config, preview=preview, start=start)
        if not self.controller.is_training:
            return
        if start is not None:
            self.notify("info", f"starting from the shipped '{DEFAULT_PRETRAINED}' model; "
                                "choose 'new model' in Start from to train from scratch")
        if self.controller.segmenter is None:
            self.loss_plot.clear()
        # the run's first step on the curve: fixed now, since the session moves its offset on as soon
        # as the run ends, which can be before the run's last progress record arrives here
        self._run_offset = self.controller.session.loss_offset
        self.loss_plot.start_run(self._run_offset)
        self.train_progress.setFormat("starting…")
        self.train_progress.setRange(0, 0 if config.seconds is None and config.steps is None else 1000)
        if preview:
            self._preview_timer.start(int(self.preview_spin.value() * 1000))

    def stop(self) -> None:
        """Stop training at the next step (the model is kept), or cancel a running prediction."""
        if self.controller.is_training:
            self.train_progress.setFormat("stopping at the next step…")
        self.controller.stop()

    def _on_progress(self, progress) -> None:
        if not progress.stage:  # the work after the last step (tuning, counting mistakes) repeats its step and loss
            self.loss_plot.add(self._run_offset + progress.step, progress.loss)
        if not self.controller.is_training:  # a record that arrives after the end: the bar says stopped or done
            return
        now = time.perf_counter()
        if now - self._last_ui_update < 0.1 and progress.preview is None:
            return  # at most 10 label updates a second, whatever the step rate
        self._last_ui_update = now
        self._show_progress(progress)

    def _show_progress(self, progress, *, ended: bool = False) -> None:
        """The run's progress; once it `ended`, its last step and time without the time left."""
        if progress.fraction is not None:
            self.train_progress.setRange(0, 1000)
            self.train_progress.setValue(int(min(progress.fraction, 1.0) * 1000))
        left = ("" if ended else f" · {progress.remaining:.0f} s left" if progress.remaining is not None
                else " · until stopped")
        self.train_progress.setFormat(progress.stage or f"step {progress.step}{left}")
        self.train_stats.setText(
            f"step {progress.step} · loss {progress.loss:.4f} · {progress.pixels_per_second / 1e3:,.0f} kpx/s"
            f" · {progress.elapsed:.0f} s{left}"
        )
        self.device_label.setText(f"Device: {progress.device}")

    def _on_finished(self, ok: bool) -> None:
        self._preview_timer.stop()
        if self.controller.last_progress is not None:
            self._show_progress(self.controller.last_progress, ended=True)
        self.train_progress.setRange(0, 1000)
        self.train_progress.setValue(1000 if ok else 0)
        self.train_progress.setFormat(self._end_text(ok))

    def _end_text(self, ok: bool) -> str:
        """The progress bar's word once training ended: "stopped" after Stop, "done" at the budget's end."""
        if not ok:
            return "idle"
        history = self.controller.segmenter.history if self.controller.segmenter is not None else []
        return "stopped (model kept)" if history and history[-1].get("stopped") else "done"

    # --- model files ----------------------------------------------------------------------------

    @guarded
    def new_model(self) -> None:
        self.controller.new_model()
        self.loss_plot.clear()

    @guarded
    def save_model(self, path) -> Path | None:
        """Save the current model to `path` (no dialog)."""
        return self.controller.save_model(path)

    @guarded
    def load_model(self, path) -> Segmenter | None:
        """Load a checkpoint file or a pretrained model by name (no dialog); it becomes the current model."""
        segmenter = self.controller.load_model(path)
        self.loss_plot.clear()
        return segmenter

    def _save_dialog(self) -> None:
        if self.controller.is_training:
            return
        path, _ = QFileDialog.getSaveFileName(self, "Save napari-unet model", "napari-unet-model.pt",
                                              "napari-unet model (*.pt);;All files (*)")
        if path:
            self.save_model(path)

    def _load_dialog(self) -> str | None:
        """Ask for a model file and load it; returns its path when it loaded."""
        if self.controller.is_training:
            return None
        path, _ = QFileDialog.getOpenFileName(self, "Load napari-unet model", "",
                                              "napari-unet model (*.pt);;All files (*)")
        return path if path and self.load_model(path) is not None else None

    def shutdown(self) -> None:
        self._preview_timer.stop()

