"""The export dock's "Share the model" box: the current model -> one BioImage.IO package (.zip).

The same core call as `napari-unet export-bioimageio` (`io/bioimageio.export_package`), run
on a private copy of the model in a worker started through the viewer's scheduler, so the
viewer stays usable and closing it joins the job. The core's stage reports reach the dock
only as yielded records (`progress.yield_counts`); they drive this box's progress bar, and
napari's activity dock shows the job while it runs.

Code and tests call `BioImageIOExport.export(path)` (returns the running worker;
`finished` is emitted with the written path, or None, when it ends).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from pathlib import Path

from qtpy.QtCore import Signal
from qtpy.QtWidgets import QFileDialog, QVBoxLayout, QWidget

from napari_unet.errors import UserInputError
from napari_unet.functionals.instances import InstanceParams
from napari_unet.io.bioimageio import check_extra, export_package
from napari_unet.io.outputs import check_destination
from napari_unet.progress import yield_counts
from napari_unet.widgets import settings, ui
from napari_unet.widgets.messages import guarded, report_worker_error
from napari_unet.widgets.workers import WorkerFailure

NO_MODEL = "no model to share yet: train one in the napari-unet dock (step 2, Shift+T) or load one there"


def package_job(model, path: Path, params: InstanceParams):
    """Write the package, yielding the core's stage counts; return the path written."""
    try:
        return (yield from yield_counts(
            lambda progress: export_package(model, path, params=params, progress=progress)))
    except RuntimeError as error:
        raise WorkerFailure(error) from error


def instance_params() -> InstanceParams:
    """The instance parameters the user last set in the Predict step (saved settings), else the defaults."""
    defaults = InstanceParams()
    try:
        return InstanceParams(
            threshold=float(settings.load("threshold", defaults.threshold)),
            min_size=int(float(settings.load("min_size", defaults.min_size))),
            seed_spacing=int(float(settings.load("seed_spacing", defaults.seed_spacing))),
            seed_prominence=float(settings.load("seed_prominence", defaults.seed_prominence)),
            border_evidence=float(settings.load("border_evidence", defaults.border_evidence)),
            min_confidence=float(settings.load("min_confidence", defaults.min_confidence)),
        )
    except (TypeError, ValueError):  # a hand-edited settings file: the package still gets valid ones
        return defaults


class BioImageIOExport(QWidget):
    """A button, a progress bar: the current model as a BioImage.IO package that other tools run."""

    finished = Signal(object)  # the package's Path, or None when it failed

    def __init__(self, controller: Callable, model: Callable, notify: Callable[[str, str], None],
                 confirm_overwrite: Callable[[Path], bool], parent=None) -> None:
        """controller(): the viewer's Controller (its scheduler runs the job); model(): the model to
        share, or None; notify(level, text): the dock's message path; confirm_overwrite(path) -> bool."""
        super().__init__(parent)
        self._controller = controller
        self._model = model
        self.notify = notify
        self.confirm_overwrite = confirm_overwrite
        self.worker = None
        self.last_path: Path | None = None
        self._written: Path | None = None

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.button = ui.button(
            "Export BioImage.IO package…",
            "Save the current model as a BioImage.IO model package (.zip: weights, test images, class names, "
            "instance parameters) for bioimage.io, ilastik, deepImageJ, QuPath and other BioImage.IO tools; "
            "napari-unet opens it again as a model (needs pip install 'napari-unet[bioimageio]')",
            self._clicked,
        )
        layout.addWidget(self.button)
        self.progress_bar = ui.progress_bar("BioImage.IO export: checkpoint, test tensors and weights, package")
        layout.addWidget(self.progress_bar)

    @property
    def is_exporting(self) -> bool:
        return self.worker is not None

    def update_state(self, has_model: bool) -> None:
        self.button.setEnabled(has_model and not self.is_exporting)

    @guarded
    def _clicked(self) -> None:
        if self._model() is None:
            raise UserInputError(NO_MODEL)
        check_extra()  # say so before the user picks a file
        path, _ = QFileDialog.getSaveFileName(self, "Export BioImage.IO model package", "napari-unet-model.zip",
                                              "BioImage.IO package (*.zip)")
        if path:
            path = path if path.lower().endswith(".zip") else path + ".zip"
            self.export(path, confirmed=True)  # the file dialog has asked before replacing

    @guarded
    def export(self, path: str | os.PathLike, confirmed: bool = False):
        """Start writing the package at `path` (.zip) and return the worker; None when there is nothing to do.

        confirmed: the user already agreed to replace an existing file (else `confirm_overwrite` asks).
        """
        if self.is_exporting:
            self.notify("info", "already writing a BioImage.IO package: wait for it to finish")
            return None
        model = self._model()
        if model is None:
            raise UserInputError(NO_MODEL)
        check_extra()
        path = Path(path)
        if path.suffix.lower() != ".zip":
            raise UserInputError(f"a BioImage.IO package is a .zip file: name it {path.with_suffix('.zip').name}")
        check_destination(path)
        if path.exists() and not confirmed and not self.confirm_overwrite(path):
            self.notify("info", f"{path.name} kept: no package written")
            return None
        snapshot = copy.deepcopy(model)  # the job's own copy, moved to the CPU; training goes on with its own
        self._written = None
        self.progress_bar.setValue(0)
        self.progress_bar.setFormat("writing the package · %p%")
        self.worker = self._controller().scheduler.start(
            package_job, snapshot, path, instance_params(),
            connect={"yielded": self._on_yielded, "returned": self._on_returned,
                     "errored": self._on_errored, "finished": self._on_finished},
            progress={"total": 0, "desc": f"napari-unet: BioImage.IO package {path.name}"},  # activity dock
        )
        self.button.setEnabled(False)
        return self.worker

    def _on_yielded(self, count) -> None:
        self.progress_bar.setValue(round(count.fraction * 1000))

    def _on_returned(self, path) -> None:
        self._written = Path(path)

    def _on_errored(self, error) -> None:
        report_worker_error(self.notify, "BioImage.IO export", error, "", " (no package written)")

    def _on_finished(self) -> None:
        self.worker = None
        written, self._written = self._written, None
        self.last_path = written
        try:
            self.progress_bar.setValue(1000 if written else 0)
            self.progress_bar.setFormat("done" if written else "failed")
            self.button.setEnabled(self._model() is not None)
            if written is not None:
                self.notify("info", f"BioImage.IO package saved to {written}")
            self.finished.emit(written)
        except RuntimeError:  # the dock is gone (viewer closed while exporting)
            pass
