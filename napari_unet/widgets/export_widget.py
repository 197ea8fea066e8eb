"""Export dock: images with their Labels layers (and the model) -> one folder of OME-Zarr datasets.

Step 6 of the cycle. Each ticked image becomes ``<folder>/<safe image name>.zarr`` (see
`ome_zarr_io.write_dataset`: atomic, NGFF 0.5) holding the image and the ticked Labels
layers paired with it (annotations, semantic, instances, accepted). With "Include model"
the current model goes to ``<folder>/model.pt`` and its SHA-256 and model card go into
each dataset's provenance, next to each exported layer's own provenance and the number
of accepted pixels.

Writing runs in a napari thread worker with a progress bar and a Cancel button; the
viewer stays responsive. User mistakes become napari notifications, never tracebacks.

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
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from napari.layers import Image, Labels
from qtpy.QtCore import Qt, QTimer, Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from napari_unet import conventions as c
from napari_unet.errors import UserInputError
from napari_unet.io.names import safe_name
from napari_unet.io.ome_zarr_dataset import (
    ImageEntry,
    LabelsEntry,
    WriteStopped,
    write_dataset,
)
from napari_unet.napari import layers as lb
from napari_unet.napari.writer import image_entry_from_layer, labels_entry_from_layer
from napari_unet.widgets.controller import Controller, controller_for
from napari_unet.widgets.messages import Messages, guarded
from napari_unet.widgets.ui import MessageLine, listen

log = logging.getLogger(__name__)

EXPORT_ROLES = (c.ROLE_ANNOTATIONS, c.ROLE_SEMANTIC, c.ROLE_INSTANCES, c.ROLE_ACCEPTED)
MODEL_FILE = c.MODEL_FILE
NGFF_CHOICES = (("NGFF 0.5 (default)", "0.5"), ("NGFF 0.4 for Fiji/MoBIE/BDV", "0.4"))
DATASET_SUFFIX = ".zarr"


# =============================================================================================
# Qt-free part: plan and write
# =============================================================================================


@dataclass
class ExportJob:
    """One dataset to write: the image entry, its labels entries and the provenance."""

    image: str  # image layer name
    path: Path
    image_entry: ImageEntry
    labels: list[LabelsEntry]
    provenance: dict = field(default_factory=dict)
    overwrite: bool = False
    accepted: Any = None  # the accepted layer's data, to count accepted pixels
    ngff: str = "0.5"  # NGFF version to write: "0.5" (zarr v3) or "0.4" (zarr v2)


@dataclass
class ExportResult:
    """What an export did, image by image."""

    folder: Path
    written: dict[str, Path] = field(default_factory=dict)  # image name -> dataset
    skipped: dict[str, str] = field(default_factory=dict)  # image name -> why
    failed: dict[str, str] = field(default_factory=dict)  # image name -> message
    cancelled: bool = False
    model_path: Path | None = None
    model_error: str | None = None

    @property
    def ok(self) -> bool:
        return not self.failed and not self.cancelled and self.model_error is None


def _count_nonzero(data) -> int:
    if isinstance(data, np.ndarray):
        return int(np.count_nonzero(data))
    import dask.array as da

    if isinstance(data, list | tuple):  # multiscale: full resolution
        data = data[0]
    return int(da.count_nonzero(da.asarray(data)).compute())


def export_datasets(
    jobs: list[ExportJob],
    result: ExportResult,
    model=None,
    model_path: Path | None = None,
    should_stop: Callable[[], bool] | None = None,
    progress: Callable[[int, int, int, int, str], None] | None = None,
) -> Iterator[tuple]:
    """Write the planned datasets one by one (run in a worker thread, or iterate it).

    model: a Segmenter (a private copy: it must not change while this runs); its
        fingerprint and model card go into every dataset's provenance, and it is saved
        to `model_path` (when given) once the datasets are written.
    progress: progress(image index, number of images, chunks done, chunks total, name).
    Yields ("start", name), ("written", name, path), ("failed", name, message),
    ("model", path) records; returns `result`, filled in.
    """
    stop = should_stop or (lambda: False)
    model_info = None
    if model is not None:
        model_info = {
            "sha256": model.fingerprint(),
            "file": MODEL_FILE if model_path is not None else None,
            "card": model.model_card(),
        }
    n = len(jobs)
    for i, job in enumerate(jobs):
        if stop():
            result.cancelled = True
            break
        yield ("start", job.image)
        try:
            provenance = dict(job.provenance)
            if job.accepted is not None:
                provenance["accepted_pixels"] = _count_nonzero(job.accepted)
            if model_info is not None:
                provenance["model"] = model_info

            def report(done: int, total: int, i=i, name=job.image) -> None:
                if progress is not None:
                    progress(i, n, done, total, name)

            path = write_dataset(job.path, job.image_entry, job.labels, provenance=provenance,
                                 overwrite=job.overwrite, progress=report, should_stop=stop, ngff=job.ngff)
        except WriteStopped:
            result.cancelled = True
            break
        except UserInputError as error:
            result.failed[job.image] = str(error)
            yield ("failed", job.image, str(error))
            continue
        except Exception as error:  # never let a traceback reach the user
            log.exception("napari-unet: exporting %r failed", job.image)
            message = f"exporting '{job.image}' failed: {type(error).__name__}: {error}"
            result.failed[job.image] = message
            yield ("failed", job.image, message)
            continue
        result.written[job.image] = path
        yield ("written", job.image, path)
    # The datasets written refer to model.pt: save it unless nothing was written because of a cancel.
    if model is not None and model_path is not None and (result.written or not result.cancelled):
        try:
            result.model_path = model.save(model_path)
            yield ("model", result.model_path)
        except UserInputError as error:
            result.model_error = str(error)
        except Exception as error:
            log.exception("napari-unet: saving the model failed")
            result.model_error = f"saving the model failed: {type(error).__name__}: {error}"
    return result


def check_folder(folder: str | os.PathLike | None) -> Path:
    """The destination folder, created if missing; UserInputError unless it is a writable folder."""
    text = "" if folder is None else os.fspath(folder).strip()
    if not text:
        raise UserInputError("no destination folder: type one or click 'Browse…' to choose where to export")
    path = Path(text).expanduser().absolute()
    if path.exists() and not path.is_dir():
        raise UserInputError(f"{path} is a file, not a folder: choose a folder to export into")
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".napari-unet-probe-", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as error:
        raise UserInputError(
            f"cannot write to {path} ({error.strerror or error}): choose another folder"
        ) from error
    return path


# =============================================================================================
# the dock widget
# =============================================================================================


class ExportWidget(QWidget):
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
        self._unchecked_images: set[str] = set()
        self._unchecked_labels: set[tuple[str, str]] = set()
        self._structure: list = []
        self._stop = threading.Event()
        self._progress_state: tuple | None = None
        self._result: ExportResult | None = None
        self._closed = False

        self._build_ui()
        self._connect_viewer()
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

        # images and their layers
        box = QGroupBox("Images and layers")
        box.setToolTip("Tick the images to export and, under each, the Labels layers that go with it")
        box_layout = QVBoxLayout(box)
        box_layout.setContentsMargins(6, 8, 6, 6)
        box_layout.setSpacing(4)
        self.tree = QTreeWidget()
        self.tree.setHeaderHidden(True)
        self.tree.setColumnCount(1)
        self.tree.setMinimumHeight(130)
        self.tree.setMaximumHeight(320)  # more images: the list scrolls
        self.tree.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Preferred)
        self.tree.setToolTip(
            "Image layers of the viewer. Each ticked image is exported with its ticked Labels layers "
            "(annotations, semantic, instances, accepted regions), found by the role stored with the "
            "layer or by their name ('<image> annotations', ...)")
        self.tree.itemChanged.connect(self._on_item_changed)
        box_layout.addWidget(self.tree)
        self.all_button = self._button("Tick all", "Tick every image", lambda: self._tick_all(True))
        self.none_button = self._button("Untick all", "Untick every image", lambda: self._tick_all(False))
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.all_button)
        row.addWidget(self.none_button)
        row.addStretch(1)
        box_layout.addLayout(row)
        layout.addWidget(box)

        # destination and model
        dest = QGroupBox("Destination")
        dest.setToolTip("Where the datasets (and the model) are written")
        dest_layout = QVBoxLayout(dest)
        dest_layout.setContentsMargins(6, 8, 6, 6)
        dest_layout.setSpacing(4)
        self.folder_edit = QLineEdit()
        self.folder_edit.setPlaceholderText("folder for the datasets")
        self.folder_edit.setToolTip("Folder that receives one <image>.zarr dataset per image (created if "
                                    "missing); existing datasets are replaced only after you confirm")
        self.folder_edit.setClearButtonEnabled(True)
        self.browse_button = self._button("Browse…", "Choose the destination folder", self._browse)
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.folder_edit, 1)
        row.addWidget(self.browse_button)
        dest_layout.addLayout(row)
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

        # run
        self.export_button = self._button("Export", "Write one dataset per ticked image into the folder "
                                          "(in the background: the viewer stays usable)", self._export_clicked)
        self.export_button.setMinimumHeight(28)
        self.cancel_button = self._button("Cancel", "Stop the export: the dataset being written is not "
                                          "written at all, datasets already written stay", self.cancel)
        self.cancel_button.setEnabled(False)
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.export_button, 2)
        row.addWidget(self.cancel_button, 1)
        layout.addLayout(row)
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setValue(0)
        self.progress_bar.setTextVisible(True)
        self.progress_bar.setFormat("idle")
        self.progress_bar.setToolTip("Export progress (chunks written, over all images)")
        layout.addWidget(self.progress_bar)
        self.status_label = MessageLine(self.log, "The latest export message (also shown as a napari notification)")
        layout.addWidget(self.status_label)
        layout.addStretch(1)

        self._progress_timer = QTimer(self)
        self._progress_timer.setInterval(100)
        self._progress_timer.timeout.connect(self._show_progress)

    @staticmethod
    def _button(text: str, tooltip: str, slot) -> QPushButton:
        button = QPushButton(text)
        button.setToolTip(tooltip)
        button.clicked.connect(lambda checked=False: slot())
        return button

    # ------------------------------------------------------------------------------ viewer

    def _connect_viewer(self) -> None:
        events = self.viewer.layers.events
        for event in (events.inserted, events.removed, events.moved, events.reordered):
            event.connect(self._on_layers_changed)
        for layer in self.viewer.layers:
            self._watch(layer)

    def _watch(self, layer) -> None:
        layer.events.name.connect(self._on_layer_event)
        layer.events.metadata.connect(self._on_layer_event)

    def _on_layers_changed(self, event=None) -> None:
        layer = getattr(event, "value", None)
        if layer is not None and getattr(event, "type", None) == "inserted":
            self._watch(layer)
        self._on_layer_event()

    def _on_layer_event(self, event=None) -> None:
        if self._closed:
            return
        try:
            self.refresh()
            self.update_model_state()
        except RuntimeError:  # the Qt object is gone (viewer closing)
            self._closed = True

    def disconnect_viewer(self) -> None:
        """Stop tracking the viewer's layers (the widget is being thrown away)."""
        self._closed = True
        self._stop.set()
        try:
            events = self.viewer.layers.events
            for event in (events.inserted, events.removed, events.moved, events.reordered):
                event.disconnect(self._on_layers_changed)
            for layer in self.viewer.layers:
                layer.events.name.disconnect(self._on_layer_event)
                layer.events.metadata.disconnect(self._on_layer_event)
        except Exception:  # viewer already gone
            pass

    def closeEvent(self, event):  # noqa: N802 (Qt API)
        self._stop.set()
        super().closeEvent(event)

    def showEvent(self, event):  # noqa: N802 (Qt API)
        self._on_layer_event()
        super().showEvent(event)

    # ------------------------------------------------------------------------- image tree

    def _current_structure(self) -> list[tuple[str, list[tuple[str, str]]]]:
        out = []
        for image in lb.image_layers(self.viewer):
            pairs = []
            for role in EXPORT_ROLES:
                layer = lb.find_paired(self.viewer, image.name, role)
                if layer is not None:
                    pairs.append((role, layer.name))
            out.append((image.name, pairs))
        return out

    def refresh(self) -> None:
        """Rebuild the image tree from the layer list (tick states are kept by name)."""
        structure = self._current_structure()
        if structure == self._structure:
            return
        self._structure = structure
        self.tree.blockSignals(True)
        try:
            self.tree.clear()
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
                self.tree.addTopLevelItem(top)
                top.setExpanded(True)
            if not structure:
                placeholder = QTreeWidgetItem(["(no image layers: open an image first)"])
                placeholder.setFlags(Qt.NoItemFlags)
                self.tree.addTopLevelItem(placeholder)
        finally:
            self.tree.blockSignals(False)
        self._update_state()

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
        self._update_state()

    def _items(self) -> Iterable[QTreeWidgetItem]:
        for i in range(self.tree.topLevelItemCount()):
            top = self.tree.topLevelItem(i)
            yield top
            for j in range(top.childCount()):
                yield top.child(j)

    def set_image_checked(self, image: str, checked: bool = True) -> None:
        """Tick or untick an image (also before its layer exists: kept by name)."""
        (self._unchecked_images.discard if checked else self._unchecked_images.add)(image)
        for item in self._items():
            if item.data(0, Qt.UserRole) == ("image", image):
                item.setCheckState(0, Qt.Checked if checked else Qt.Unchecked)
        self._update_state()

    def set_labels_checked(self, image: str, role: str, checked: bool = True) -> None:
        """Tick or untick the `role` Labels layer of `image`."""
        (self._unchecked_labels.discard if checked else self._unchecked_labels.add)((image, role))
        for item in self._items():
            if item.data(0, Qt.UserRole) == ("labels", image, role):
                item.setCheckState(0, Qt.Checked if checked else Qt.Unchecked)

    def _tick_all(self, checked: bool) -> None:
        for image, _ in self._structure:
            self.set_image_checked(image, checked)

    def checked_images(self) -> list[str]:
        """Names of the ticked image layers, in layer order."""
        return [image for image, _ in self._current_structure() if image not in self._unchecked_images]

    def checked_roles(self, image: str) -> list[str]:
        """Roles of the ticked Labels layers of `image` (those that exist)."""
        pairs = dict(self._current_structure()).get(image, [])
        return [role for role, _ in pairs if (image, role) not in self._unchecked_labels]

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
        what = "The model file" if path.suffix == ".pt" else "The dataset"
        answer = QMessageBox.question(
            self, "napari-unet: replace?",
            f"{what} {path.name} already exists in {path.parent}.\n\nReplace it with this export?",
            QMessageBox.Yes | QMessageBox.No, QMessageBox.No)
        return answer == QMessageBox.Yes

    # ------------------------------------------------------------------------------ export

    def _selection(self, images: Iterable | None) -> list[tuple[Image, list[Labels]]]:
        layers = {layer.name: layer for layer in lb.image_layers(self.viewer)}
        if images is None:
            names = self.checked_images()
        else:
            names = [getattr(image, "name", image) for image in images]
        chosen = []
        for name in names:
            image = layers.get(name)
            if image is None:
                raise UserInputError(f"there is no image layer '{name}' to export")
            roles = self.checked_roles(name)
            labels = [lb.find_paired(self.viewer, name, role) for role in roles]
            labels = sorted((layer for layer in labels if layer is not None), key=self.viewer.layers.index)
            chosen.append((image, labels))  # in the viewer's order, which reopening restores
        if not chosen:
            raise UserInputError("no image selected: tick at least one image under 'Images and layers'")
        return chosen

    def plan(self, folder: Path, chosen: list[tuple[Image, list[Labels]]], result: ExportResult) -> list[ExportJob]:
        """Jobs for the chosen images (GUI thread: reads layers, asks before overwriting)."""
        jobs = []
        used: set[str] = set()
        for image, labels in chosen:
            base = safe_name(image.name)
            stem, k = base, 2
            while stem.lower() in used:
                stem, k = f"{base}-{k}", k + 1
            used.add(stem.lower())
            path = folder / f"{stem}{DATASET_SUFFIX}"
            overwrite = False
            if path.exists() or path.is_symlink():
                if not path.is_dir():
                    result.failed[image.name] = f"{path} is a file, not a dataset: rename or move it first"
                    self.notify("error", f"cannot export '{image.name}': {result.failed[image.name]}")
                    continue
                if not self.confirm_overwrite(path):
                    result.skipped[image.name] = f"{path.name} already exists and was kept"
                    continue
                overwrite = True
            jobs.append(self._job(image, labels, path, overwrite))
        return jobs

    @staticmethod
    def _snapshot_meta(meta: dict) -> dict:
        meta = dict(meta)
        try:
            meta["metadata"] = copy.deepcopy(meta.get("metadata") or {})
        except Exception:
            meta["metadata"] = dict(meta.get("metadata") or {})
        return meta

    def _job(self, image: Image, labels: list[Labels], path: Path, overwrite: bool) -> ExportJob:
        data, meta, _ = image.as_layer_data_tuple()
        image_entry = image_entry_from_layer(data, self._snapshot_meta(meta))
        entries, layer_provenance, accepted = [], {}, None
        for layer in labels:
            ldata, lmeta, _ = layer.as_layer_data_tuple()
            if isinstance(ldata, np.ndarray):  # painting goes on while the export runs
                ldata = ldata.copy()
            entry = labels_entry_from_layer(ldata, self._snapshot_meta(lmeta))
            entries.append(entry)
            own = lb.meta(layer).get("provenance")
            if own:
                layer_provenance[layer.name] = copy.deepcopy(own)
            if entry.role == c.ROLE_ACCEPTED and accepted is None:
                accepted = entry.data
        provenance = copy.deepcopy(dict(lb.meta(image).get("provenance") or {}))
        if layer_provenance:
            provenance["layers"] = layer_provenance
        return ExportJob(image.name, path, image_entry, entries, provenance, overwrite, accepted,
                         ngff=self.ngff_combo.currentData())

    def _prepare(self, folder, images, include_model):
        folder = check_folder(self.folder() if folder is None else folder)
        chosen = self._selection(images)
        model = self._model_snapshot(include_model)
        result = ExportResult(folder)
        model_path = None
        if model is not None:
            model_path = folder / MODEL_FILE
            if model_path.exists() and not self.confirm_overwrite(model_path):
                model_path = None
                self.notify("warning", f"{MODEL_FILE} already exists in {folder} and was kept: the model's "
                                       "SHA-256 and card are recorded, but the model file is not written")
        jobs = self.plan(folder, chosen, result)
        return folder, jobs, result, model, model_path

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
        if self.is_exporting:
            self.notify("info", "already exporting: wait for it to finish or press Cancel")
            return None
        try:
            folder, jobs, result, model, model_path = self._prepare(folder, images, include_model)
        except UserInputError as error:
            self.notify("error", str(error))
            return None
        if not jobs:
            self.last_result = result
            self._report(result)
            return None
        self._stop.clear()
        self._result = result
        self._progress_state = None
        self.progress_bar.setValue(0)
        self.progress_bar.setFormat("starting…")
        self.worker = self.controller.scheduler.start(
            export_datasets, jobs, result, model, model_path, self._stop.is_set, self._set_progress,
            stop=self._stop,
            connect={"yielded": self._on_yielded, "errored": self._on_errored, "finished": self._on_finished},
            progress={"total": 0, "desc": f"napari-unet: exporting {len(jobs)} dataset(s)"},  # activity dock
        )
        self._update_state()
        self._progress_timer.start()
        return self.worker

    def export_now(self, folder: str | os.PathLike | None = None, images: Iterable | None = None,
                   include_model: bool | None = None) -> ExportResult | None:
        """Export synchronously (blocks; for scripts). Returns the ExportResult, None on an input error."""
        if self.is_exporting:
            self.notify("info", "already exporting: wait for it to finish or press Cancel")
            return None
        try:
            folder, jobs, result, model, model_path = self._prepare(folder, images, include_model)
        except UserInputError as error:
            self.notify("error", str(error))
            return None
        if jobs:
            run = export_datasets(jobs, result, model, model_path)
            for _ in run:
                pass
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

    def _set_progress(self, index: int, n: int, done: int, total: int, name: str) -> None:
        self._progress_state = (index, n, done, total, name)  # worker thread: one atomic assignment

    def _show_progress(self) -> None:
        state = self._progress_state
        if state is None or self._stop.is_set():
            return
        index, n, done, total, name = state
        fraction = (index + (done / total if total else 1.0)) / max(n, 1)
        self.progress_bar.setValue(int(round(fraction * 1000)))
        self.progress_bar.setFormat(f"{name} ({index + 1}/{n}) · %p%")

    def _on_yielded(self, record) -> None:
        kind = record[0]
        if kind == "failed":
            self.notify("error", record[2])
        elif kind == "start":
            self.progress_bar.setFormat(f"{record[1]} · %p%")

    def _on_errored(self, error) -> None:  # export_datasets catches everything; a last resort
        log.error("napari-unet: export failed: %r", error)
        if self._result is not None:
            self._result.failed["(export)"] = f"export failed: {type(error).__name__}: {error}"

    def _on_finished(self) -> None:
        result = self._result or ExportResult(Path(self.folder() or "."))
        self.worker = None
        self._result = None
        self._progress_timer.stop()
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
        for image, why in result.skipped.items():
            self.notify("warning", f"skipped '{image}': {why}")
        for image, message in result.failed.items():
            if image == "(export)":
                self.notify("error", message)
        written = ", ".join(p.name for p in result.written.values())
        model = f" and {MODEL_FILE}" if result.model_path is not None else ""
        if result.cancelled:
            kept = f"; already written: {written}{model}" if written else ""
            self.notify("warning", f"export cancelled: the dataset in progress was not written{kept}")
        elif result.written:
            self.notify("info", f"exported {len(result.written)} dataset(s) to {result.folder}: {written}{model}")
        elif result.model_path is not None:
            self.notify("info", f"saved {MODEL_FILE} to {result.folder}")
        elif not result.failed:
            self.notify("warning", "nothing was exported")
        if result.model_error:
            self.notify("error", result.model_error)
