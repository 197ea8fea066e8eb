"""Adding layers to a viewer with less work on the GUI thread.

napari does a lot for every layer it adds: a vispy visual per layer and per visible overlay (shaders
included), layer controls, a selection change that rebuilds them, a first read of the data. The Predict
click of a plane too big for memory adds three pyramid layers at once (`widgets/store_jobs.py`); these
helpers leave out what those layers do not need. Both use private napari API and, should it move, do
nothing (napari then does its usual work).
"""

from __future__ import annotations

from contextlib import contextmanager

from napari.layers import Labels


@contextmanager
def selection_kept(viewer):
    """Layers added inside are not selected one after the other, as napari does with every layer it adds:
    each selection change rebuilds the layer controls (about a sixth of adding a store's layers), and the
    user's own selection (the layer being painted or corrected) stays."""
    layers = viewer.layers
    activate = getattr(layers, "_activate_on_insert", None)  # private napari API: without it, napari selects
    if activate is not None:
        layers._activate_on_insert = False
    try:
        yield
    finally:
        if activate is not None:
            layers._activate_on_insert = activate


PAINT_OVERLAYS = ("polygon", "brush_stroke")  # napari's overlays of a Labels layer that only painting shows


def without_paint_overlays(layer: Labels) -> None:
    """Switch off the brush and polygon overlays of a pyramid (napari cannot paint on one) before it is added:
    napari builds a vispy visual, shaders and all, for every visible overlay of a layer it adds, and for the
    store's pyramid layers that was about half of the Predict click (600k -> 277k Python calls for three)."""
    overlays = getattr(layer, "_overlays", {})  # private napari API: if it moves, nothing is saved, nothing breaks
    for key in PAINT_OVERLAYS:
        if key in overlays:
            overlays[key].visible = False
