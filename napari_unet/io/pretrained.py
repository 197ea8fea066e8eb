"""Pretrained starting models shipped with the package.

Each is a checkpoint ``resources/models/NAME.pt`` that rebuilds itself (see
``napari_unet.nn.segmenter``); the dock's "Start from" list and the command line's
``--model NAME`` / ``--resume NAME`` find them here by name. Imports no torch, Qt or napari.
"""

from __future__ import annotations

from pathlib import Path

from napari_unet.errors import UserInputError
from napari_unet.io.resources import resources_dir

MODELS_FOLDER = "models"
CHECKPOINT_SUFFIX = ".pt"


def available_models() -> list[str]:
    """Names of the shipped pretrained models, sorted."""
    folder = resources_dir() / MODELS_FOLDER
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob(f"*{CHECKPOINT_SUFFIX}") if p.is_file())


def model_path(name: str) -> Path:
    """Checkpoint file of the shipped model `name`; a UserInputError names the choices."""
    names = available_models()
    if name not in names:
        choices = ", ".join(names) if names else "none are installed"
        raise UserInputError(f"no pretrained model named {name!r} (available: {choices})")
    return resources_dir() / MODELS_FOLDER / f"{name}{CHECKPOINT_SUFFIX}"
