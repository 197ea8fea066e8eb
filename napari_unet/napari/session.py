"""The controller's model and prediction cache (Qt-free).

`Session` holds the current model, a version number that changes whenever the model does,
and the network outputs cached per (image, plane). Instance post-processing runs from these
cached `Prediction`s, so moving a slider never runs the network again. The cache is bounded
by memory (least recently used planes go first); a plane that fell out simply needs
predicting again.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from napari_unet.functionals.instances import InstanceParams, instances_from_prediction
from napari_unet.functionals.prediction import Prediction
from napari_unet.functionals.scale import AUTO
from napari_unet.nn.segmenter import Segmenter

DEFAULT_CACHE_BYTES = 1 << 30


@dataclass
class CachedPlane:
    """Network outputs of one plane and how instances were last made from them."""

    prediction: Prediction
    use_instance_heads: bool
    model_version: int
    params: InstanceParams | None = None  # parameters of the instances now in the layer
    uncertainty: np.ndarray | None = None  # (H, W) uint8, what "Suggest next" ranks

    @property
    def nbytes(self) -> int:
        p = self.prediction
        extra = self.uncertainty.nbytes if self.uncertainty is not None else 0
        return int(p.probabilities.nbytes + p.boundary.nbytes + p.distance.nbytes + extra)

    def instances(self, params: InstanceParams):
        return instances_from_prediction(self.prediction, params, use_instance_heads=self.use_instance_heads)


@dataclass
class PredictionCache:
    """(image name, plane) -> CachedPlane, least recently used dropped beyond `max_bytes`."""

    max_bytes: int = DEFAULT_CACHE_BYTES
    _items: OrderedDict = field(default_factory=OrderedDict)

    def put(self, image: str, plane: tuple, entry: CachedPlane) -> None:
        key = (image, tuple(plane))
        self._items.pop(key, None)
        self._items[key] = entry
        total = sum(e.nbytes for e in self._items.values())
        while total > self.max_bytes and len(self._items) > 1:
            _, dropped = self._items.popitem(last=False)
            total -= dropped.nbytes

    def get(self, image: str, plane: tuple) -> CachedPlane | None:
        key = (image, tuple(plane))
        entry = self._items.get(key)
        if entry is not None:
            self._items.move_to_end(key)
        return entry

    def planes(self, image: str) -> list[tuple]:
        return [plane for (name, plane) in self._items if name == image]

    def drop_image(self, image: str) -> None:
        for key in [k for k in self._items if k[0] == image]:
            del self._items[key]

    def rename(self, old: str, new: str) -> None:
        for key in [k for k in self._items if k[0] == old]:
            self._items[(new, key[1])] = self._items.pop(key)

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


@dataclass
class Session:
    """What the dock remembers between actions: the model, its version and cached outputs."""

    segmenter: Segmenter | None = None
    model_version: int = 0
    # steps of the model's runs in this session: the loss curve continues across warm starts from there, and a
    # shipped model's own steps (it comes with tens of thousands) are told apart from the user's
    loss_offset: int = 0
    cache: PredictionCache = field(default_factory=PredictionCache)
    trained_on: set[str] = field(default_factory=set)  # images (by name) the model was trained on here
    trained_diameters: dict[str, float] = field(default_factory=dict)  # of those, the object size each was trained at

    def set_model(self, segmenter: Segmenter | None, *, new: bool = False, trained_on=(),
                  diameters: dict[str, float] | None = None) -> None:
        """A new model (loaded, shipped, none: `new`) or the current one trained on `trained_on` too,
        each image at its `diameters` entry (Trainer.diameters)."""
        self.segmenter = segmenter
        self.model_version += 1
        if new:
            self.loss_offset = 0
            self.trained_on = set()
            self.trained_diameters = {}
        elif segmenter is not None and segmenter.history:  # trained here: its last run is this session's
            self.loss_offset += int(segmenter.history[-1].get("steps", 0))
        self.trained_on |= set(trained_on)
        self.trained_diameters.update(diameters or {})

    def forget_image(self, image: str) -> None:
        """An image left the viewer: its cached outputs go; an image of that name later is a new one."""
        self.cache.drop_image(image)
        self.trained_on.discard(image)
        self.trained_diameters.pop(image, None)

    def rename_image(self, old: str, new: str) -> None:
        self.cache.rename(old, new)
        if old in self.trained_on:
            self.trained_on = (self.trained_on - {old}) | {new}
        if old in self.trained_diameters:
            self.trained_diameters[new] = self.trained_diameters.pop(old)

    def diameter_for(self, image: str, choice: float | str | None) -> float | str | None:
        """The object diameter to predict `image` at, for the dock's choice (as Segmenter.predict takes it).

        AUTO measures the objects of images the model was not trained on (a shipped model, a new
        image: another magnification), and predicts the images it was trained on at the size each
        was trained at (one pass, right for each even when their objects differ in size; the
        model's single training diameter split the large ones and merged the small ones).
        """
        model = self.segmenter
        if choice != AUTO:
            return choice
        if model is None or model.canonical_diameter is None:
            return None
        if image in self.trained_on:
            return self.trained_diameters.get(image)  # None: the model's training diameter
        return AUTO

    def segmenter_copy(self) -> Segmenter | None:
        """A private copy of the model to train: the current one stays as it is until training returns."""
        return copy.deepcopy(self.segmenter) if self.segmenter is not None else None

    def model_summary(self) -> str:
        seg = self.segmenter
        if seg is None:
            return "no model yet: train one (step 2) or load a saved one"
        steps = int(sum(run.get("steps", 0) for run in seg.history))
        # a fine-tuned shipped model has tens of thousands of steps: say which of them are the user's
        here = f" ({self.loss_offset:,} of them here)" if 0 < self.loss_offset < steps else ""
        loss = seg.history[-1].get("loss") if seg.history else None
        arch = f"depth {seg.config.depth}, width {seg.config.base_width}"
        loss_text = f", loss {loss:.3f}" if isinstance(loss, (int, float)) else ""
        classes = ", ".join(seg.class_names)
        return f"{arch}; {seg.config.in_channels} channel(s); classes: {classes}; {steps:,} steps{here}{loss_text}"
