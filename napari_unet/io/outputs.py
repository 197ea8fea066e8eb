"""Several outputs written all or nothing: checked before any work, staged, then swapped in together.

A prediction run writes up to three files. Checking them all first means an hour of
prediction is never lost to a typo in the last name; staging them all before moving any
into place means a failure on the second (a full disk, a PNG that cannot hold the ids)
never leaves the first behind, nor replaces a file the user already had.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import tempfile
import uuid
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from napari_unet.errors import UserInputError
from napari_unet.io.images import SUPPORTED_EXTENSIONS, write_array


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
    with contextlib.suppress(OSError):
        os.unlink(probe)
    return path


def check_image_outputs(paths: list[str | os.PathLike]) -> list[Path]:
    """Each output has a writable destination and a supported format, and no two are the same file."""
    checked = [check_destination(p) for p in paths]
    for path in checked:
        recover(path)
    for path in checked:
        if path.suffix.lower() not in SUPPORTED_EXTENSIONS:
            raise UserInputError(
                f"unsupported file type '{path.suffix or path.name}' for {path}; "
                f"use one of {', '.join(SUPPORTED_EXTENSIONS)}"
            )
    resolved = [p.resolve() for p in checked]
    for index, path in enumerate(resolved):
        if path in resolved[:index]:
            raise UserInputError(f"{checked[index]} is given for two outputs: give each its own file")
    return checked


def write_outputs(outputs: Mapping[str | os.PathLike, np.ndarray]) -> None:
    """Write every (path, array) or none: stage all next to their targets, then swap all in.

    On any failure the staged copies are removed and every target is as it was before.
    """
    tag = uuid.uuid4().hex[:8]
    staged: dict[Path, Path] = {}
    try:
        for path, array in outputs.items():
            path = Path(path)
            stage = path.with_name(f".{path.name}.{tag}.staged{path.suffix}")
            write_array(stage, array)
            staged[path] = stage
        _swap_all(staged, tag)
    finally:
        for stage in staged.values():
            _remove(stage)


def recover(path: Path) -> None:
    """Undo what a run killed mid-swap left next to `path`: put the user's file back, drop staged copies."""
    for aside in sorted(path.parent.glob(f".{glob.escape(path.name)}.*.replaced")):
        with contextlib.suppress(OSError):
            if path.exists() or path.is_symlink():
                _remove(aside)
            else:
                os.replace(aside, path)
    for stage in path.parent.glob(f".{glob.escape(path.name)}.*.staged*"):
        _remove(stage)


def _swap_all(staged: dict[Path, Path], tag: str) -> None:
    """Move the staged files into place; any failure puts back what was there."""
    done: list[tuple[Path, Path | None]] = []
    try:
        for path, stage in staged.items():
            aside = None
            if path.exists() or path.is_symlink():
                aside = path.with_name(f".{path.name}.{tag}.replaced")
                os.replace(path, aside)
            done.append((path, aside))
            os.replace(stage, path)
    except OSError as error:
        failed = path
        for path, aside in reversed(done):
            with contextlib.suppress(OSError):
                _remove(path)
                if aside is not None:
                    os.replace(aside, path)
        raise UserInputError(f"could not write {failed}: {error.strerror or error}") from error
    for _, aside in done:
        if aside is not None:
            _remove(aside)


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
