"""Predicting many images from the dock: every open image, or a folder of files, as one job.

`BatchJobs` is mixed into `controller.Controller`. Both run through the command line's
batch path (`nn.batch`: dask.distributed, the model sent once, bad inputs reported and
skipped), on a local in-process cluster of one worker: the dock keeps the machine for the
viewer. Open images come back as their semantic and instance layers (a stack's objects 3D,
a time series' per frame); a folder's outputs go to files in an output folder. One job,
with progress (images done) and Stop (the images not started are cancelled).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

import numpy as np
from napari.layers import Image
from psygnal import Signal

from napari_unet.errors import UserInputError
from napari_unet.functionals.instances import InstanceParams
from napari_unet.functionals.scale import AUTO
from napari_unet.napari import layers as lb
from napari_unet.nn.batch import (
    ArrayInput,
    BatchOptions,
    BatchSummary,
    collect_inputs,
    model_bytes_of,
    predict_arrays,
    run_batch,
)
from napari_unet.progress import relabel, yield_counts
from napari_unet.widgets.messages import report_worker_error
from napari_unet.widgets.workers import WorkerFailure, gui_friendly_threads


@dataclass(frozen=True)
class BatchProgress:
    """Images done of a batch; `name`/`status`/`message`/`result` of the one that just finished (if known)."""

    done: int
    total: int
    name: str = ""
    status: str = ""
    message: str = ""
    result: object = None  # an open image's nn.volume.VolumeResult


def open_images_generator(model_bytes: bytes, images: dict[str, ArrayInput], options: BatchOptions,
                          stop: threading.Event):
    """Predict open images; yields a BatchProgress per image (with its result); returns the summary."""
    summary = BatchSummary()
    try:
        for done, (name, (status, message, result)) in enumerate(
                predict_arrays(model_bytes, images, options, should_stop=stop.is_set), start=1):
            if status == "written":
                summary.written.append(name)
                summary.objects += int(result.instances.max()) if result.instances is not None else 0
            else:
                summary.failed.append((name, message))
            yield BatchProgress(done, len(images), name, status, message, result)
    except RuntimeError as error:
        raise WorkerFailure(error) from error
    return summary


def folder_generator(model_bytes: bytes, inputs: list, out_dir: str, options: BatchOptions, stop: threading.Event):
    """Predict image files into `out_dir` (`run_batch`); yields BatchProgress records; returns the summary."""
    finished: list[tuple[str, str, str]] = []

    def run(progress):
        def done(name: str, status: str, message: str) -> None:
            finished.append((name, status, message))
            progress(len(finished), len(inputs))

        return run_batch(model_bytes, inputs, out_dir, options, n_workers=1, processes=False, overwrite=True,
                         on_done=done, should_stop=stop.is_set)

    try:
        return (yield from relabel(yield_counts(run), lambda count: BatchProgress(count.done, count.total)))
    except RuntimeError as error:
        raise WorkerFailure(error) from error


class BatchJobs:
    """"Predict all open images" and "Predict a folder" (part of Controller)."""

    batch_progress = Signal(object)  # a BatchProgress: images done of the batch running

    def _batch_options(self, params: InstanceParams, tile_size: int, kinds: tuple[str, ...],
                       diameter: float | str | None = AUTO, flips: int = 1) -> BatchOptions:
        return BatchOptions(kinds=kinds, params=params, tile_size=tile_size, diameter=diameter, flips=flips,
                            device=str(self.device), threads=self.train_threads or gui_friendly_threads())

    def _check_can_batch(self) -> bytes:
        if self.is_training:
            raise UserInputError("training is running: stop it to predict")
        if self.is_predicting:
            raise UserInputError("already predicting: Cancel stops it")
        if self.session.segmenter is None:
            raise UserInputError("no model yet: train one (step 2, Shift+T) or load a saved model")
        return model_bytes_of(self.session.segmenter)

    def predict_open_images(self, params: InstanceParams, *, tile_size: int = 512,
                            diameter: float | str | None = AUTO, flips: int = 1) -> None:
        """Predict every open image (but those too big for memory) as one job; their layers fill in as they finish."""
        model = self._check_can_batch()
        images, skipped = {}, []
        for image in lb.image_layers(self.viewer):
            if lb.role_of(image) is not None:
                continue
            layout = lb.layout_in(self.viewer, image)
            if self.predicts_to_store(layout):
                skipped.append(image.name)
                continue
            z = lb.stack_z_anisotropy(image, layout)
            images[image.name] = ArrayInput(lb.image_data(image), layout, frames=bool(layout.stack_shape) and z is None,
                                            z_anisotropy=z or 1.0,
                                            diameter=self.session.diameter_for(image.name, diameter))
        for name in skipped:
            self.notify("warning", f"'{name}' is too big to predict with the others: select it and press Predict")
        if not images:
            raise UserInputError("no image to predict: open images first")
        self._start_batch(open_images_generator, model, images,
                          self._batch_options(params, tile_size, ("instances", "semantic"), flips=flips),
                          desc=f"napari-unet: predicting {len(images)} open images")

    def predict_folder(self, folder: str | os.PathLike, out_dir: str | os.PathLike, params: InstanceParams, *,
                       tile_size: int = 512, diameter: float | str | None = AUTO, flips: int = 1) -> None:
        """Predict every image file of `folder` into `out_dir` (<name>_instances.tif, _semantic.tif) as one job."""
        model = self._check_can_batch()
        if not os.path.isdir(folder):  # moved or deleted since it was chosen
            raise UserInputError(f"the folder {folder} does not exist (any more): choose it again")
        inputs = collect_inputs([str(folder)])
        try:
            os.makedirs(out_dir, exist_ok=True)
        except OSError as error:
            raise UserInputError(f"cannot create the output folder {out_dir}: {error.strerror or error}") from error
        self._start_batch(folder_generator, model, inputs, str(out_dir),
                          self._batch_options(params, tile_size, ("instances", "semantic"), diameter, flips),
                          desc=f"napari-unet: predicting {len(inputs)} images of {os.path.basename(str(folder))}",
                          out=str(out_dir))

    def _start_batch(self, generator, *args, desc: str, out: str | None = None) -> None:
        self._batch_out = out
        self._predict_stop.clear()
        self._predict_status = "done"
        self._predicting_image = None
        self._predict_worker = self.scheduler.start(
            generator, *args, self._predict_stop,
            stop=self._predict_stop,
            connect={
                "yielded": self._on_batch_progress,
                "returned": self._on_batch_returned,
                "errored": lambda error: self._on_batch_error(error),
                "finished": self._on_predict_finished,
            },
            progress={"desc": desc},
        )
        self.busy_changed.emit()

    def _on_batch_progress(self, record: BatchProgress) -> None:
        if self.closed:
            return
        self.batch_progress.emit(record)
        if record.status == "failed":
            self.notify("warning", f"skipped '{record.name}': {record.message}")
        elif record.result is not None:
            self._show_batch_result(record.name, record.result)

    def _show_batch_result(self, name: str, result) -> None:
        image = lb.get_layer(self.viewer, name, Image)
        if image is None:  # closed while the batch ran
            return
        layout = lb.layout_in(self.viewer, image)
        self.semantic_layer(image, layout, data=np.asarray(result.semantic, np.uint8))
        self.instances_layer(image, layout, data=np.asarray(result.instances, np.uint32))
        self.session.cache.drop_image(name)  # the cached planes are not these objects any more

    def _on_batch_returned(self, summary: BatchSummary | None) -> None:
        if summary is None:
            return
        self._predict_status = "cancelled" if self._predict_stop.is_set() else "done"
        if not self.closed:
            if self._batch_out:  # a folder's failures are not reported one by one as they happen (open images' are)
                for name, message in summary.failed:
                    self.notify("warning", f"skipped '{os.path.basename(name)}': {message}")
            where = f" into {self._batch_out}" if self._batch_out else ""
            self.notify("warning" if summary.failed else "info", f"batch{where}: {summary.line()}")

    def _on_batch_error(self, error: Exception) -> None:
        self._predict_status = "failed"
        report_worker_error(self.notify, "batch prediction", error, "Lower the tile size (step 3) or use the CPU")
