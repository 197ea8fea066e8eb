"""napari's asynchronous slicing: whether it reads the tiles of a big image off the GUI thread.

napari reads and colours the part of each layer it draws. With its experimental setting "Render
Layers Asynchronously" off (the default) that read runs on the GUI thread at every pan and zoom: on a
32768^2 pyramid read from zarr it froze the viewer up to 317 ms a move with no plugin work at all,
1.1 s while the dock's prediction shared the CPU; with it on, 37-67 ms and 62-99 ms (BENCHMARKS.md
section 9). The dock cannot read layers for napari, so it tells the user where the setting is; the
`napari-unet gui` launcher turns it on for its own session (`NAPARI_ASYNC`, never saved).
"""

from __future__ import annotations

from napari.settings import get_settings

ASYNC_ENVIRONMENT = "NAPARI_ASYNC"  # read by napari's settings at start; not written to the user's settings file
ASYNC_HINT = ("browsing a big image stays smooth when napari reads it on its own thread: turn on "
              "'Render Layers Asynchronously' in napari's Preferences > Experimental")


def reads_asynchronously() -> bool:
    """Whether napari slices layers on its own thread (its Preferences > Experimental setting)."""
    return bool(get_settings().experimental.async_)
