"""A trained U-Net together with everything needed to use it: the self-describing checkpoint.

A checkpoint stores the architecture, class names, input normalisation, channel layout,
training history and a short model card, so `Segmenter.load` rebuilds the model with
no other information, in another session or on another machine.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from napari_unet import __version__, limits
from napari_unet.errors import UserInputError
from napari_unet.functionals.instance_tuning import InstanceTuning, settings_in_use
from napari_unet.functionals.instances import InstanceParams, instances_from_prediction
from napari_unet.functionals.normalisation import Normalisation
from napari_unet.functionals.prediction import Prediction
from napari_unet.functionals.scale import (
    AUTO,
    auto_passes,
    object_diameter,
    resample_prediction,
    scale_factor,
    scaled_shape,
)
from napari_unet.io import atomic
from napari_unet.nn.device import autocast_dtype
from napari_unet.nn.inference import check_flips, predict_tiled
from napari_unet.nn.model import ModelConfig, UNet
from napari_unet.nn.resize import resample_linear

FORMAT = "napari-unet-checkpoint"
FORMAT_VERSION = 1


@dataclass
class Segmenter:
    """The network plus its metadata; what training produces and prediction consumes."""

    net: UNet
    class_names: list[str]
    normalisation: Normalisation = field(default_factory=Normalisation)
    rgb: bool = False
    instance_heads_trained: bool = False
    history: list[dict] = field(default_factory=list)
    canonical_diameter: float | None = None  # object size the network works at; None: no resampling
    object_diameter: float | None = None  # typical object size in the training images, in their pixels
    instance_tuning: InstanceTuning | None = None  # instance settings picked on its annotations; None: defaults
    # The weights of the model a run of fine-tuning rounds began from, which each round blends back to
    # (WiSE-FT's anchor): blending to the previous round instead lets the rounds' drift add up.
    anchor: dict | None = field(default=None, repr=False, compare=False)

    @classmethod
    def create(cls, config: ModelConfig, class_names: list[str], **kwargs) -> Segmenter:
        if len(class_names) != config.n_classes:
            raise ValueError(f"{config.n_classes} classes but {len(class_names)} names")
        return cls(net=UNet(config), class_names=list(class_names), **kwargs)

    @property
    def config(self) -> ModelConfig:
        return self.net.config

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    def to(self, device: torch.device) -> Segmenter:
        self.net.to(device)
        return self

    def class_sources(self, class_names: list[str]) -> list[int | None]:
        """For each of `class_names`, the class of this model whose output it starts from (None: fresh).

        The old class of the same name (case-insensitive), else an old class no new name claimed,
        in order (so "nucleus" becomes the user's "cell"), else none. Background (the first class)
        always comes from background.
        """
        old = [name.lower() for name in self.class_names]
        sources = [old.index(name.lower()) if name.lower() in old else None for name in class_names]
        sources[0] = 0
        spare = [i for i in range(1, len(old)) if i not in sources]
        return [s if s is not None or not spare else spare.pop(0) for s in sources]

    def adapt_classes(self, class_names: list[str]) -> Segmenter:
        """A copy for another class list that keeps what transfers: a starting point for fine-tuning.

        The encoder, decoder and instance heads are kept; each class's output comes from its
        `class_sources`, else starts fresh. The blend anchor follows the same mapping, unless a
        class starts fresh (blending its output back to a random start would undo its training).
        """
        sources = self.class_sources(class_names)
        net = UNet(ModelConfig(**{**self.config.to_dict(), "n_classes": len(class_names)}))
        net.load_state_dict(_map_classes(self.net.state_dict(), net.state_dict(), sources, self.config.n_classes))
        anchor = None
        if self.anchor is not None and None not in sources:  # every row of the template is overwritten
            template = {k: v.clone() for k, v in net.state_dict().items() if k in self.anchor}
            anchor = _map_classes(self.anchor, template, sources, self.config.n_classes)
        return Segmenter(
            net=net.to(self.device),
            class_names=list(class_names),
            normalisation=self.normalisation,
            rgb=self.rgb,
            instance_heads_trained=self.instance_heads_trained,
            history=list(self.history),
            canonical_diameter=self.canonical_diameter,
            object_diameter=self.object_diameter,
            instance_tuning=self.instance_tuning,
            anchor=anchor,
        )

    # --- prediction -------------------------------------------------------------------------

    def predict(
        self,
        image,
        *,
        diameter: float | str | None = None,
        tile_size: int = 512,
        overlap: int = 64,
        batch_size: int | None = None,
        out_dtype: np.dtype = np.float32,
        flips: int = 1,
        progress: Callable[[int, int], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> Prediction:
        """Network outputs for a (C, H, W) image (numpy or lazy), normalised and scaled as in training.

        `diameter` is the typical object diameter in this image's pixels: None takes the
        training images' (`object_diameter`), AUTO measures it from a first pass and predicts
        again only when it differs. Outputs always have the image's own height and width.
        `flips`: test-time flips, network passes averaged per tile (inference.FLIP_CHOICES; 1: off).
        """
        self.check_input(image)
        check_flips(flips)
        stats = self.normalisation.statistics(image)
        if batch_size is None:
            # On CPU one tile at a time is ~1.5x faster per pixel than four: its activations stay in cache.
            batch_size = 1 if self.device.type == "cpu" else 4

        def run(factor: float) -> Prediction:
            height, width = image.shape[1:]
            source = image if factor == 1.0 else resample_linear(np.asarray(image), scaled_shape((height, width), factor))
            prediction = predict_tiled(
                self.net,
                source,
                stats,
                device=self.device,
                tile_size=tile_size,
                overlap=overlap,
                batch_size=batch_size,
                amp_dtype=autocast_dtype(self.device),
                out_dtype=out_dtype,
                flips=flips,
                progress=progress,
                should_stop=should_stop,
            )
            if factor == 1.0:
                return prediction
            return resample_prediction(prediction, (height, width), factor, out_dtype, resize=resample_linear)

        first = self.object_diameter if diameter in (None, AUTO) else float(diameter)
        factor = scale_factor(first, self.canonical_diameter)
        if diameter != AUTO or self.canonical_diameter is None:
            return run(factor)

        # Sized on every object: measured on the sure ones only, one new model's `train` images lost 0.05 of AP@0.5
        every_object = replace(self.instance_params, min_confidence=0.0)

        def target(prediction: Prediction) -> float:
            measured = object_diameter(self.instances(prediction, every_object))
            return math.inf if measured is None else scale_factor(measured, self.canonical_diameter)

        return auto_passes(factor, run, target)

    @property
    def instance_params(self) -> InstanceParams:
        """Its instance settings: the ones tuned on its training annotations, else the defaults."""
        return settings_in_use(self.instance_tuning)

    def instances(self, prediction: Prediction, params: InstanceParams | None = None) -> np.ndarray:
        """Objects in `prediction` with `params` (None: the model's own `instance_params`)."""
        params = self.instance_params if params is None else params
        return instances_from_prediction(prediction, params, use_instance_heads=self.instance_heads_trained)

    def check_input(self, image) -> None:
        channels = image.shape[0]
        if channels != self.config.in_channels:
            raise UserInputError(
                f"this model expects {self.config.in_channels} input channel(s) "
                f"but the image has {channels}; use an image like the ones it was trained on"
            )

    # --- checkpoints -------------------------------------------------------------------------

    def model_card(self) -> dict:
        """A short summary for people: classes, inputs, training amount, last results."""
        last = self.history[-1] if self.history else {}
        return {
            "classes": self.class_names,
            "input_channels": self.config.in_channels,
            "rgb": self.rgb,
            "normalisation": self.normalisation.to_dict(),
            "training_images": last.get("images"),
            "steps": sum(run.get("steps", 0) for run in self.history),
            "final_loss": last.get("loss"),
            "validation": last.get("validation"),
            "instance_heads_trained": self.instance_heads_trained,
            "object_diameter": self.object_diameter,
            "instance_settings": self.instance_params.to_dict(),
            "instance_tuning": None if self.instance_tuning is None else self.instance_tuning.describe(),
        }

    def to_checkpoint(self) -> dict:
        state = {k: v.detach().cpu() for k, v in self.net.state_dict().items()}
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "napari_unet_version": __version__,
            "architecture": self.config.to_dict(),
            "class_names": self.class_names,
            "normalisation": self.normalisation.to_dict(),
            "channels": {"in_channels": self.config.in_channels, "layout": "CHW", "rgb": self.rgb},
            "instance_heads_trained": self.instance_heads_trained,
            "scale": {"canonical_diameter": self.canonical_diameter, "object_diameter": self.object_diameter},
            "instance_tuning": None if self.instance_tuning is None else self.instance_tuning.to_dict(),
            "history": self.history,
            "model_card": self.model_card(),
            "state_dict": state,
            "anchor": None if self.anchor is None else {k: v.detach().cpu() for k, v in self.anchor.items()},
        }

    @classmethod
    def from_checkpoint(cls, checkpoint: dict) -> Segmenter:
        """Rebuild a saved model; every field is checked before the network is built (checkpoints are user files)."""
        if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
            raise UserInputError("not a napari-unet model checkpoint")
        _check_format_version(checkpoint)
        architecture = _table(checkpoint, "architecture", ModelConfig)
        limits.check_architecture(architecture)
        config = ModelConfig(**architecture)
        class_names = checkpoint["class_names"]
        if not isinstance(class_names, list) or len(class_names) != config.n_classes:
            raise UserInputError(f"its class names do not list the network's {config.n_classes} classes")
        normalisation = Normalisation(**_table(checkpoint, "normalisation", Normalisation))
        tuning = checkpoint.get("instance_tuning")  # absent before tuning was stored: the defaults
        net = UNet(config)
        net.load_state_dict(checkpoint["state_dict"])
        return cls(
            net=net,
            class_names=[str(name) for name in class_names],
            normalisation=normalisation,
            rgb=bool(checkpoint["channels"].get("rgb", False)),
            instance_heads_trained=bool(checkpoint["instance_heads_trained"]),
            history=list(checkpoint["history"]),
            **checkpoint.get("scale", {}),  # absent before object scale was stored: no resampling
            instance_tuning=None if tuning is None else InstanceTuning.from_dict(tuning),
            anchor=_anchor(checkpoint.get("anchor"), net),  # absent before fine-tuning rounds kept one
        )

    def save(self, path: str | os.PathLike) -> Path:
        """Write the checkpoint atomically: a failed write never leaves a truncated model behind."""
        path = Path(path)
        if path.is_dir():  # the swap would replace the folder, and all in it, by the model file
            raise UserInputError(f"{path} is a folder: give a file name for the model, such as model.pt")
        buffer = io.BytesIO()
        torch.save(self.to_checkpoint(), buffer)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic.write_file(path, lambda tmp: tmp.write_bytes(buffer.getbuffer()))
        except OSError as error:
            raise atomic.disk_error(error, path, "save") or UserInputError(
                f"could not save the model to {path}: {error.strerror or error}") from error
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, device: torch.device | None = None) -> Segmenter:
        path = Path(path)
        if not path.is_file():
            raise UserInputError(f"model file not found: {path}")
        from napari_unet.io import bioimageio

        try:
            if bioimageio.is_package(path):  # a BioImage.IO package exported by napari-unet
                checkpoint = bioimageio.read_checkpoint(path)
            else:
                checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        except UserInputError:
            raise
        except Exception as error:  # torch raises many types for foreign files
            raise UserInputError(f"{path} is not a napari-unet model checkpoint ({type(error).__name__})") from error
        try:
            segmenter = cls.from_checkpoint(checkpoint)
        except UserInputError as error:
            raise UserInputError(f"cannot load {path}: {error}") from error
        except KeyError as error:
            raise UserInputError(f"{path} is a damaged napari-unet checkpoint: it has no {error} field") from error
        except (TypeError, ValueError, AttributeError, RuntimeError) as error:
            lines = [line.strip() for line in str(error).strip().splitlines()] or [type(error).__name__]
            reason = " ".join(lines[:2] if lines[0].endswith(":") else lines[:1])  # torch's "...for UNet:" + the keys
            reason = reason if len(reason) <= 200 else reason[:199] + "…"
            raise UserInputError(f"{path} is a damaged or incompatible napari-unet checkpoint: {reason}") from error
        return segmenter.to(device) if device is not None else segmenter

    def fingerprint(self) -> str:
        """SHA-256 of the weights, recorded as provenance next to predictions."""
        digest = hashlib.sha256()
        for name, tensor in sorted(self.net.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()


def _check_format_version(checkpoint: dict) -> None:
    version = checkpoint.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise UserInputError(f"its format_version {version!r} is not a checkpoint format version")
    if version > FORMAT_VERSION:
        saved_by = checkpoint.get("napari_unet_version", "a newer version")
        raise UserInputError(
            f"it was saved by napari-unet {saved_by} in checkpoint format {version}, but this napari-unet "
            f"({__version__}) reads formats up to {FORMAT_VERSION}: update napari-unet"
        )


def _table(checkpoint: dict, key: str, kind: type) -> dict:
    """The settings stored under `key`, with exactly the fields of the dataclass `kind`."""
    value = checkpoint[key]
    if not isinstance(value, dict):
        raise UserInputError(f"its {key} is a {type(value).__name__}, not a table of settings")
    if set(value) != set(kind.__dataclass_fields__):
        raise UserInputError(f"its {key} fields {sorted(map(str, value))} are not those this napari-unet knows")
    return value


def _anchor(saved, net: UNet) -> dict[str, torch.Tensor] | None:
    """The stored blend anchor, checked against the network it belongs to (checkpoints are user files)."""
    if saved is None:
        return None
    state = net.state_dict()
    if not isinstance(saved, dict) or any(
        name not in state or not isinstance(value, torch.Tensor) or value.shape != state[name].shape
        for name, value in saved.items()
    ):
        raise UserInputError("its blend anchor (the weights fine-tuning rounds return to) does not fit its network")
    return dict(saved)


def _map_classes(old: dict[str, torch.Tensor], new: dict[str, torch.Tensor], sources: list[int | None],
                 n_old: int) -> dict[str, torch.Tensor]:
    """`new` with the shared layers of `old` and each class row of the heads from its source (None: kept)."""
    n_new = len(sources)
    for name, tensor in old.items():
        if not name.startswith("head."):
            new[name] = tensor
            continue
        for row, source in enumerate(sources):
            if source is not None:
                new[name][row] = tensor[source]
        new[name][n_new:] = tensor[n_old:]
    return new
