"""Pretrained starting models shipped with the package, each with a model card.

Each is a checkpoint ``resources/models/NAME.pt`` that rebuilds itself (see
``napari_unet.nn.segmenter``) beside a card ``NAME.json`` (what it segments, training
data, licence, citation, val scores, the object diameter it expects); the dock's "Start
from" list and the command line's ``--model NAME`` / ``--resume NAME`` / ``napari-unet
models`` find them here by name. Imports no torch, Qt or napari.
"""

from __future__ import annotations

import json
from pathlib import Path

from napari_unet.errors import UserInputError
from napari_unet.io.resources import resources_dir

MODELS_FOLDER = "models"
CHECKPOINT_SUFFIX = ".pt"
CARD_SUFFIX = ".json"


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
    return checkpoint_path(name)


def checkpoint_path(name: str) -> Path:
    """Where the checkpoint of model `name` lives (or is written by benchmarks/train_pretrained.py)."""
    return resources_dir() / MODELS_FOLDER / f"{name}{CHECKPOINT_SUFFIX}"


def card_path(name: str) -> Path:
    return resources_dir() / MODELS_FOLDER / f"{name}{CARD_SUFFIX}"


def model_card(name: str) -> dict:
    """The model card of the shipped model `name` (just its name when the card file is missing)."""
    model_path(name)  # a clear error for an unknown name
    path = card_path(name)
    if not path.is_file():
        return {"name": name}
    return json.loads(path.read_text())


def resolve(name_or_path: str) -> Path:
    """A checkpoint path from either a shipped model's name or a file path, as the CLI accepts both."""
    path = Path(name_or_path)
    if name_or_path in available_models() and not path.is_file():
        return checkpoint_path(name_or_path)
    if not path.is_file() and path.suffix != CHECKPOINT_SUFFIX:
        choices = ", ".join(available_models()) or "none are installed"
        raise UserInputError(f"{name_or_path!r} is neither a model file nor a shipped model (available: {choices})")
    return path


def describe(card: dict) -> str:
    """A few lines for people: name, what it segments, expected object size, val scores, instance settings,
    data and citation."""
    lines = [card["name"]]
    if "description" in card:
        lines.append(f"  {card['description']}")
    if card.get("classes"):
        lines.append(f"  classes: {', '.join(card['classes'])}")
    if card.get("object_diameter"):
        lines.append(f"  expected object diameter: {card['object_diameter']:.0f} px (other sizes are measured)")
    scores = card.get("val_scores")
    if scores:
        lines.append(f"  val ({scores['images']} unseen images): AP@0.5 {scores['ap50']:.3f}, "
                     f"DSB score {scores['dsb_score']:.3f}")
    settings = card.get("instance_settings")
    if settings:
        lines.append(f"  instance settings (picked on its `train` images): threshold {settings['threshold']:g}, "
                     f"min size {settings['min_size']}, seed prominence {settings['seed_prominence']:g}, "
                     f"border evidence {settings['border_evidence']:g}"
                     + (f", min confidence {settings['min_confidence']:g}" if settings.get("min_confidence") else ""))
    for key in ("data", "licence", "citation"):
        if card.get(key):
            lines.append(f"  {key}: {card[key]}")
    return "\n".join(lines)
