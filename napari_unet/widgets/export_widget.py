"""Export dock: images with their Labels layers (and the model) -> one folder of OME-Zarr datasets.

Step 6 of the cycle, and a thin dock: it turns its tick boxes into a plan (which Labels
layers go with each image: `napari/export.py`; where each dataset goes and what to
replace, after asking: `io/export.plan_targets`) and runs `io/export.export_datasets` in a
worker started through the viewer's scheduler. The worker's yielded records (dataset
started, chunks written, written, failed) are the only path of progress to the dock; Cancel
stops it at the next chunk, and closing the dock or the viewer stops and joins it. Its
"Share the model" box (`bioimageio_export.py`) writes the current model as a BioImage.IO
package, the same way.

Code and tests use `ExportWidget.export(folder, images=...)` (returns the running
worker; `export_finished` is emitted with an `ExportResult` when it ends) or the
synchronous `ExportWidget.export_now(...)`. Overwriting an existing dataset or model
asks `ExportWidget.confirm_overwrite(path) -> bool` (a QMessageBox by default; replace
the attribute to answer without a dialog).
"""

from __future__ import annotations

import copy
import logging
import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from napari.layers import Image, Labels
from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QLabel,
    QLineEdit,
    QMessageBox,
    QVBoxLayout,
    QWidget,
)

from napari_unet import conventions as c
from napari_unet.errors import UserInputError
from napari_unet.io.export import (
    FAILED_AS_A_WHOLE,
    ExportJob,
    ExportProgress,
    ExportResult,
    check_folder,
    export_datasets,
    plan_targets,
    run_export,
)
from napari_unet.napari.export import chosen_layers, export_structure, job_from_layers
from napari_unet.napari.layer_events import LayerListWatch
from napari_unet.widgets import ui
from napari_unet.widgets.bioimageio_export import BioImageIOExport
from napari_unet.widgets.controller import Controller, controller_for
from napari_unet.widgets.export_tree import ExportTree
from napari_unet.widgets.lifecycle import ClosesWithViewer
from napari_unet.widgets.messages import Messages, guarded
from napari_unet.widgets.ui import MessageLine, listen

log = logging.getLogger(__name__)

MODEL_FILE = c.MODEL_FILE
NGFF_CHOICES = (("NGFF 0.5 (default)", "0.5"), ("NGFF 0.4 for Fiji/MoBIE/BDV", "0.4"))


class ExportWidget(ClosesWithViewer, QWidget):
    """napari-unet's export dock (npe2 command `napari-unet.export_widget`)."""

    export_finished = Signal(object)  # an ExportResult, when a worker ends (any way)

    def __init__(self, napari_viewer, parent=None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.confirm_overwrite: Callable[[Path], bool] = self._ask_overwrite
        self.log = Messages()
        self.last_result: ExportResult | None = None
        self.worker = None
        self._model = None
        self._controller = None
        self._stop = threading.Event()
        self._result: ExportResult | None = None
        self._closed = False

        self._build_ui()
        self._layers_watch = LayerListWatch(self.viewer, self._on_layer_event, ("name", "metadata"))
        self.watch_viewer_close()
        # Qt deleting the dock without a close event first: stop its export all the same
        self.destroyed.connect(lambda *_, stop=self._stop: stop.set())
        self.refresh()
        self.update_model_state()

    # ----------------------------------------------------------------------------------- UI

    def _build_ui(self) -> None:
        self.setMinimumWidth(320)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.setSpacing(8)

        intro = QLabel("Each ticked image and its ticked Labels layers become one OME-Zarr dataset "
                       "(<i>image</i>.zarr) in the destination folder.")
        intro.setWordWrap(True)
        intro.setToolTip("napari (File > Open, plugin napari-unet) and other OME-Zarr readers open "
                         "the datasets again, layer for layer")
        layout.addWidget(intro)

        box, box_layout = ui.group("Images and layers",
                                   "Tick the images to export and, under each, the Labels layers that go with it")
        self.tree = ExportTree()
        self.tree.ticks_changed.connect(self._update_state)
        box_layout.addWidget(self.tree)
        self.all_button = ui.button("Tick all", "Tick every image", lambda: self.tree.tick_all(True))
        self.none_button = ui.button("Untick all", "Untick every image", lambda: self.tree.tick_all(False))
        box_layout.addLayout(ui.row(self.all_button, self.none_button, stretch=True))
        layout.addWidget(box)

        dest, dest_layout = ui.group("Destination", "Where the datasets (and the model) are written")
        self.folder_edit = QLineEdit()
        self.folder_edit.setPlaceholderText("folder for the datasets")
        self.folder_edit.setToolTip("Folder that receives one <image>.zarr dataset per image (created if "
                                    "missing); existing datasets are replaced only after you confirm")
        self.folder_edit.setClearButtonEnabled(True)
        self.browse_button = ui.button("Browse…", "Choose the destination folder", self._browse)
        dest_layout.addLayout(ui.row((self.folder_edit, 1), self.browse_button))
        self.ngff_combo = QComboBox()
        for text, version in NGFF_CHOICES:
            self.ngff_combo.addItem(text, version)
        self.ngff_combo.setToolTip("OME-Zarr version: 0.5 (zarr v3) by default; 0.4 (zarr v2) for Fiji, "
                                   "MoBIE, BigDataViewer and other tools that do not read zarr v3 yet")
        dest_layout.addWidget(self.ngff_combo)
        self.model_check = QCheckBox(f"Include model ({MODEL_FILE})")
        self.model_check.setChecked(True)
        dest_layout.addWidget(self.model_check)
        self.model_label = QLabel("")
        self.model_label.setWordWrap(True)
        self.model_label.setStyleSheet("color: gray;")
        dest_layout.addWidget(self.model_label)
        layout.addWidget(dest)

        self.export_button = ui.button("Export", "Write one dataset per ticked image into the folder "
                                       "(in the background: the viewer stays usable)", self._export_clicked)
        self.export_button.setMinimumHeight(28)
        self.cancel_button = ui.button("Cancel", "Stop the export: the dataset being written is not "
                                       "written at all, datasets already written stay", self.cancel)
        self.cancel_button.setEnabled(False)
        layout.addLayout(ui.row((self.export_button, 2), (self.cancel_button, 1)))
        self.progress_bar = ui.progress_bar("Export progress (chunks written, over all images)")
        layout.addWidget(self.progress_bar)
        self.status_label = MessageLine(self.log, "The latest export message (also shown as a napari notification)")
        layout.addWidget(self.status_label)

        share, share_layout = ui.group("Share the model", "The current model as a BioImage.IO model package")
        share_layout.addWidget(ui.hint("A BioImage.IO package (.zip) runs in bioimage.io tools (ilastik, "
                                       "deepImageJ, QuPath...) and opens again in napari-unet as a model."))
        self.bioimageio = BioImageIOExport(lambda: self.controller, self.current_model, self.notify,
                                           lambda path: self.confirm_overwrite(path))
        share_layout.addWidget(self.bioimageio)
        layout.addWidget(share)
        layout.addStretch(1)

    # ------------------------------------------------------------------------------ viewer

    def _on_layer_event(self, event=None) -> None:
        if self._closed:
            return
        try:
            self.refresh()
            self.update_model_state()
        except RuntimeError:  # the Qt object is gone (viewer closing)
            self._closed = True

    def shutdown(self, timeout: float = 15.0) -> None:
        """Stop this dock's export and join its thread (through the viewer's scheduler), stop
        tracking the viewer: the dock or the viewer closes, with or without the main dock."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        workers = [w for w in (self.worker, self.bioimageio.worker) if w is not None]
        if workers and self._controller is not None:
            self._controller.scheduler.join(timeout, only=workers)
        self._watched_window = None
        self._layers_watch.disconnect()

    def closeEvent(self, event):  # noqa: N802 (Qt API)
        self._stop.set()
        super().closeEvent(event)

    def showEvent(self, event):  # noqa: N802 (Qt API)
        self._on_layer_event()
        super().showEvent(event)

    # ------------------------------------------------------------------------- image tree

    def refresh(self) -> None:
        """Rebuild the image tree from the layer list (tick states are kept by name)."""
        if self.tree.show_structure(export_structure(self.viewer)):
            self._update_state()

    def set_image_checked(self, image: str, checked: bool = True) -> None:
        """Tick or untick an image (also before its layer exists: kept by name)."""
        self.tree.set_image_checked(image, checked)

    def set_labels_checked(self, image: str, role: str, checked: bool = True) -> None:
        """Tick or untick the `role` Labels layer of `image`."""
        self.tree.set_labels_checked(image, role, checked)

    def checked_images(self) -> list[str]:
        """Names of the ticked image layers, in layer order."""
        return self.tree.checked_images(export_structure(self.viewer))

    def checked_roles(self, image: str) -> list[str]:
        """Roles of the ticked Labels layers of `image` (those that exist)."""
        return self.tree.checked_roles(export_structure(self.viewer), image)

    # ------------------------------------------------------------------------------ model

    def set_model(self, segmenter) -> None:
        """The model to export with "Include model" (None: the main dock's model, if any)."""
        self._model = segmenter
        self.update_model_state()

    @property
    def controller(self) -> Controller:
        """The viewer's napari-unet controller (shared with the main dock), found through the registry."""
        if self._controller is None or self._controller.closed:
            self._controller = controller_for(self.viewer)
            listen(self._controller.model_changed, self.update_model_state)
        return self._controller

    def current_model(self):
        """The model "Include model" exports: set_model's, else the main dock's, else None."""
        return self._model if self._model is not None else self.controller.segmenter

    def update_model_state(self) -> None:
        model = self.current_model()
        has = model is not None
        self.model_check.setEnabled(has and not self.is_exporting)
        self.bioimageio.update_state(has)
        if has:
            classes = ", ".join(str(n) for n in getattr(model, "class_names", []) or [])
            self.model_label.setText(f"Model: classes {classes}" if classes else "Model available")
            self.model_check.setToolTip(
                f"Also save the current model as {MODEL_FILE} in the folder; its SHA-256 and model card "
                "are recorded in every dataset's provenance")
        else:
            self.model_label.setText("No model yet: train or load one in the napari-unet dock to include it")
            self.model_check.setToolTip("No model to include yet: train or load one first")

    def _model_snapshot(self, include_model: bool | None):
        """A private copy of the model to export, or None."""
        if include_model is None:
            include_model = self.model_check.isChecked()
        if not include_model:
            return None
        model = self.current_model()
        if model is None:
            return None  # nothing to include (the checkbox is disabled and says so)
        return copy.deepcopy(model)  # training works on its own copy; this one is the export's

    # ------------------------------------------------------------------------------ state

    @property
    def is_exporting(self) -> bool:
        return self.worker is not None

    def _update_state(self) -> None:
        if self._closed:
            return
        busy = self.is_exporting
        self.export_button.setEnabled(not busy)
        self.cancel_button.setEnabled(busy)
        for widget in (self.tree, self.folder_edit, self.browse_button, self.all_button, self.none_button):
            widget.setEnabled(not busy)
        self.model_check.setEnabled(not busy and self.current_model() is not None)

    def notify(self, level: str, text: str) -> None:
        """Show a napari notification and remember it (tests and the status line read it)."""
        self.log.notify(level, text)

    @property
    def messages(self) -> list[tuple[str, str]]:
        return self.log.log

    @property
    def last_message(self) -> tuple[str, str] | None:
        return self.log.last

    def folder(self) -> str:
        return self.folder_edit.text().strip()

    def set_folder(self, folder: str | os.PathLike) -> None:
        self.folder_edit.setText(os.fspath(folder))

    # ----------------------------------------------------------------------------- dialogs

    @guarded
    def _browse(self) -> None:
        start = self.folder() or str(Path.home())
        chosen = QFileDialog.getExistingDirectory(self, "Export datasets to folder", start)
        if chosen:
            self.set_folder(chosen)

    def _ask_overwrite(self, path: Path) -> bool:
        what = {".pt": "The model file", ".zip": "The BioImage.IO package"}.get(path.suffix.lower(), "The dataset")
        answer = QMessageBox.question(
            self, "napari-unet: replace?",
            f"{what} {path.name} already exists in {path.parent}.\n\nReplace it with this export?",
            QMessageBox.Yes | QMessageBox.No, QMessageBox.No)
        return answer == QMessageBox.Yes

    # ------------------------------------------------------------------------------ export

    def _selection(self, images: Iterable | None) -> list[tuple[Image, list[Labels]]]:
        names = self.checked_images() if images is None else [getattr(image, "name", image) for image in images]
        return chosen_layers(self.viewer, {name: self.checked_roles(name) for name in names})

    def plan(self, folder: Path, chosen: list[tuple[Image, list[Labels]]], result: ExportResult) -> list[ExportJob]:
        """Jobs for the chosen images (GUI thread: snapshots layers, asks before overwriting)."""
        targets = plan_targets(folder, [image.name for image, _ in chosen], result, self.confirm_overwrite)
        for image, why in result.failed.items():
            self.notify("error", f"cannot export '{image}': {why}")
        ngff = self.ngff_combo.currentData()
        return [job_from_layers(*chosen[index], path, overwrite, ngff) for index, path, overwrite in targets]

    def _prepare(self, folder, images, include_model):
        """(jobs, result, model, model path) to export, or None once the user has been told why not."""
        if self.is_exporting:
            self.notify("info", "already exporting: wait for it to finish or press Cancel")
            return None
        try:
            folder = check_folder(self.folder() if folder is None else folder)
            chosen = self._selection(images)
        except UserInputError as error:
            self.notify("error", str(error))
            return None
        model = self._model_snapshot(include_model)
        result = ExportResult(folder)
        model_path = None
        if model is not None:
            model_path = folder / MODEL_FILE
            if model_path.exists() and not self.confirm_overwrite(model_path):
                model_path = None
                self.notify("warning", f"{MODEL_FILE} already exists in {folder} and was kept: the model's "
                                       "SHA-256 and card are recorded, but the model file is not written")
        return self.plan(folder, chosen, result), result, model, model_path

    @guarded
    def _export_clicked(self) -> None:
        self.export()

    def export(self, folder: str | os.PathLike | None = None, images: Iterable | None = None,
               include_model: bool | None = None):
        """Start exporting in a worker thread and return it (None when there is nothing to do).

        folder: destination (default: the folder field); images: image layers or names
        (default: the ticked ones, with their ticked Labels layers); include_model:
        default the checkbox. `export_finished` is emitted with the ExportResult at the end.
        """
        prepared = self._prepare(folder, images, include_model)
        if prepared is None:
            return None
        jobs, result, model, model_path = prepared
        if not jobs:
            self.last_result = result
            self._report(result)
            return None
        self._stop.clear()
        self._result = result
        self.progress_bar.setValue(0)
        self.progress_bar.setFormat("starting…")
        self.worker = self.controller.scheduler.start(
            export_datasets, jobs, result, model, model_path, self._stop.is_set,
            stop=self._stop,
            connect={"yielded": self._on_yielded, "errored": self._on_errored, "finished": self._on_finished},
            progress={"total": 0, "desc": f"napari-unet: exporting {len(jobs)} dataset(s)"},  # activity dock
        )
        self._update_state()
        return self.worker

    def export_now(self, folder: str | os.PathLike | None = None, images: Iterable | None = None,
                   include_model: bool | None = None) -> ExportResult | None:
        """Export synchronously (blocks; for scripts). Returns the ExportResult, None on an input error."""
        prepared = self._prepare(folder, images, include_model)
        if prepared is None:
            return None
        jobs, result, model, model_path = prepared
        if jobs:
            run_export(jobs, result, model, model_path)
        self.last_result = result
        self._report(result)
        return result

    def cancel(self) -> None:
        """Stop the export at the next chunk: the dataset being written is not written at all."""
        if not self.is_exporting:
            return
        self._stop.set()
        self.progress_bar.setFormat("cancelling…")
        self.cancel_button.setEnabled(False)

    # ------------------------------------------------------------------- worker callbacks

    def _on_yielded(self, record) -> None:
        if isinstance(record, ExportProgress):
            if not self._stop.is_set():
                self.progress_bar.setValue(int(round(record.fraction * 1000)))
                self.progress_bar.setFormat(f"{record.image} ({record.index + 1}/{record.n}) · %p%")
            return
        kind = record[0]
        if kind == "failed":
            self.notify("error", record[2])
        elif kind == "start":
            self.progress_bar.setFormat(f"{record[1]} · %p%")

    def _on_errored(self, error) -> None:  # export_datasets catches everything; a last resort
        log.error("napari-unet: export failed: %r", error)
        if self._result is not None:
            self._result.failed[FAILED_AS_A_WHOLE] = f"export failed: {type(error).__name__}: {error}"

    def _on_finished(self) -> None:
        result = self._result or ExportResult(Path(self.folder() or "."))
        self.worker = None
        self._result = None
        self.last_result = result
        try:
            self.progress_bar.setValue(1000 if result.ok else 0)
            self.progress_bar.setFormat(
                "cancelled" if result.cancelled else ("done" if result.ok else "finished with errors"))
            self._update_state()
            self._report(result)
            self.export_finished.emit(result)
        except RuntimeError:  # the widget is gone (viewer closed while exporting)
            pass

    def _report(self, result: ExportResult) -> None:
        for level, text in result.summary():
            self.notify(level, text)
