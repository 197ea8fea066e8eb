"""Shared setup of the CLI fault suites: tiny real files, a real (untrained) model, and the verdict.

Every fault case runs the real command line in process and must end the same way: exit
status 2, exactly one line on stderr, no traceback, and no file in the folder created,
changed or removed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile
import torch

from napari_unet.cli import main
from napari_unet.nn.model import ModelConfig
from napari_unet.nn.segmenter import Segmenter

SIZE = 64
FAST = ["--steps", "1", "--patch-size", "32", "--batch-size", "1", "--device", "cpu", "--quiet"]


def make_files(folder: Path) -> Path:
    """img.tif, lbl.tif (instances), scribbles.npy, m.pt (a real model) and keep.tif (a user's file)."""
    rng = np.random.default_rng(0)
    labels = np.zeros((SIZE, SIZE), np.uint16)
    labels[8:20, 8:20], labels[30:44, 30:44] = 1, 2
    image = (labels > 0) * 100.0 + rng.normal(20, 5, labels.shape)
    tifffile.imwrite(folder / "img.tif", image.astype(np.float32))
    tifffile.imwrite(folder / "lbl.tif", labels)
    scribbles = np.where(labels > 0, 2, 1).astype(np.uint8)
    np.save(folder / "scribbles.npy", scribbles)
    torch.manual_seed(0)
    Segmenter.create(ModelConfig(depth=2, base_width=4), ["background", "object"]).save(folder / "m.pt")
    tifffile.imwrite(folder / "keep.tif", np.arange(16, dtype=np.uint8).reshape(4, 4))
    return folder


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every file and folder under `folder` with its bytes (None for folders)."""
    return {
        str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None)
        for p in sorted(folder.rglob("*"))
    }


def assert_clean_failure(argv: list[str], capsys, folder: Path) -> str:
    """Run the CLI and check the verdict of a handled fault; returns the error line."""
    before = snapshot(folder)
    status = main(argv)
    err = capsys.readouterr().err.strip()
    assert status == 2, f"exit {status}: {err}"
    assert "Traceback" not in err and "unexpected error" not in err, err
    assert len(err.splitlines()) == 1, err
    after = snapshot(folder)
    assert after == before, f"files changed: {sorted(set(after) ^ set(before)) or 'contents'}"
    return err
