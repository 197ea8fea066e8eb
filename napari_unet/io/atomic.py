"""Crash-safe replacement of files and folders: the one copy of the atomic swap.

Every output of napari-unet (datasets, arrays, model checkpoints) is written to a hidden
sibling and then renamed into place, so a kill -9 at any instant leaves either the old or
the new output, never a half-written one. Hidden siblings are named after the target
and the writing process, ``.<name>.<kind>-<pid>-<random>``:

    writing   the new output being written (a file or a folder)
    replaced  the old output, moved aside between the two renames of a folder swap
    deleting  an old output being deleted after a successful swap

`recover(folder)` runs before every write (and costs one directory listing): siblings
of processes that are no longer running are finished off. A `replaced` copy is put
back when its target is missing (the swap died between its two renames) and deleted
otherwise; `writing` and `deleting` leftovers are deleted. A folder is renamed to
`deleting` before it is removed, so a half-deleted copy is never restored.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

from napari_unet.errors import UserInputError

LOGGER = logging.getLogger(__name__)

WRITING, REPLACED, DELETING = "writing", "replaced", "deleting"
_SIBLING = re.compile(r"^\.(?P<target>.+)\.(?P<kind>writing|replaced|deleting)-(?:(?P<pid>\d+)-)?[0-9a-f]{8}$")
# Names used before 0.1.1: temporary checkpoints and arrays (.<name>.<random>.tmp[.ext]) and
# arrays moved aside (.<name>.<random>.old); their writers recorded no process id.
_LEGACY = re.compile(r"^\.(?P<target>.+)\.[a-z0-9_]{8}\.(?:(?P<tmp>tmp)(?:\.\w+)?|old)$")


def sibling(path: Path, kind: str) -> Path:
    """A fresh hidden sibling of `path` of this kind, owned by this process."""
    return path.with_name(f".{path.name}.{kind}-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def recover(folder: str | os.PathLike) -> None:
    """Finish off what killed writes left in `folder` (see the module docstring)."""
    folder = Path(folder)
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return
    found = [(name, *_parse(name)) for name in names]
    # deleting first, then replaced (restores need the target state), then writing
    order = {DELETING: 0, REPLACED: 1, WRITING: 2}
    for name, target_name, kind, pid in sorted((f for f in found if f[2]), key=lambda f: order[f[2]]):
        if _alive(pid):
            continue
        leftover, target = folder / name, folder / target_name
        try:
            if kind == REPLACED and not _exists(target):
                LOGGER.warning("restoring %s: an earlier write was interrupted", target)
                os.replace(leftover, target)
            else:
                LOGGER.info("removing %s, left behind by an interrupted write", leftover)
                remove(leftover)
        except OSError as exc:  # a read-only folder, say: the write itself will tell
            LOGGER.warning("could not recover %s: %s", leftover, exc)


def replace(temp: Path, target: Path) -> None:
    """Move the finished `temp` to `target`, replacing what is there, crash-safely.

    A file over a file is one atomic rename. A folder (or a change between file and
    folder) takes two: the old target moves aside first and is deleted only after the
    new one is in place; a failed second rename puts the old target back.
    """
    if not _exists(target) or (target.is_file() and temp.is_file()):
        os.replace(temp, target)
        return
    aside = sibling(target, REPLACED)
    os.replace(target, aside)
    try:
        os.replace(temp, target)
    except BaseException:
        os.replace(aside, target)
        raise
    remove(aside)


def write_file(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Write a file (or folder) with `write(temp_path)` and move it into place atomically.

    Leftovers of killed writes beside `path` are cleaned first; on any error the
    temporary output is removed and `path` is unchanged.
    """
    path = Path(path)
    recover(path.parent)
    temp = sibling(path, WRITING)
    try:
        write(temp)
        replace(temp, path)
    finally:
        remove(temp)
    return path


def disk_error(exc: BaseException | None, path: Path, what: str = "export") -> UserInputError | None:
    """The user-fixable reason (full disk, read-only folder) in `exc` or its causes, else None."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError):
            unchanged = f" Nothing was changed at {path}."
            if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
                return UserInputError(
                    f"Not enough disk space to {what} {path.name}: free some space or choose "
                    "another location." + unchanged)
            if isinstance(exc, PermissionError) or exc.errno in (errno.EACCES, errno.EROFS):
                return UserInputError(
                    f"Cannot write to {path.parent} (permission denied or read-only): choose "
                    "another folder." + unchanged)
        exc = exc.__cause__ or exc.__context__
    return None


def _parse(name: str) -> tuple[str | None, str | None, str | None]:
    """(target name, kind, writer pid) of a hidden sibling's name; Nones for other names."""
    match = _SIBLING.match(name)
    if match:
        return match["target"], match["kind"], match["pid"]
    match = _LEGACY.match(name)
    if match:
        return match["target"], WRITING if match["tmp"] else REPLACED, None
    return None, None, None


def _exists(path: Path) -> bool:
    return path.exists() or path.is_symlink()


def remove(path: Path) -> None:
    """Remove a file or folder; a folder is first renamed to `deleting` (never restored)."""
    if path.is_dir() and not path.is_symlink():
        target, kind, _ = _parse(path.name)
        if kind != DELETING:
            doomed = sibling(path.with_name(target or path.name), DELETING)
            try:
                os.replace(path, doomed)
                path = doomed
            except OSError:
                pass
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            LOGGER.warning("could not remove %s: %s", path, exc)


def _alive(pid: str | None) -> bool:
    """Whether the writer process `pid` still runs (None: written by an older version)."""
    if pid is None:
        return False
    pid = int(pid)
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True
