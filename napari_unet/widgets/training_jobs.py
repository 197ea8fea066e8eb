"""The training half of the controller: train a copy of the model in a worker, live preview, model files.

`TrainingJobs` is mixed into `controller.Controller` and works on its state (the session,
the scheduler, the selected image); it is a file of its own only to keep each file about
one job.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
from napari.layers import Image

from napari_unet import conventions as c
from napari_unet.errors import UserInputError
from napari_unet.functionals.uncertainty import uncertainty_map
from napari_unet.io.pretrained import available_models, model_path
from napari_unet.napari import guidance
from napari_unet.napari import layers as lb
from napari_unet.nn.device import pick_device
from napari_unet.nn.segmenter import Segmenter
from napari_unet.nn.training import TrainConfig, Trainer
from napari_unet.widgets.messages import report_worker_error
from napari_unet.widgets.workers import train_generator

log = logging.getLogger(__name__)


class TrainingJobs:
    """Training, its live preview and the model files (part of Controller)."""

    def train(self, config: TrainConfig, *, preview: bool = False, start: Segmenter | None = None) -> None:
        """Train on every annotated image in a worker (warm start from the current model, on a copy).

        `start` is what training starts from when there is no current model (None: a new model).
        """
        if self.is_training:
            self.notify("info", "already training: press Stop (Shift+S) to end it")
            return
        if self.is_predicting:
            raise UserInputError("a prediction is running: wait for it or cancel it first")
        items = lb.training_items(self.viewer)
        names = self.class_names if self.paired(c.ROLE_ANNOTATIONS) is not None else None
        pick_device(config.device)  # a clear error now, not in the thread
        # The trainer works on a copy: the model the viewer predicts with never changes under it.
        current = self.session.segmenter_copy()
        trainer = Trainer(items, config, segmenter=start if current is None else current, class_names=names)
        self.last_training_items = items
        self._trainer = trainer
        self._train_images = {item.source for item in items}
        self._train_stop.clear()
        self.last_progress = None
        self._preview_pending = False
        self._train_ok = False
        self._train_worker = self.scheduler.start(
            train_generator, trainer, self._train_stop, stop=self._train_stop,
            connect={
                "yielded": self._on_train_progress,
                "returned": self._on_train_returned,
                "errored": self._on_train_error,
                "finished": self._on_train_finished,
            },
            # in napari's activity dock too; filled in from the records' fraction (time or steps)
            progress={"total": 0, "desc": "napari-unet: training"},
        )
        budget = f"{config.seconds:.0f} s" if config.seconds else "until stopped"
        self.notify("info", f"training on {len(items)} annotated plane(s) from {len(self._train_images)} image(s), {budget}")
        image = self.image
        if preview and image is not None and lb.layout_in(self.viewer, image).n_channels == items[0].image.shape[0]:
            # Created now, not at the first preview: adding a layer is the costliest GUI step.
            self.semantic_layer(image, lb.layout_in(self.viewer, image))
        self.busy_changed.emit()

    def stop(self) -> None:
        """Stop training at the next step (the model is kept), or cancel a running prediction."""
        if self.is_training:
            self._train_stop.set()
        elif self.is_predicting:
            self.cancel_prediction()

    def _on_train_progress(self, progress) -> None:
        if self.closed:
            return
        self.last_progress = progress
        if progress.message:
            self.notify("warning", progress.message)
        if progress.preview is not None:
            self._preview_pending = False
            self._paint_preview(*progress.preview)
        self._show_activity(progress)
        self.training_progress.emit(progress)

    def _show_activity(self, progress) -> None:
        """Training progress in napari's activity dock (per mille of the budget; no bar when unbounded)."""
        bar = getattr(self._train_worker, "pbar", None)
        if bar is None or progress.fraction is None:
            return
        if bar.total != 1000:
            bar.total = 1000
        done = int(min(progress.fraction, 1.0) * 1000)
        if done >= bar.n + 5 or (done == 1000 and bar.n < 1000):  # at most 200 repaints of the bar per run
            bar.set_description(f"napari-unet: training, step {progress.step}, loss {progress.loss:.3f}")
            bar.update(done - bar.n)

    def _on_train_returned(self, segmenter: Segmenter) -> None:
        if segmenter is None:
            return
        first = self.session.segmenter is None
        diameters = {} if self._trainer is None else {self.name_now(name): value
                                                       for name, value in self._trainer.diameters.items()}
        self.session.set_model(segmenter, trained_on=self._train_images, diameters=diameters)
        run = segmenter.history[-1] if segmenter.history else {}
        self._train_ok = True
        how = "stopped" if run.get("stopped") else "finished"
        loss = run.get("loss")
        loss_text = f", loss {loss:.3f}" if isinstance(loss, (int, float)) else ""
        self._finish_message = (f"training {how} after {run.get('steps', 0)} steps{loss_text}"
                                + ("" if first else " (continued from the previous model)"))
        if run.get("blended_with_start"):
            self._finish_message += (f"; its weights were moved {run['blended_with_start']:.0%} back to the start "
                                     "model's (the one these rounds began from), which learnt from more images: "
                                     "it stays good on your other images")
        tuning = None if self._trainer is None else self._trainer.tuning
        if tuning is not None:  # what the Predict step's sliders now show, or why they did not move
            self._finish_message += f"; {tuning.describe()}"

    def _on_train_error(self, error: Exception) -> None:
        self._train_ok = False
        report_worker_error(
            self.notify, "training", error,
            "Choose a smaller model size, patch or batch size, or train on the CPU (Device: cpu)",
            "; your annotations are untouched",
        )

    def _on_train_finished(self) -> None:
        self._train_worker = None
        self._trainer = None
        self._forget_job_names()
        self._preview_pending = False
        if self.closed:
            return
        if self._finish_message:
            self.notify("info", self._finish_message)
            self._finish_message = ""
        if self._train_ok:
            self.model_changed.emit()
        self.busy_changed.emit()
        self.training_finished.emit(self._train_ok)

    # --- live preview -------------------------------------------------------------------------

    def request_preview(self, window: Callable) -> None:
        """Ask the training thread to predict part of the plane on display (at most one request in flight).

        window(region in view, plane shape) -> (rows, cols) chooses the part.
        """
        if not self.is_training or self._preview_pending or self._trainer is None or self.closed:
            return
        image, layout, plane = self.selected(required=False)
        if image is None:
            return
        try:
            items = self.last_training_items
            if items and items[0].image.shape[0] != layout.n_channels:
                return
            rows, cols = window(lb.view_region(self.viewer, image, layout), layout.plane_shape)
            crop = lb.image_plane(image, layout, plane, (rows, cols))  # reads only the crop
        except Exception:
            log.debug("preview skipped", exc_info=True)
            return
        self._trainer.request_preview(np.ascontiguousarray(crop), (image.name, plane, rows, cols))
        self._preview_pending = True

    def _paint_preview(self, tag, prediction) -> None:
        image_name, plane, rows, cols = tag
        image = lb.get_layer(self.viewer, self.name_now(image_name), Image)
        if image is None:
            return
        try:
            layout = lb.layout_in(self.viewer, image)
            semantic, _ = self.keeping_accepted(image, plane, prediction.semantic(), region=(rows, cols))
            lb.write_region(self.semantic_layer(image, layout), plane, semantic, (rows, cols))
            shown = guidance.uncertainty_layer(self.viewer, image, layout, create=False)
            if shown is not None:  # one byte per pixel from the preview's probabilities: milliseconds
                guidance.paint_uncertainty(shown, plane, uncertainty_map(prediction), (rows, cols))
        except Exception:
            log.debug("preview not painted", exc_info=True)
            return
        self.preview_painted.emit()

    # ========================================================================== model files

    def new_model(self) -> None:
        if self.is_training:
            raise UserInputError("stop training first")
        self.session.set_model(None, new=True)
        self.notify("info", "the next training starts a new model")
        self.model_changed.emit()

    def save_model(self, path) -> Path:
        if self.session.segmenter is None:
            raise UserInputError("no model to save yet: train one first")
        if self.is_training:
            raise UserInputError("stop training before saving the model")
        saved = self.session.segmenter.save(path)
        self.notify("info", f"model saved to {saved}")
        return saved

    def load_model(self, path) -> Segmenter:
        """Load a checkpoint (a path, or the name of a shipped pretrained model); it becomes the current model."""
        if self.is_training:
            raise UserInputError("stop training before loading a model")
        if isinstance(path, str) and path in available_models():
            path = model_path(path)
        segmenter = Segmenter.load(path)
        segmenter.to(self.device)
        self.session.set_model(segmenter, new=True)
        self.notify("info", f"model loaded: {', '.join(segmenter.class_names)}")
        self.model_changed.emit()
        return segmenter

    def set_device(self, name: str) -> None:
        self.device = pick_device(name)
