"""The one chunking policy for every zarr array napari-unet writes (datasets and arrays)."""

from __future__ import annotations

PLANE_CHUNK = 1024  # chunk edge along y and x
CHUNK_ELEMENTS = 2**20  # about this many elements per chunk (z grows for small planes)
MAX_WHOLE_CHANNELS = 4  # up to this many channels (RGB(A)) share a chunk


def chunk_shape(shape: tuple[int, ...], axes: str) -> tuple[int, ...]:
    """Chunks for an array with these axis names (from "tczyx").

    y and x: tiles of up to PLANE_CHUNK; c: whole up to MAX_WHOLE_CHANNELS, else one
    channel; t: one time point; z: grown so that a chunk holds about CHUNK_ELEMENTS.
    """
    plane = 1
    chunks: list[int | None] = []
    for name, size in zip(axes, shape):
        if name in "yx":
            chunks.append(max(1, min(PLANE_CHUNK, size)))
            plane *= chunks[-1]
        elif name == "c":
            chunks.append(size if size <= MAX_WHOLE_CHANNELS else 1)
            plane *= chunks[-1]
        else:
            chunks.append(None if name == "z" else 1)
    z = max(1, CHUNK_ELEMENTS // plane)
    return tuple(max(1, min(z, s)) if c is None else c for c, s in zip(chunks, shape))


def guess_axes(shape: tuple[int, ...]) -> str:
    """Axis names for an unnamed array: the last two axes longer than MAX_WHOLE_CHANNELS
    are the plane (y, x), other short axes channels, the rest stacked planes (z)."""
    plane = [i for i, n in enumerate(shape) if n > MAX_WHOLE_CHANNELS][-2:]
    names = iter("yx"[2 - len(plane):])
    return "".join(next(names) if i in plane else ("c" if n <= MAX_WHOLE_CHANNELS else "z")
                   for i, n in enumerate(shape))
