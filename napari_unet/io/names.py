"""The one rule that turns layer names into file and folder names."""

from __future__ import annotations

import re

_WINDOWS_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)),
                     *(f"lpt{i}" for i in range(1, 10))}


def safe_name(name: str, default: str = "image") -> str:
    """A file-system-safe name for a layer name ('cells 1/2' -> 'cells_1_2')."""
    text = re.sub(r"[^\w.\-]+", "_", str(name), flags=re.UNICODE)
    text = re.sub(r"_+", "_", text).strip("._ ")[:120]
    if not text:
        text = default
    if text.lower() in _WINDOWS_RESERVED:
        text += "_"
    return text


def unique_name(name: str, used: set[str], default: str = "labels") -> str:
    """`safe_name(name)`, suffixed _2, _3, ... to differ from `used` (case-insensitively,
    for case-insensitive file systems); the result is added to `used`."""
    base = safe_name(name, default)
    candidate, n = base, 2
    while candidate.lower() in used:
        candidate, n = f"{base}_{n}", n + 1
    used.add(candidate.lower())
    return candidate
