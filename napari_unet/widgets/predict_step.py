"""Step 3 of the dock: predict the plane (or stack) and tune the objects live from cached outputs."""

from __future__ import annotations

import numpy as np
from napari.layers import Image
from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QSpinBox, QWidget
from superqt import QLabeledDoubleSlider

from napari_unet import conventions as c
from napari_unet.functionals.instances import InstanceParams
from napari_unet.functionals.scale import AUTO, diameter_at
from napari_unet.napari import layers as lb
from napari_unet.nn.inference import DEFAULT_FLIPS, FLIP_CHOICES
from napari_unet.widgets import settings, ui
from napari_unet.widgets.controller import Controller
from napari_unet.widgets.messages import guarded
from napari_unet.widgets.workers import TileProgress


class PredictStep(QWidget):
    """Scope, probabilities, tile size, Predict / Cancel, and the live instance parameters."""

    def __init__(self, controller: Controller, parent=None) -> None:
        super().__init__(parent)
        self.controller = controller
        layout = ui.step_layout(self, "Overlay the model's semantic classes and separate objects on the selected image")
        form = ui.form()
        self.scope_combo = QComboBox()
        self.scope_combo.addItem("plane on display", "plane")
        self.scope_combo.addItem("whole stack", "stack")
        self.scope_combo.setToolTip("Predict only the plane on display, or every plane of a stack")
        form.addRow(ui.label("Predict", self.scope_combo.toolTip()), self.scope_combo)
        self.prob_check = QCheckBox("add per-class probability layers")
        self.prob_check.setToolTip("Also add one Image layer per class with its probability (0..1)")
        form.addRow(self.prob_check)
        self.uncertainty_check = QCheckBox("add a hidden uncertainty layer")
        self.uncertainty_check.setChecked(True)
        self.uncertainty_check.setToolTip(
            "Also add a layer of where the model is unsure (entropy of the class probabilities: dark = sure, "
            "bright = unsure), hidden so that it does not cover the predictions: 'Suggest next' shows it (and "
            "ranks regions by the uncertainty either way), or click its eye in the layer list"
        )
        form.addRow(self.uncertainty_check)
        self.tile_spin = QSpinBox()
        self.tile_spin.setRange(64, 4096)
        self.tile_spin.setSingleStep(64)
        self.tile_spin.setValue(512)
        self.tile_spin.setSuffix(" px")
        self.tile_spin.setToolTip("Tile size for prediction; lower it if the GPU runs out of memory")
        form.addRow(ui.label("Tile size", self.tile_spin.toolTip()), self.tile_spin)
        self._add_diameter_row(form)
        self._add_flips_row(form)
        layout.addLayout(form)
        self.predict_button = ui.button("Predict  (Shift+R)", "Run the model on the selected image", self.predict)
        self.cancel_button = ui.button("Cancel", "Cancel the running prediction", self.cancel_prediction)
        layout.addLayout(ui.row(self.predict_button, self.cancel_button))
        self.predict_progress = ui.progress_bar("Prediction progress (tiles of the current plane, planes of the stack)")
        layout.addWidget(self.predict_progress)
        self._add_batch_buttons(layout)
        self.suggest_button = ui.button(
            "Suggest next region  (Shift+N)",
            "Move the view to the predicted region where the model is least sure and that is not annotated or "
            "accepted yet, and outline it; each press shows the next one (every open image), never one twice",
            self.suggest,
        )
        layout.addWidget(self.suggest_button)

        layout.addWidget(ui.hint("Objects update live from the cached network outputs (no new prediction):"))
        defaults = InstanceParams()
        inst_form = ui.form()
        self.threshold_slider = _fraction_row(
            inst_form, "Threshold", 0.05, defaults.threshold,
            "Foreground threshold: pixels more likely than this to belong to a class become objects")
        self.min_size_spin = QSpinBox()
        self.min_size_spin.setRange(0, 1_000_000)
        self.min_size_spin.setValue(defaults.min_size)
        self.min_size_spin.setSuffix(" px")
        self.min_size_spin.setToolTip("Objects smaller than this (in pixels) are dropped")
        inst_form.addRow(ui.label("Minimum size", self.min_size_spin.toolTip()), self.min_size_spin)
        self.spacing_spin = QSpinBox()
        self.spacing_spin.setRange(1, 200)
        self.spacing_spin.setValue(defaults.seed_spacing)
        self.spacing_spin.setSuffix(" px")
        self.spacing_spin.setToolTip("Closest distance between two object centres: raise it if objects are split too often")
        inst_form.addRow(ui.label("Seed spacing", self.spacing_spin.toolTip()), self.spacing_spin)
        self.prominence_slider = _fraction_row(
            inst_form, "Seed prominence", 0.0, defaults.seed_prominence,
            "How far a peak of the model's distance map must stand out from its surroundings to start an "
            "object of its own: raise it if objects are split too often, lower it if touching objects merge")
        self.border_slider = _fraction_row(
            inst_form, "Border evidence", 0.0, defaults.border_evidence,
            "Two touching objects stay apart only where the model marks the line between them at least this "
            "fraction as clearly as the objects' outer edges: raise it if large objects come out in pieces, "
            "lower it if touching objects merge (0 keeps every split)")
        self.confidence_slider = _fraction_row(
            inst_form, "Min confidence", 0.0, defaults.min_confidence,
            "An object stays if the model is at least this sure of it, as a fraction of how sure it is of the "
            "image's surest objects (mean foreground probability): raise it if faint or out-of-focus objects you "
            "leave out come up, lower it if faint objects you want are dropped (0 keeps every object)")
        layout.addLayout(inst_form)
        self.tuning_label = ui.hint("")  # what tuning after training picked for the model, or why not
        self.tuning_label.setToolTip(
            "After training, the settings above are tried on the objects you outlined (instance labels, accepted "
            "regions) and the best are kept with the model; the sliders move to them and you can still move them. "
            "The mistakes left on those objects follow: the model learnt from them, so expect more on other images")
        layout.addWidget(self.tuning_label)
        self._tuned_model = None  # the model whose tuned settings the sliders were last moved to
        self._scope = "plane"  # what the last Predict asked for
        self._objects: int | None = None
        self.instance_status = ui.label("", "Objects in the instance layer of the plane on display")
        self.instance_status.setWordWrap(True)  # "N objects in this plane · predicted for objects of D px (source)"
        layout.addWidget(self.instance_status)
        layout.addStretch(1)

        for widget, key in ((self.tile_spin, "tile_size"), (self.prob_check, "probability_layers"),
                            (self.uncertainty_check, "uncertainty_layer"),
                            (self.threshold_slider, "threshold"), (self.min_size_spin, "min_size"),
                            (self.spacing_spin, "seed_spacing"), (self.prominence_slider, "seed_prominence"),
                            (self.border_slider, "border_evidence"), (self.confidence_slider, "min_confidence"),
                            (self.diameter_combo, "object_diameter"),
                            (self.diameter_spin, "object_diameter_px"), (self.flips_combo, "test_time_flips")):
            settings.persist(widget, key)
        self._instance_timer = QTimer(self)  # a slider drag: recompute once it rests
        self._instance_timer.setSingleShot(True)
        self._instance_timer.setInterval(150)
        self._instance_timer.timeout.connect(lambda: controller.update_instances(self.instance_params()))
        for widget in (self.threshold_slider, self.min_size_spin, self.spacing_spin, self.prominence_slider,
                       self.border_slider, self.confidence_slider):
            widget.valueChanged.connect(lambda _: self._instance_timer.start())
        ui.listen(controller.prediction_progress, self._show_tile_progress)
        ui.listen(controller.store_progress, self._show_store_progress)
        ui.listen(controller.batch_progress, self._show_batch_progress)
        ui.listen(controller.plane_predicted, self._on_plane_predicted)
        ui.listen(controller.prediction_finished, self._on_finished)
        ui.listen(controller.instances_updated, self.update_status)
        ui.listen(controller.busy_changed, self.update_state)
        ui.listen(controller.model_changed, self.update_state)
        ui.listen(controller.model_changed, self._show_model_diameter)
        ui.listen(controller.model_changed, self._follow_model_settings)
        ui.listen(controller.image_changed, self._on_image_or_plane)
        ui.listen(controller.plane_changed, self._on_image_or_plane)
        self.diameter_combo.currentIndexChanged.connect(lambda _: self._show_model_diameter())
        self._show_model_diameter()
        self._follow_model_settings()
        self.update_state()
        self.update_status()

    def _add_diameter_row(self, form) -> None:
        """The objects' size the model is told: it resizes the image so they look like its training objects."""
        self.diameter_combo = QComboBox()
        self.diameter_combo.addItem("auto", AUTO)
        self.diameter_combo.addItem("as trained", None)
        self.diameter_combo.addItem("this size", "size")
        self.diameter_spin = QDoubleSpinBox()
        self.diameter_spin.setRange(2.0, 2000.0)
        self.diameter_spin.setDecimals(0)
        self.diameter_spin.setValue(30.0)
        self.diameter_spin.setToolTip("Typical object diameter in this image, in pixels (used with 'this size')")
        self.diameter_spin.setStyleSheet("min-width: 50px;")  # napari's 70 px (+ buttons) widened the step past the dock
        self.diameter_label = ui.label("Object diameter", "")
        form.addRow(self.diameter_label, ui.row((self.diameter_combo, 1), self.diameter_spin))

    def _add_flips_row(self, form) -> None:
        self.flips_combo = QComboBox()
        for flips in FLIP_CHOICES:
            self.flips_combo.addItem("off" if flips == 1 else f"{flips} passes", flips)
        self.flips_combo.setCurrentIndex(FLIP_CHOICES.index(DEFAULT_FLIPS))
        self.flips_combo.setToolTip(
            "Test-time flips: run the network on mirrored and turned copies of the image and average them. "
            "Each pass is one more run of the network (8 passes: up to 8 times as long) for a little accuracy "
            "(under 0.01 of AP@0.5 on unseen nuclei in the benchmarks). Used by Predict and the batch buttons; "
            "the live preview and the prediction right after training stay one pass")
        form.addRow(ui.label("Test-time flips", self.flips_combo.toolTip()), self.flips_combo)

    def test_time_flips(self) -> int:
        """Network passes per tile for Predict (inference.FLIP_CHOICES; 1: off)."""
        return int(self.flips_combo.currentData())

    def object_diameter(self) -> float | str | None:
        """The choice Predict passes on: AUTO, None (the model's training diameter) or pixels."""
        choice = self.diameter_combo.currentData()
        return float(self.diameter_spin.value()) if choice == "size" else choice

    def _show_model_diameter(self) -> None:
        """Say why the setting matters, with the model's own diameter; off for a model that does not resize."""
        model = self.controller.segmenter
        trained = f"{model.object_diameter:.0f} px" if model is not None and model.object_diameter else "unknown"
        resizes = model is None or model.canonical_diameter is not None
        tip = (
            "Typical diameter of the objects in this image, in pixels. The model resizes every image so its "
            "objects look the size of the ones it learnt from: a wrong diameter splits large objects and merges "
            "small ones.\n"
            "auto: on images the model was not trained on (a shipped model, a new image, another magnification) "
            "measure the objects from a first pass and predict again at the right scale (up to 4 passes); "
            "on the images it was trained on here, the size each was trained at (one pass).\n"
            f"as trained: always the training diameter ({trained}), one pass.\n"
            "this size: the diameter you set."
            + ("" if resizes else "\nThis model does not resize images: the setting has no effect.")
        )
        for widget in (self.diameter_label, self.diameter_combo, self.diameter_spin):
            widget.setToolTip(tip)
        self.diameter_combo.setEnabled(resizes)
        self.diameter_spin.setEnabled(resizes and self.diameter_combo.currentData() == "size")

    def _follow_model_settings(self) -> None:
        """Move the sliders to a newly trained or loaded model's tuned settings, once per model, and say so."""
        model = self.controller.segmenter
        tuning = None if model is None else model.instance_tuning
        self.tuning_label.setText("" if tuning is None else "\n".join(
            line for line in (tuning.describe(), tuning.describe_errors()) if line))
        self.tuning_label.setVisible(tuning is not None)
        if tuning is None or not tuning.tuned or model is self._tuned_model:
            return
        self._tuned_model = model
        params = tuning.params
        self.threshold_slider.setValue(params.threshold)
        self.min_size_spin.setValue(params.min_size)
        self.spacing_spin.setValue(params.seed_spacing)
        self.prominence_slider.setValue(params.seed_prominence)
        self.border_slider.setValue(params.border_evidence)
        self.confidence_slider.setValue(params.min_confidence)

    def notify(self, level: str, text: str) -> None:
        self.controller.notify(level, text)

    def instance_params(self) -> InstanceParams:
        return InstanceParams(
            threshold=round(float(self.threshold_slider.value()), 4),
            min_size=int(self.min_size_spin.value()),
            seed_spacing=int(self.spacing_spin.value()),
            seed_prominence=round(float(self.prominence_slider.value()), 4),
            border_evidence=round(float(self.border_slider.value()), 4),
            min_confidence=round(float(self.confidence_slider.value()), 4),
        )

    def update_state(self) -> None:
        controller = self.controller
        if controller.closed:
            return
        idle = not controller.is_training and not controller.is_predicting
        self.predict_button.setEnabled(idle and controller.segmenter is not None and controller.image is not None)
        self.cancel_button.setEnabled(controller.is_predicting)
        for button in (self.open_images_button, self.folder_button):
            button.setEnabled(idle and controller.segmenter is not None)
        self.suggest_button.setEnabled(len(controller.session.cache) > 0)
        _, layout, _ = controller.selected(required=False)
        self.scope_combo.setEnabled(idle and layout is not None and len(layout.planes()) > 1)  # a stack to choose in

    def _on_image_or_plane(self) -> None:
        self.update_state()
        self.update_status()
        self._instance_timer.start()

    @guarded
    def predict(self, scope: str | None = None, flips: int | None = None) -> None:
        """Predict the plane on display (or the whole stack) of the selected image in a worker.
        `flips`: test-time flips (None: the dock's choice)."""
        self._scope = scope or self.scope_combo.currentData()
        self.controller.predict(self.instance_params(), scope=self._scope,
                                tile_size=self.tile_spin.value(), probabilities=self.prob_check.isChecked(),
                                uncertainty=self.uncertainty_check.isChecked(), diameter=self.object_diameter(),
                                flips=flips or self.test_time_flips())
        if self.controller.is_predicting:
            self.predict_progress.setValue(0)
            self.predict_progress.setFormat("predicting…")

    @guarded
    def suggest(self) -> None:
        """Show the next region to annotate (the controller ranks the predicted planes)."""
        self.controller.suggest_next()

    def cancel_prediction(self) -> None:
        if self.controller.is_predicting:
            self.controller.cancel_prediction()
            self.predict_progress.setFormat("cancelling…")

    def _show_tile_progress(self, record: TileProgress) -> None:
        tiles = record.tiles
        if not self.controller.is_predicting or not tiles.total:
            return
        fraction = (record.index + tiles.fraction) / max(record.planes, 1)
        self.predict_progress.setValue(int(fraction * 1000))
        self.predict_progress.setFormat(f"plane {record.index + 1}/{record.planes} · tile {tiles.done}/{tiles.total}")

    def _on_plane_predicted(self, result) -> None:
        self.predict_progress.setValue(int(result.done / max(result.total, 1) * 1000))
        self.update_status()
        if result.params != self.instance_params():  # the sliders moved while it ran
            self._instance_timer.start()

    def _on_finished(self, status: str) -> None:
        self.predict_progress.setValue(1000 if status == "done" else 0)
        self.predict_progress.setFormat(status)
        image = self.controller.image
        if status == "done" and image is not None and self._objects is not None:
            objects = f"{self._objects} object{'' if self._objects == 1 else 's'}"
            what = (f"every plane of '{image.name}': {objects} in the plane on display" if self._scope == "stack"
                    else f"'{image.name}' (the plane on display): {objects}")
            uncertainty = lb.find_paired(self.controller.viewer, image.name, c.ROLE_UNCERTAINTY, Image)
            shows = " (and shows the uncertainty)" if uncertainty and not uncertainty.visible else ""
            self.notify("info", f"predicted {what}. Fix and accept them in step 4, or paint where "
                                f"Suggest next (Shift+N) points{shows}")

    def update_status(self) -> None:
        controller = self.controller
        if controller.closed:
            return
        image, _, plane = controller.selected(required=False)
        layer = controller.paired(c.ROLE_INSTANCES)
        self._objects = None  # objects in the plane on display, for the message at the end of a prediction
        if layer is None:
            self.instance_status.setText("no objects yet: predict first")
            return
        if lb.is_lazy(layer):  # a store too big to count on the GUI thread: the prediction counted it
            self.instance_status.setText(self._store_status(layer))
            return
        try:
            labels = lb.read_plane(layer, plane)
            n = len(np.unique(labels)) - (1 if labels.min() == 0 else 0)
        except Exception:  # a layer of another shape: check_pair reports it when it is used
            return
        self._objects = n
        entry = controller.session.cache.get(image.name, plane)
        live = "" if entry is not None else " (predict this plane for live updates)"
        self.instance_status.setText(f"{n} object{'' if n == 1 else 's'} in this plane{live}"
                                     + (self._diameter_text(entry, layer) if entry is not None else ""))

    def _diameter_text(self, entry, layer) -> str:
        """' · predicted for objects of 31 px (measured)': the diameter this plane was predicted for."""
        model = self.controller.segmenter
        used = None if model is None else diameter_at(entry.prediction.scale, model.canonical_diameter,
                                                      model.object_diameter)
        if used is None:
            return ""
        source = (lb.meta(layer).get("provenance") or {}).get("object_diameter_source")
        return f" · predicted for objects of {used:.0f} px" + (f" ({source})" if source else "")

    # --- many images: every open image, or a folder of files (controller.batch_jobs) ------------

    def _add_batch_buttons(self, layout) -> None:
        self.open_images_button = ui.button(
            "Predict all open images", "Predict every open image as one job (the batch path of `napari-unet "
            "predict`); their semantic and instance layers fill in as each image finishes", self.predict_open_images)
        self.folder_button = ui.button(
            "Predict a folder…", "Choose a folder of images, then a folder for the outputs: each image gets "
            "<name>_instances.tif and <name>_semantic.tif there (files of those names are replaced); "
            "images that cannot be read are reported and skipped", self.predict_folder)
        layout.addLayout(ui.row(self.open_images_button, self.folder_button))

    @guarded
    def predict_open_images(self) -> None:
        self.controller.predict_open_images(self.instance_params(), tile_size=self.tile_spin.value(),
                                            diameter=self.object_diameter(), flips=self.test_time_flips())
        self._batch_started()

    @guarded
    def predict_folder(self, folder: str | None = None, out_dir: str | None = None) -> None:
        if folder is None:
            from qtpy.QtWidgets import QFileDialog

            folder = QFileDialog.getExistingDirectory(self, "Folder of images to predict")
            if not folder:
                return
            out_dir = QFileDialog.getExistingDirectory(self, "Folder for the outputs", folder)
            if not out_dir:
                return
        self.controller.predict_folder(folder, out_dir or folder, self.instance_params(),
                                       tile_size=self.tile_spin.value(), diameter=self.object_diameter(),
                                       flips=self.test_time_flips())
        self._batch_started()

    def _batch_started(self) -> None:
        if self.controller.is_predicting:
            self.predict_progress.setValue(0)
            self.predict_progress.setFormat("starting the batch…")

    def _show_batch_progress(self, record) -> None:
        if self.controller.is_predicting and record.total:
            self.predict_progress.setValue(int(record.done / record.total * 1000))
            self.predict_progress.setFormat(f"image {record.done}/{record.total}")

    # --- a plane too big for memory, predicted into a zarr store (controller.store_jobs) ---------

    def _show_store_progress(self, record) -> None:
        if not self.controller.is_predicting or not record.total:
            return
        first = record.stage == "network"  # two passes: the network's blocks, then the objects' blocks
        self.predict_progress.setValue(int((record.done / record.total + (0 if first else 1)) * 500))
        what = "network" if first else "objects"
        self.predict_progress.setFormat(f"{what}: block {record.done}/{record.total}")

    @staticmethod
    def _store_status(layer) -> str:
        objects = lb.meta(layer).get("objects")
        where = lb.meta(layer).get("store", "a zarr store")
        if objects is None:
            return f"objects are being written to {where}"
        return f"{objects} object{'' if objects == 1 else 's'} (saved in {where}); predict again to apply new parameters"

    def shutdown(self) -> None:
        self._instance_timer.stop()


def _fraction_row(form, label: str, low: float, value: float, tip: str) -> QLabeledDoubleSlider:
    """A 0-1 instance setting in steps of 0.05, shown with its value, added to `form` as a row named `label`."""
    slider = QLabeledDoubleSlider(Qt.Horizontal)
    slider.setRange(low, 0.95)
    slider.setDecimals(2)
    slider.setSingleStep(0.05)
    slider.setValue(value)
    slider.setToolTip(tip)
    form.addRow(ui.label(label, tip), slider)
    return slider
