"""Crash safety: a writer killed (SIGKILL) at each step of an atomic replace leaves the old
or the new output, and the next run recovers or cleans what the kill left behind.

The kill is injected deterministically: a child process runs the real write with one
file-system call replaced by "kill myself with SIGKILL on the n-th call" (no timing).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from napari_unet.conventions import ROLE_ANNOTATIONS
from napari_unet.errors import UserInputError
from napari_unet.io import atomic
from napari_unet.io import ome_zarr_dataset as io
from napari_unet.io.images import read_image, write_array

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")

KILLER = """
import os, signal, sys
calls = {"n": 0}
def killing(real, at, folder):
    def wrapper(*args, **kwargs):
        if folder and os.path.dirname(os.fspath(args[0])) != folder:
            return real(*args, **kwargs)  # not a rename in the output folder (zarr's own)
        if real.__name__ == "unlink" and "dir_fd" not in kwargs:
            return real(*args, **kwargs)  # zarr's own clean-up, not a folder being deleted
        calls["n"] += 1
        if calls["n"] == at:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(*args, **kwargs)
    return wrapper
"""


def _run_killed(body: str, patch: str, at: int, folder=None) -> None:
    """Run `body` in a child with `patch` ("module:Owner.function") killing it on call `at`
    (counting only calls on paths directly in `folder`, if given)."""
    module, attribute = patch.split(":")
    owner, _, name = attribute.rpartition(".")
    owner_expr = f"target_module.{owner}" if owner else "target_module"
    script = KILLER + textwrap.dedent(f"""
        import {module} as target_module
        {owner_expr}.{name} = killing({owner_expr}.{name}, {at}, {str(folder) if folder else None!r})
    """) + textwrap.dedent(body)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]


def _dataset(path, value: int, overwrite=False):
    image = np.full((1300, 1100), value, np.uint16)  # two levels, several chunks
    ann = np.zeros(image.shape, np.uint8)
    ann[:10, :10] = 2
    return io.write_dataset(path, io.ImageEntry(image, name="img"),
                            [io.LabelsEntry(ann, "img annotations", role=ROLE_ANNOTATIONS)],
                            overwrite=overwrite)


DATASET_BODY = """
import numpy as np
from napari_unet.io import ome_zarr_dataset as io
image = np.full((1300, 1100), 9, np.uint16)
io.write_dataset({path!r}, io.ImageEntry(image, name="img"),
                 [io.LabelsEntry(np.zeros(image.shape, np.uint8), "img annotations")], overwrite=True)
"""

# (function to kill in, on which call, what the kill leaves beside the dataset, the value
# the dataset holds after recovery)
STEPS = {
    "while writing chunks": ("zarr.storage:LocalStore.set", 12, [".writing-"], 7),
    "before moving the old dataset aside": ("os:replace", 1, [".writing-"], 7),
    "between the two renames": ("os:replace", 2, [".replaced-", ".writing-"], 7),
    "after the swap, before deleting the old copy": ("os:replace", 3, [".replaced-"], 9),
    "while deleting the old copy": ("os:unlink", 5, [".deleting-"], 9),
}


@pytest.mark.slow
@pytest.mark.parametrize("step", list(STEPS))
def test_dataset_replace_killed_at_each_step(tmp_path, step):
    patch, at, left, expected = STEPS[step]
    path = _dataset(tmp_path / "cells.zarr", 7)
    _run_killed(DATASET_BODY.format(path=str(path)), patch, at, tmp_path if patch == "os:replace" else None)
    leftovers = sorted(p.name for p in tmp_path.iterdir() if p.name != "cells.zarr")
    assert sorted(kind for kind in left for name in leftovers if kind in name) == sorted(left), leftovers

    atomic.recover(tmp_path)  # what every later write does first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cells.zarr"]
    image, labels, _ = io.read_dataset(path)
    assert int(image.data[0, 0].compute()) == expected
    assert [e.name for e in labels] == ["img annotations"]

    # later exports to the same path are not blocked
    _dataset(path, 11, overwrite=True)
    assert int(io.read_dataset(path)[0].data[0, 0].compute()) == 11
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cells.zarr"]


@pytest.mark.slow
def test_next_export_recovers_a_dataset_left_between_the_renames(tmp_path):
    path = _dataset(tmp_path / "cells.zarr", 7)
    _run_killed(DATASET_BODY.format(path=str(path)), "os:replace", 2, tmp_path)
    assert not path.exists()  # the old dataset is hidden aside, the new one unfinished
    with pytest.raises(UserInputError, match="already exists"):
        _dataset(path, 11)  # the next run puts the old dataset back first, then refuses
    assert int(io.read_dataset(path)[0].data[0, 0].compute()) == 7


@pytest.mark.slow
def test_opening_a_dataset_hidden_by_a_killed_write_restores_it(tmp_path):
    path = _dataset(tmp_path / "cells.zarr", 7)
    _run_killed(DATASET_BODY.format(path=str(path)), "os:replace", 2, tmp_path)
    assert not path.exists()
    image, labels, _ = io.read_dataset(path)
    assert int(image.data[0, 0].compute()) == 7 and labels[0].role == ROLE_ANNOTATIONS


def test_read_only_destination_gives_the_real_reason(tmp_path, monkeypatch):
    import errno

    import zarr

    path = _dataset(tmp_path / "cells.zarr", 7)

    async def read_only(self, key, value):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(zarr.storage.LocalStore, "set", read_only)
    with pytest.raises(UserInputError, match="permission denied or read-only"):
        _dataset(path, 9, overwrite=True)
    with pytest.raises(UserInputError, match="permission denied or read-only"):
        write_array(tmp_path / "out.zarr", np.zeros((4, 4)))
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cells.zarr"]
    assert int(io.read_dataset(path)[0].data[0, 0].compute()) == 7


def test_half_deleted_copy_never_comes_back(tmp_path):
    """A copy being deleted is renamed first: even with the target gone it stays dead."""
    path = _dataset(tmp_path / "cells.zarr", 7)
    doomed = atomic.sibling(path, atomic.DELETING)
    os.rename(path, doomed.with_name(doomed.name.replace(str(os.getpid()), "999999999")))
    atomic.recover(tmp_path)
    assert list(tmp_path.iterdir()) == []
    _dataset(path, 11)  # nothing blocks a new export
    assert int(io.read_dataset(path)[0].data[0, 0].compute()) == 11


def test_leftovers_of_a_running_writer_are_left_alone(tmp_path):
    path = _dataset(tmp_path / "cells.zarr", 7)
    mine = atomic.sibling(path, atomic.WRITING)  # this process is alive
    mine.mkdir()
    atomic.recover(tmp_path)
    assert mine.exists()


ARRAY_BODY = """
import numpy as np
from napari_unet.io.images import write_array
write_array({path!r}, np.full((2000, 2000), 9, np.uint16))
"""


@pytest.mark.slow
@pytest.mark.parametrize("name, patch, at, expected", [
    ("out.tif", "os:replace", 1, 7),
    ("out.zarr", "zarr.storage:LocalStore.set", 3, 7),
    ("out.zarr", "os:replace", 2, 7),
    ("out.zarr", "os:unlink", 2, 9),
])
def test_array_write_killed(tmp_path, name, patch, at, expected):
    path = tmp_path / name
    write_array(path, np.full((2000, 2000), 7, np.uint16))
    _run_killed(ARRAY_BODY.format(path=str(path)), patch, at, tmp_path if patch == "os:replace" else None)
    write_array(tmp_path / "other.npy", np.zeros(3))  # the next run cleans the folder first
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([name, "other.npy"])
    assert int(np.asarray(read_image(path))[0, 0]) == expected


CHECKPOINT_BODY = """
from napari_unet.nn.model import ModelConfig
from napari_unet.nn.segmenter import Segmenter
Segmenter.create(ModelConfig(depth=2, base_width=4, n_classes=2), ["background", "cell"]).save({path!r})
"""


@pytest.mark.slow
def test_killed_checkpoint_save_leaves_no_tmp_file_after_the_next_save(tmp_path):
    from napari_unet.nn.model import ModelConfig
    from napari_unet.nn.segmenter import Segmenter

    path = tmp_path / "model.pt"
    path.write_bytes(b"old")
    _run_killed(CHECKPOINT_BODY.format(path=str(path)), "os:replace", 1, tmp_path)
    assert len(list(tmp_path.iterdir())) == 2  # the unfinished temporary file
    (tmp_path / ".model.pt.k3j_x9a2.tmp").write_bytes(b"x")  # as napari-unet 0.1.0 left them
    assert path.read_bytes() == b"old"
    model = Segmenter.create(ModelConfig(depth=2, base_width=4, n_classes=2), ["background", "cell"])
    model.save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]
    assert Segmenter.load(path).fingerprint() == model.fingerprint()
