"""Several outputs written all or nothing: checked before any work, staged, then swapped in together.

A prediction run writes up to three files. Checking them all first means an hour of
prediction is never lost to a typo in the last name; staging them all before moving any
into place means a failure on the second (a full disk, a PNG that cannot hold the ids)
never leaves the first behind, nor replaces a file the user already had. Old outputs
are moved aside as `atomic` siblings, so a run killed mid-swap is undone by the next
write to that folder (see io/atomic.py).
"""

from __future__ import annotations

import glob
import os
import tempfile
import uuid
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from napari_unet.errors import UserInputError
from napari_unet.io import atomic
from napari_unet.io.images import SUPPORTED_EXTENSIONS, write_array

STAGED = "staged"


def check_destination(path: str | os.PathLike) -> Path:
    """Refuse a destination that cannot be written, with the real reason, before any work starts.

    The folder is probed by creating a file in it: permission bits do not tell (root, ACLs,
    read-only mounts, immutable folders).
    """
    path = Path(path)
    folder = path.parent
    if not folder.is_dir():
        raise UserInputError(f"the folder for {path} does not exist: create it first")
    if path.is_dir() and path.suffix.lower() != ".zarr":
        raise UserInputError(f"{path} is a folder: give a file name")
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=folder)
    except OSError as error:
        raise UserInputError(f"cannot write to {folder}: {error.strerror or error}") from error
    os.close(fd)
    atomic.remove(Path(probe))
    return path


def check_image_outputs(paths: list[str | os.PathLike]) -> list[Path]:
    """Each output has a writable destination and a supported format, and no two are the same file."""
    checked = [check_destination(p) for p in paths]
    for path in checked:
        if path.suffix.lower() not in SUPPORTED_EXTENSIONS:
            raise UserInputError(
                f"unsupported file type '{path.suffix or path.name}' for {path}; "
                f"use one of {', '.join(SUPPORTED_EXTENSIONS)}"
            )
        recover(path)
    resolved = [p.resolve() for p in checked]
    for index, path in enumerate(resolved):
        if path in resolved[:index]:
            raise UserInputError(f"{checked[index]} is given for two outputs: give each its own file")
    return checked


def recover(path: Path) -> None:
    """Undo what a run killed mid-swap left next to `path`: put the user's file back, drop staged copies."""
    atomic.recover(path.parent)
    for stage in path.parent.glob(f".{glob.escape(path.name)}.{STAGED}-*"):
        atomic.remove(stage)


def write_outputs(outputs: Mapping[str | os.PathLike, np.ndarray]) -> None:
    """Write every (path, array) or none: stage all next to their targets, then swap all in.

    On any failure the staged copies are removed and every target is as it was before.
    """
    tag = f"{STAGED}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    staged: dict[Path, Path] = {}
    try:
        for path, array in outputs.items():
            path = Path(path)
            stage = path.with_name(f".{path.name}.{tag}{path.suffix}")  # the extension names the format
            write_array(stage, array, shown_as=path)
            staged[path] = stage
        _swap_all(staged)
    finally:
        for stage in staged.values():
            atomic.remove(stage)


def _swap_all(staged: dict[Path, Path]) -> None:
    """Move the staged files into place; any failure puts back what was there."""
    done: list[tuple[Path, Path | None]] = []
    try:
        for path, stage in staged.items():
            aside = None
            if path.exists() or path.is_symlink():
                aside = atomic.sibling(path, atomic.REPLACED)
                os.replace(path, aside)
            done.append((path, aside))
            os.replace(stage, path)
    except OSError as error:
        failed = path
        for path, aside in reversed(done):
            atomic.remove(path)
            if aside is not None:
                try:
                    os.replace(aside, path)
                except OSError:  # left as a `replaced` sibling: the next write puts it back
                    pass
        raise UserInputError(f"could not write {failed}: {error.strerror or error}") from error
    for _, aside in done:
        if aside is not None:
            atomic.remove(aside)
