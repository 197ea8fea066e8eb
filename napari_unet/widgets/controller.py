"""The state behind napari-unet's docks: one `Controller` per viewer.

It owns the model (`Session`), the background jobs (`Scheduler`), the prediction cache and
the per-image state (annotations kept after a deletion, layers adopted, what is training or
predicting), and reports what happened as psygnal signals. The step widgets (annotate,
train, predict, correct & accept) read it and command it; the export dock asks the same
controller through `controller_for(viewer)` for the model. No Qt widget lives here: the
only Qt it touches is the worker threads, through the scheduler.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable

import numpy as np
from napari.layers import Image, Labels
from psygnal import Signal

from napari_unet import conventions as c
from napari_unet.errors import UserInputError
from napari_unet.functionals.suggestions import SuggestionWalk
from napari_unet.napari import channels
from napari_unet.napari import layers as lb
from napari_unet.napari.cheap_layers import selection_kept
from napari_unet.napari.session import Session
from napari_unet.nn.device import pick_device
from napari_unet.nn.segmenter import Segmenter
from napari_unet.nn.training import Trainer
from napari_unet.widgets.batch_jobs import BatchJobs
from napari_unet.widgets.messages import Messages
from napari_unet.widgets.prediction_jobs import PredictionJobs
from napari_unet.widgets.store_jobs import StoreJobs
from napari_unet.widgets.suggestion_jobs import SuggestionJobs
from napari_unet.widgets.training_jobs import TrainingJobs
from napari_unet.widgets.workers import (
    Scheduler,
    gui_friendly_threads,
    warm_up_torch,
)

log = logging.getLogger(__name__)

_controllers: weakref.WeakValueDictionary[int, Controller] = weakref.WeakValueDictionary()


def real_viewer(viewer):
    """The viewer behind the proxy napari hands to plugin widgets (each dock gets its own proxy)."""
    return getattr(viewer, "__wrapped__", viewer)


def controller_for(viewer) -> Controller:
    """The viewer's controller, created on first use (the docks hold it; this registry does not)."""
    viewer = real_viewer(viewer)
    old = _controllers.get(id(viewer))
    if old is not None and old.viewer is viewer and not old.closed:
        return old
    controller = Controller(viewer)
    if old is not None and old.viewer is viewer:  # the main dock was closed and opened again: keep the model
        controller.session = old.session
    _controllers[id(viewer)] = controller
    return controller


class Controller(TrainingJobs, PredictionJobs, StoreJobs, BatchJobs, SuggestionJobs):
    """Model, jobs and per-image state of one viewer; widgets call its methods and listen to its signals."""

    image_changed = Signal()  # another image was chosen (or it went away)
    model_changed = Signal()
    busy_changed = Signal()  # training or prediction started or ended
    annotations_changed = Signal()  # painted, restored or re-created
    plane_changed = Signal()  # the viewer shows another plane
    training_progress = Signal(object)  # a nn.training progress record
    training_finished = Signal(bool)  # True when a trained model came back
    preview_painted = Signal()
    prediction_progress = Signal(object)  # a workers.TileProgress: tiles done in the plane being predicted
    plane_predicted = Signal(object)  # a workers.PlaneResult, painted
    prediction_finished = Signal(str)  # "done", "cancelled" or "failed"
    instances_updated = Signal()
    accepted_changed = Signal()
    suggestion_shown = Signal(object)  # a functionals.suggestions.Region the view moved to

    def __init__(self, viewer, call_soon: Callable[[Callable], None] | None = None) -> None:
        self.viewer = viewer
        # information toasts over the canvas only while no training or store prediction runs: each costs the
        # GUI thread ~100 ms to build and its animation repaints the canvas (the dock's message line shows it)
        self.messages = Messages(toast_info=lambda: not (self.is_training or self._filling_store))
        self.scheduler = Scheduler()
        self.session = Session()
        # Defers work to the next event-loop turn (the dock passes a Qt single-shot timer).
        self.call_soon: Callable[[Callable], None] = call_soon or (lambda func: func())
        # Defers work by some milliseconds, letting the viewer paint and handle input first (the dock: a timer).
        self.call_later: Callable[[int, Callable], None] = lambda ms, func: func()
        self.image: Image | None = None
        self.class_names: list[str] = list(c.DEFAULT_CLASS_NAMES)
        self.class_colors: list[tuple] = [c.class_color(i) for i in range(len(self.class_names))]
        self.train_threads: int = gui_friendly_threads()
        self.device = pick_device("auto")
        self.last_training_items: list = []
        self.last_progress = None
        self.closed = False
        self._trainer: Trainer | None = None
        self._train_worker = None
        self._train_stop = threading.Event()
        self._train_images: set[str] = set()
        self._train_ok = False
        self._finish_message = ""
        self._preview_pending = False
        self._predict_worker = None
        self._predict_stop = threading.Event()
        self._predict_status = "done"
        self._predicting_image: str | None = None
        self._filling_store = False  # a prediction into a store runs (StoreJobs)
        self._job_names: dict[str, str] = {}  # image renamed while a job ran: its name then -> its name now
        self._probabilities = False
        self._uncertainty = True  # paint the uncertainty layer with the predictions
        self._diameter: float | str | None = None  # object diameter of the running prediction (Session.diameter_for)
        self._diameter_asked: float | str | None = None  # the dock's setting it came from (provenance)
        self._flips = 1  # test-time flips of the running prediction (recorded in the layers' provenance)
        self._instance_worker = None
        self._instance_request: tuple | None = None
        self._provenance: tuple[int, dict] | None = None  # (model version, model provenance)
        self.suggestions = SuggestionWalk()  # regions "Suggest next" showed, never shown twice
        self._removed_annotations: dict[str, tuple[np.ndarray, dict]] = {}
        self._adopted: weakref.WeakSet = weakref.WeakSet()  # annotations layers made ready to paint
        self._layer_names: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        # Images whose predicted layers nobody edited since their last prediction: accepting there
        # teaches the model its own mistakes (issue 9), so Accept says so.
        self._uncorrected: weakref.WeakSet = weakref.WeakSet()
        warm_up_torch()
        self._connect_viewer()

    # ========================================================================== messages, state

    def notify(self, level: str, text: str) -> None:
        self.messages.notify(level, text)

    @property
    def is_training(self) -> bool:
        return self._train_worker is not None

    @property
    def is_predicting(self) -> bool:
        return self._predict_worker is not None

    @property
    def segmenter(self) -> Segmenter | None:
        return self.session.segmenter

    def threads_alive(self) -> bool:
        """True while any job of this viewer still runs."""
        return bool(self.scheduler.running())

    # ========================================================================== viewer wiring

    def _connect_viewer(self) -> None:
        layers = self.viewer.layers
        layers.events.inserted.connect(self._on_layer_inserted)
        layers.events.removed.connect(self._on_layer_removed)
        for layer in layers:
            self._watch_layer(layer)
        self.viewer.dims.events.current_step.connect(self._on_dims_changed)

    def _disconnect_viewer(self) -> None:
        for disconnect in (
            lambda: self.viewer.layers.events.inserted.disconnect(self._on_layer_inserted),
            lambda: self.viewer.layers.events.removed.disconnect(self._on_layer_removed),
            lambda: self.viewer.dims.events.current_step.disconnect(self._on_dims_changed),
        ):
            try:
                disconnect()
            except Exception:  # the viewer is already gone
                pass

    def _watch_layer(self, layer) -> None:
        self._layer_names[layer] = layer.name
        layer.events.name.connect(self._on_layer_renamed)
        if isinstance(layer, Labels):
            layer.events.paint.connect(self._on_paint)

    def _on_layer_inserted(self, event) -> None:
        if self.closed:
            return
        self._watch_layer(event.value)
        # the image's annotations, not its results: the Annotate step recounts the annotated plane (a scan of
        # all of it: 0.1 s at 16384^2) after each, and a Predict click adds three result layers
        if (self.image is not None and lb.meta(event.value).get("image") == self.image.name
                and lb.role_of(event.value) in (None, c.ROLE_ANNOTATIONS)):
            self.annotations_changed.emit()

    def _on_layer_removed(self, event) -> None:
        if self.closed:
            return
        layer = event.value
        role = lb.role_of(layer)
        messages = []
        if isinstance(layer, Labels) and role == c.ROLE_ANNOTATIONS:
            image = lb.meta(layer).get("image", "")
            self._removed_annotations[image] = (np.asarray(layer.data), dict(layer.metadata))
            if np.any(layer.data):
                messages.append(
                    f"'{layer.name}' was deleted; its strokes are kept: select '{image}' and click "
                    "'Paint annotations' to restore them"
                )
        elif isinstance(layer, Image) and role is None:
            self.session.forget_image(layer.name)
            self.suggestions.forget_image(layer.name)
        used = layer.name if isinstance(layer, Image) else lb.meta(layer).get("image") if role == c.ROLE_ANNOTATIONS else None
        if self.is_training and used in self._train_images:
            messages.append(f"'{layer.name}' was removed while training: training goes on with the data it started with")
        if self.is_predicting and isinstance(layer, Image) and layer.name == self._predicting_image:
            self.cancel_prediction()
            messages.append(f"'{layer.name}' was removed: prediction cancelled")
        # Deferred: when the whole viewer closes, its layers go first and these would only be noise.
        for text in messages:
            self.call_soon(lambda text=text: self._deferred_warning(text))
        self.call_soon(self._after_layers_changed)

    def _deferred_warning(self, text: str) -> None:
        if not self.closed and len(self.viewer.layers):  # no layer left: the viewer is closing
            self.notify("warning", text)

    def _after_layers_changed(self) -> None:
        if not self.closed:
            self.annotations_changed.emit()
            self.busy_changed.emit()

    def _on_layer_renamed(self, event) -> None:
        layer = event.source
        old = self._layer_names.get(layer)
        self._layer_names[layer] = layer.name
        if not old or old == layer.name or not isinstance(layer, Image) or lb.role_of(layer) is not None:
            return
        channels.follow_rename(self.viewer, old, layer.name)
        for other in self.viewer.layers:  # keep paired layers paired
            if other is not layer and lb.meta(other).get("image") == old:
                lb.set_meta(other, image=layer.name)
        self.session.rename_image(old, layer.name)
        if self.is_training or self.is_predicting:  # its results still carry the name it started with
            started = next((then for then, now in self._job_names.items() if now == old), old)
            self._job_names[started] = layer.name
            if self._predicting_image == old:
                self._predicting_image = layer.name
            if old in self._train_images:
                self._train_images = (self._train_images - {old}) | {layer.name}

    def name_now(self, started: str) -> str:
        """The current name of an image a running job started on as `started` (renamed since, or not)."""
        return self._job_names.get(started, started)

    def _forget_job_names(self) -> None:
        if not (self.is_training or self.is_predicting):
            self._job_names.clear()

    def _on_paint(self, event=None) -> None:
        if not self.closed:
            self.annotations_changed.emit()

    def _on_dims_changed(self, event=None) -> None:
        if not self.closed:
            self.plane_changed.emit()

    # ========================================================================== image, annotations

    def select_image(self, image: Image | None) -> None:
        """Make `image` the one the steps work on (None: no image)."""
        self.image = image
        self.image_changed.emit()

    def selected(self, *, required: bool = True):
        """(image layer, layout, plane on display), or a UserInputError saying what to do."""
        image = self.image
        if image is None or image not in self.viewer.layers:
            if required:
                raise UserInputError("no image: open an image (or File > Open Sample > napari-unet) and pick it in step 1")
            return None, None, None
        layout = lb.layout_in(self.viewer, image)
        return image, layout, lb.current_plane(self.viewer, image, layout)

    def paired(self, role: str, image: Image | None = None) -> Labels | None:
        """The selected (or given) image's Labels layer playing `role`, if any."""
        image = image or self.image
        return lb.find_paired(self.viewer, image.name, role) if image is not None else None

    def annotations_layer(self, image: Image | None = None, channel_axis=None) -> Labels:
        """The image's annotations layer, adopted, restored or created (with classes and colours)."""
        image = image or self.selected()[0]
        existing = lb.find_paired(self.viewer, image.name, c.ROLE_ANNOTATIONS)
        if existing is not None:
            if lb.role_of(existing) != c.ROLE_ANNOTATIONS or "class_names" not in lb.meta(existing):
                lb.set_meta(existing, role=c.ROLE_ANNOTATIONS, image=image.name, class_names=lb.class_names_of(existing))
            lb.check_pair(image, existing, lb.layout_in(self.viewer, image))
            if existing not in self._adopted:  # first sight: ready to paint the first class
                self._adopted.add(existing)
                lb.set_class_features(existing, lb.class_names_of(existing))
                if existing.selected_label <= c.BACKGROUND:
                    existing.selected_label = c.FIRST_CLASS
            return existing
        layout = lb.layout_of(image, lb.default_channel_axis(image) if channel_axis is None else channel_axis)
        backup = self._removed_annotations.get(image.name)
        current = image is self.image
        names = list(self.class_names) if current else list(c.DEFAULT_CLASS_NAMES)
        colors = list(self.class_colors) if current else lb.class_colors_of(None, len(names))
        layer = lb.paired_labels(self.viewer, image, c.ROLE_ANNOTATIONS, layout, dtype=np.uint8, opacity=0.8)
        if backup is not None and backup[0].shape == tuple(layer.data.shape):
            layer.data = backup[0]
            meta = backup[1].get(c.METADATA_KEY, {})
            names = list(meta.get("class_names") or names)
            colors = meta.get("class_colors") or lb.class_colors_of(None, len(names))
            del self._removed_annotations[image.name]
            self.notify("info", f"restored the deleted annotations of '{image.name}'")
        lb.set_meta(layer, class_names=list(names), class_colors=[list(col) for col in colors],
                    channel_axis=layout.channel_axis)
        layer.colormap = lb.class_colormap(colors)
        lb.set_class_features(layer, names)
        layer.selected_label = c.FIRST_CLASS
        self._adopted.add(layer)
        layer.brush_size = max(3, min(15, min(layout.plane_shape) // 60))
        return layer

    def set_channel_axis(self, axis: int | None) -> None:
        """Say which axis of the selected image holds channels (re-creates its empty annotations)."""
        image = self.selected()[0]
        annotations = self.paired(c.ROLE_ANNOTATIONS)
        layout = lb.layout_of(image, axis)
        if annotations is not None and tuple(annotations.data.shape) != layout.labels_shape:
            if np.any(annotations.data):
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
        self.annotations_changed.emit()

    def set_classes(self, names: list[str], colors: list[tuple]) -> None:
        """New class names / colours: stored with the annotations, shown in the prediction overlay."""
        self.class_names, self.class_colors = list(names), [tuple(col) for col in colors]
        annotations = self.paired(c.ROLE_ANNOTATIONS)
        if annotations is not None:
            lb.set_meta(annotations, class_names=list(names), class_colors=[list(col) for col in colors])
            annotations.colormap = lb.class_colormap(colors)
            lb.set_class_features(annotations, names)
        semantic = self.paired(c.ROLE_SEMANTIC)
        if semantic is not None:
            semantic.colormap = lb.class_colormap(colors, background_visible=False)
            lb.set_class_features(semantic, names)

    def load_classes(self) -> tuple[list[str], list[tuple]]:
        """The selected image's classes as stored with its annotations (the defaults without them)."""
        annotations = self.paired(c.ROLE_ANNOTATIONS)
        self.class_names = lb.class_names_of(annotations)
        self.class_colors = lb.class_colors_of(annotations, len(self.class_names))
        return self.class_names, self.class_colors

    # ========================================================================== result layers

    def semantic_layer(self, image: Image, layout, data=None) -> Labels:
        created = self.paired(c.ROLE_SEMANTIC, image) is None
        with selection_kept(self.viewer):  # the layer the user paints stays active, not the new result
            layer = lb.paired_labels(self.viewer, image, c.ROLE_SEMANTIC, layout, dtype=np.uint8, opacity=0.35,
                                     data=data)
        if created:
            self._follow_corrections(layer, image)
            colors = lb.class_colors_of(self.paired(c.ROLE_ANNOTATIONS, image), max(len(self.class_names), 2))
            layer.colormap = lb.class_colormap(colors, background_visible=False)
            lb.set_class_features(layer, self.class_names)
            self.keep_annotations_on_top(image)
        return layer

    def instances_layer(self, image: Image, layout, data=None, **layer_kwargs) -> Labels:
        created = self.paired(c.ROLE_INSTANCES, image) is None
        with selection_kept(self.viewer):
            layer = lb.paired_labels(self.viewer, image, c.ROLE_INSTANCES, layout, dtype=np.uint32, opacity=0.55,
                                     data=data, **layer_kwargs)
        if created:
            self._follow_corrections(layer, image)
            self.keep_annotations_on_top(image)
        return layer

    def _follow_corrections(self, layer: Labels, image: Image) -> None:
        """An edit recorded in a predicted layer's undo history is a correction (predictions are
        written outside it, `lb.write_region`)."""
        image_ref = weakref.ref(image)

        def corrected(event=None) -> None:
            image = image_ref()
            if image is not None:
                self._uncorrected.discard(image)

        layer.events.paint.connect(corrected)

    def predicted_uncorrected(self, image: Image) -> None:
        """A new prediction of `image`: nothing in it is corrected yet."""
        self._uncorrected.add(image)

    def is_uncorrected(self, image: Image) -> bool:
        """True when `image`'s predicted layers were not edited since its last prediction."""
        return image in self._uncorrected

    def accepted_layer(self, image: Image, layout, data=None, **layer_kwargs) -> Labels:
        created = self.paired(c.ROLE_ACCEPTED, image) is None
        with selection_kept(self.viewer):
            layer = lb.paired_labels(self.viewer, image, c.ROLE_ACCEPTED, layout, dtype=np.uint32, opacity=0.6,
                                     data=data, **layer_kwargs)
        if created:
            layer.contour = 1
            layer.editable = False
            self.keep_annotations_on_top(image)
        return layer

    def keep_annotations_on_top(self, image: Image) -> None:
        """New result layers go below the annotations layer so strokes stay visible."""
        layers = self.viewer.layers
        annotations = self.paired(c.ROLE_ANNOTATIONS, image)
        if annotations is None:
            return
        index = layers.index(annotations)
        if index != len(layers) - 1:
            layers.move(index, len(layers))

    # ========================================================================== shutdown

    def shutdown(self, timeout: float = 15.0) -> None:
        """Stop every job of this viewer and wait for its thread; stop listening to the viewer."""
        if self.closed:
            return
        self.closed = True
        started = time.monotonic()
        if not self.scheduler.join(timeout):
            log.warning("napari-unet: a worker thread was still running %.0f s after the viewer closed",
                        time.monotonic() - started)
        self._disconnect_viewer()
