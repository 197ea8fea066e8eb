"""The prediction half of the controller: predict planes in a worker, paint them, update objects live.

`PredictionJobs` is mixed into `controller.Controller` and works on its state (the session
and its prediction cache, the scheduler, the selected image); it is a file of its own only
to keep each file about one job.
"""

from __future__ import annotations

from functools import partial

from napari.layers import Image

from napari_unet import conventions as c
from napari_unet.errors import UserInputError
from napari_unet.functionals.corrections import keep_accepted, keep_accepted_classes
from napari_unet.functionals.instances import InstanceParams
from napari_unet.functionals.instances3d import instances_3d
from napari_unet.functionals.scale import AUTO, diameter_at
from napari_unet.napari import guidance
from napari_unet.napari import layers as lb
from napari_unet.napari.cheap_layers import selection_kept
from napari_unet.napari.session import CachedPlane
from napari_unet.widgets.messages import report_worker_error
from napari_unet.widgets.workers import (
    PlaneResult,
    StackObjects,
    TileProgress,
    call_once,
    predict_generator,
)


def _stack_objects(image: str, predictions: list, params: InstanceParams, **options) -> StackObjects:
    return StackObjects(image, instances_3d(predictions, params, **options))


def diameter_provenance(prediction, segmenter, choice: float | str | None, asked: float | str | None) -> dict:
    """The object diameter a plane was predicted for, and where it came from (layer metadata).

    `asked` is the dock's setting, `choice` what Session.diameter_for made of it: `auto` on an image
    the model trained on is that image's training size ("as trained"), not a size the user set."""
    used = None if segmenter is None else diameter_at(prediction.scale, segmenter.canonical_diameter,
                                                      segmenter.object_diameter)
    source = "measured" if choice == AUTO else "as trained" if choice is None or asked == AUTO else "set"
    return {"object_diameter": None if used is None else round(used, 1), "object_diameter_source": source}


class PredictionJobs:
    """Prediction and the live instance update (part of Controller)."""

    def predict(self, params: InstanceParams, *, scope: str = "plane", tile_size: int = 512,
                probabilities: bool = False, uncertainty: bool = True, diameter: float | str | None = AUTO,
                flips: int = 1) -> None:
        """Predict the plane on display (scope 'plane') or every plane ('stack') of the selected image
        in a worker; results are painted plane by plane as they come. `diameter`: the dock's object
        diameter choice (AUTO, None: the model's, or pixels), see Session.diameter_for; `flips`: test-time
        flips (network passes per tile, Segmenter.predict)."""
        if self.is_training:
            raise UserInputError("training is running: the live preview shows its prediction; stop it to predict")
        if self.is_predicting:
            self.notify("info", "already predicting: Cancel stops it")
            return
        segmenter = self.session.segmenter
        if segmenter is None:
            raise UserInputError("no model yet: train one (step 2, Shift+T) or load a saved model")
        image, layout, plane = self.selected()
        planes = layout.planes() if scope == "stack" else [plane]
        if layout.n_channels != segmenter.config.in_channels:
            raise UserInputError(
                f"the model takes {segmenter.config.in_channels} channel(s) but '{image.name}' has "
                f"{layout.n_channels}: set 'Channels' in step 1 or train a model for this image"
            )
        lb.check_planes_finite(image, layout, planes)
        if self.predicts_to_store(layout):  # too big for memory: into a zarr store (store_jobs)
            self.predict_to_store(image, layout, params, tile_size=tile_size, probabilities=probabilities,
                                  diameter=diameter, flips=flips)
            return
        self.semantic_layer(image, layout)
        self.instances_layer(image, layout)
        self._predict_stop.clear()
        self._predict_status = "done"
        self._predicting_image = image.name
        self._probabilities = probabilities
        self._uncertainty = uncertainty
        self._diameter = self.session.diameter_for(image.name, diameter)
        self._diameter_asked = diameter
        self._flips = flips

        def read(plane, image=image, layout=layout):
            return lb.image_plane(image, layout, plane)

        self._predict_worker = self.scheduler.start(
            predict_generator, segmenter, image.name, read, planes, params, self.session.model_version,
            self._predict_stop, tile_size, self.train_threads,
            lb.stack_z_anisotropy(image, layout) if scope == "stack" else None, self._diameter, flips,
            stop=self._predict_stop,
            connect={
                "yielded": self._on_predict_yielded,
                "returned": self._on_predict_returned,
                "errored": self._on_predict_error,
                "finished": self._on_predict_finished,
            },
            progress={"total": len(planes), "desc": f"napari-unet: predicting {image.name}"},
        )
        self.busy_changed.emit()

    def cancel_prediction(self) -> None:
        if self.is_predicting:
            self._predict_stop.set()

    def _on_predict_yielded(self, record: TileProgress | PlaneResult | StackObjects) -> None:
        if self.closed:
            return
        if isinstance(record, TileProgress):
            self.prediction_progress.emit(record)
        elif isinstance(record, StackObjects):
            self._paint_stack_objects(record)
        else:
            self._on_plane_predicted(record)

    def _on_plane_predicted(self, result: PlaneResult) -> None:
        image = lb.get_layer(self.viewer, self.name_now(result.image), Image)
        if image is None:
            return
        layout = lb.layout_in(self.viewer, image)
        semantic = self.semantic_layer(image, layout)
        instances = self.instances_layer(image, layout)
        kept_semantic, kept_instances = self.keeping_accepted(image, result.plane, result.semantic, result.instances)
        lb.write_region(semantic, result.plane, kept_semantic)
        lb.write_region(instances, result.plane, kept_instances.astype(instances.data.dtype, copy=False))
        self.predicted_uncorrected(image)
        provenance = self._prediction_provenance(result)
        lb.set_meta(semantic, provenance=provenance)
        lb.set_meta(instances, provenance=provenance)
        entry = CachedPlane(result.prediction, result.use_instance_heads, result.model_version, result.params,
                            result.uncertainty)
        self.session.cache.put(image.name, result.plane, entry)
        if self._uncertainty:
            with selection_kept(self.viewer):
                uncertainty = guidance.uncertainty_layer(self.viewer, image, layout)
            guidance.paint_uncertainty(uncertainty, result.plane, result.uncertainty)
            self.keep_annotations_on_top(image)
        if self._probabilities:
            lb.paint_probabilities(self.viewer, image, layout, result.plane, result.prediction.probabilities,
                                   self.session.segmenter.class_names if self.session.segmenter else [])
        self.plane_predicted.emit(result)

    def _paint_stack_objects(self, result: StackObjects) -> None:
        """Replace the per-plane objects of a whole stack by its 3D objects (one id across planes)."""
        image = lb.get_layer(self.viewer, self.name_now(result.image), Image)
        if image is None:
            return
        instances = self.instances_layer(image, lb.layout_in(self.viewer, image))
        if instances.data.shape != result.instances.shape:
            return
        _, objects = self.keeping_accepted(image, None, None, result.instances)
        instances.data[...] = objects.astype(instances.data.dtype, copy=False)
        instances.refresh()
        self.instances_updated.emit()

    def keeping_accepted(self, image: Image, plane, semantic=None, instances=None,
                         region: tuple[slice, slice] | None = None) -> tuple:
        """(semantic, instances) of a new prediction of `image`'s plane (None: the whole stack), or of a region
        of it, with the user's accepted classes and objects kept (`corrections.keep_accepted`): a retrain
        never paints over their corrections. Either may be None (not painted); unchanged where nothing is
        accepted, and, with a warning, where the accepted layer does not fit (another shape, too many ids)."""
        accepted_layer = self.paired(c.ROLE_ACCEPTED, image)
        if accepted_layer is None or lb.is_lazy(accepted_layer):
            return semantic, instances
        annotations_layer = self.paired(c.ROLE_ANNOTATIONS, image) if semantic is not None else None

        def read(layer):
            return layer.data if plane is None else lb.read_plane(layer, plane, region)

        try:
            accepted = read(accepted_layer)
            annotations = None if annotations_layer is None else read(annotations_layer)
            return (None if semantic is None else keep_accepted_classes(semantic, annotations, accepted),
                    None if instances is None else keep_accepted(instances, accepted))
        except (IndexError, ValueError, UserInputError) as error:
            self.notify("warning", f"the new prediction is shown without the accepted objects: {error}")
            return semantic, instances

    def _prediction_provenance(self, result: PlaneResult) -> dict:
        """What made these predictions, recorded in the layers and exported with them."""
        segmenter = self.session.segmenter
        if self._provenance is None or self._provenance[0] != result.model_version:
            self._provenance = (result.model_version, {
                "model_sha256": segmenter.fingerprint() if segmenter is not None else None,
                "training": segmenter.history[-1] if segmenter is not None and segmenter.history else None,
            })
        return {**self._provenance[1], "instance_params": result.params.to_dict(),
                **diameter_provenance(result.prediction, segmenter, self._diameter, self._diameter_asked),
                "test_time_flips": self._flips}

    def _on_predict_returned(self, status) -> None:
        self._predict_status = status or "done"

    def _on_predict_error(self, error: Exception) -> None:
        self._predict_status = "failed"
        report_worker_error(self.notify, "prediction", error, "Lower the tile size (step 3) or use the CPU (Device: cpu)")

    def _on_predict_finished(self) -> None:
        self._predict_worker = None
        self._filling_store = False
        self._forget_job_names()
        if self.closed:
            return
        if self._predict_status == "cancelled":
            self.notify("info", "prediction cancelled; planes already predicted are kept")
        self.busy_changed.emit()
        self.prediction_finished.emit(self._predict_status)

    # --- live instance parameters -------------------------------------------------------------

    def update_instances(self, params: InstanceParams) -> None:
        """Recompute the displayed plane's objects (a whole stack's 3D objects) from the cached predictions, never the network."""
        if self.closed:
            return
        image, layout, plane = self.selected(required=False)
        if image is None:
            return
        entry = self.session.cache.get(image.name, plane)
        if entry is None or entry.params == params:
            return
        entries, compute = [entry], entry.instances
        z_anisotropy = lb.stack_z_anisotropy(image, layout)
        if z_anisotropy is not None:  # a stack's objects are 3D: recompute them all once every plane is cached
            stack = [self.session.cache.get(image.name, p) for p in layout.planes()]
            if all(e is not None for e in stack):
                entries, plane = stack, None
                compute = partial(_stack_objects, image.name, [e.prediction for e in stack],
                                  use_instance_heads=entry.use_instance_heads, z_anisotropy=z_anisotropy)
        self._instance_request = (image.name, plane, params, compute, entries)
        if self._instance_worker is None:
            self._start_instance_job()

    def _start_instance_job(self) -> None:
        name, plane, params, compute, entries = self._instance_request
        self._instance_request = None
        self._instance_worker = self.scheduler.start(
            call_once, lambda: (name, plane, params, compute(params), entries),
            connect={
                "returned": self._on_instances_computed,
                "errored": lambda error: self.notify("error", f"objects not updated: {error}"),
                "finished": self._on_instance_job_finished,
            },
        )

    def _on_instances_computed(self, result) -> None:
        if self.closed:
            return
        name, plane, params, labels, entries = result
        if isinstance(labels, StackObjects):
            self._paint_stack_objects(labels)
            for entry in entries:
                entry.params = params
            return
        image = lb.get_layer(self.viewer, name, Image)
        if image is None:
            return
        layer = self.instances_layer(image, lb.layout_in(self.viewer, image))
        _, labels = self.keeping_accepted(image, plane, None, labels)
        lb.write_region(layer, plane, labels.astype(layer.data.dtype, copy=False))
        entry = self.session.cache.get(name, plane)
        if entry is not None:
            entry.params = params
        self.instances_updated.emit()

    def _on_instance_job_finished(self) -> None:
        self._instance_worker = None
        if self._instance_request is not None and not self.closed:
            self._start_instance_job()
