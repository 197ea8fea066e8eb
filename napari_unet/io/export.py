"""Export planning and writing: images with their labels (and the model) -> a folder of OME-Zarr datasets.

Qt-free core of the export dock: the dock (and scripts) plan one `ExportJob` per image
(`napari/export.py` turns layers into jobs), then iterate `export_datasets` in a worker. It
yields records, progress included, and fills in an `ExportResult`. Each image becomes
``<folder>/<safe image name>.zarr`` (`write_dataset`: atomic, NGFF 0.5 or 0.4); with a model
it goes to ``<folder>/model.pt`` and its SHA-256 and card into every dataset's provenance.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from napari_unet.conventions import MODEL_FILE
from napari_unet.errors import UserInputError
from napari_unet.io.names import unique_name
from napari_unet.io.ome_zarr_dataset import (
    ImageEntry,
    LabelsEntry,
    WriteStopped,
    write_dataset,
)
from napari_unet.progress import Count, relabel, yield_counts

log = logging.getLogger(__name__)

DATASET_SUFFIX = ".zarr"
FAILED_AS_A_WHOLE = "(export)"  # ExportResult.failed key of a failure that is no single image's


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

    def summary(self) -> list[tuple[str, str]]:
        """(level, text) messages that tell the user what the export did (failures of single
        images are told as they happen, by the "failed" records)."""
        messages = [("warning", f"skipped '{image}': {why}") for image, why in self.skipped.items()]
        messages += [("error", message) for image, message in self.failed.items() if image == FAILED_AS_A_WHOLE]
        written = ", ".join(p.name for p in self.written.values())
        model = f" and {MODEL_FILE}" if self.model_path is not None else ""
        if self.cancelled:
            kept = f"; already written: {written}{model}" if written else ""
            messages.append(("warning", f"export cancelled: the dataset in progress was not written{kept}"))
        elif self.written:
            messages.append(("info", f"exported {len(self.written)} dataset(s) to {self.folder}: {written}{model}"))
        elif self.model_path is not None:
            messages.append(("info", f"saved {MODEL_FILE} to {self.folder}"))
        elif not self.failed:
            messages.append(("warning", "nothing was exported"))
        if self.model_error:
            messages.append(("error", self.model_error))
        return messages


@dataclass(frozen=True)
class ExportProgress:
    """Chunks written of dataset `index` (of `n`), named after its image."""

    image: str
    index: int
    n: int
    chunks: Count

    @property
    def fraction(self) -> float:
        """Of the whole export."""
        return (self.index + self.chunks.fraction) / max(self.n, 1)


def dataset_paths(folder: Path, images: Iterable[str]) -> list[Path]:
    """``<folder>/<safe name>.zarr`` per image name, made unique (case-insensitively) among them."""
    used: set[str] = set()
    return [folder / f"{unique_name(name, used, default='image')}{DATASET_SUFFIX}" for name in images]


def plan_targets(folder: Path, images: list[str], result: ExportResult,
                 confirm_overwrite: Callable[[Path], bool]) -> list[tuple[int, Path, bool]]:
    """(index in `images`, dataset path, overwrite) of each image to write.

    An existing dataset is replaced only if `confirm_overwrite(path)` says so, else the image
    is recorded in `result.skipped`; a file in the way is recorded in `result.failed`.
    """
    targets = []
    for index, (name, path) in enumerate(zip(images, dataset_paths(folder, images))):
        overwrite = False
        if path.exists() or path.is_symlink():
            if not path.is_dir():
                result.failed[name] = f"{path} is a file, not a dataset: rename or move it first"
                continue
            if not confirm_overwrite(path):
                result.skipped[name] = f"{path.name} already exists and was kept"
                continue
            overwrite = True
        targets.append((index, path, overwrite))
    return targets


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
) -> Iterator:
    """Write the planned datasets one by one (run in a worker thread, or iterate it).

    model: a Segmenter (a private copy: it must not change while this runs); its
        fingerprint and model card go into every dataset's provenance, and it is saved
        to `model_path` (when given) once the datasets are written.
    Yields ("start", name), `ExportProgress`, ("written", name, path), ("failed", name,
    message) and ("model", path) records; returns `result`, filled in.
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
            counts = yield_counts(lambda progress, job=job, provenance=provenance: write_dataset(
                job.path, job.image_entry, job.labels, provenance=provenance, overwrite=job.overwrite,
                progress=progress, should_stop=stop, ngff=job.ngff))
            path = yield from relabel(counts, lambda count, i=i, name=job.image: ExportProgress(name, i, n, count))
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


def run_export(jobs: list[ExportJob], result: ExportResult, model=None, model_path: Path | None = None) -> ExportResult:
    """`export_datasets` run to its end in this thread (scripts, `export_now`)."""
    for _ in export_datasets(jobs, result, model, model_path):
        pass
    return result
