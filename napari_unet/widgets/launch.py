"""Open napari with the napari-unet dock and, optionally, a sample or the user's images."""

from __future__ import annotations

from collections.abc import Sequence

import napari
from qtpy.QtCore import QTimer

from napari_unet.io.ome_zarr_dataset import is_napari_unet_dataset

PLUGIN = "napari-unet"
MAIN_WIDGET = "U-Net segmentation"
EXPORT_WIDGET = "Export dataset (OME-Zarr)"


def open_viewer(sample: str | None = "nuclei", paths: Sequence[str] = ()) -> napari.Viewer:
    """A viewer with the docks (workflow, export in a tab behind it) on the right and the requested data loaded (no event loop started)."""
    viewer = napari.Viewer(title="napari-unet")
    open_paths(viewer, paths)
    if sample:
        viewer.open_sample(PLUGIN, sample)
    main_dock, _ = viewer.window.add_plugin_dock_widget(PLUGIN, MAIN_WIDGET)
    viewer.window.add_plugin_dock_widget(PLUGIN, EXPORT_WIDGET, tabify=True)
    # A tab added last comes to the front, once Qt has built the dock tab bar: the workflow belongs there.
    QTimer.singleShot(0, main_dock.raise_)
    return viewer


def open_paths(viewer: napari.Viewer, paths: Sequence[str]) -> None:
    """Open napari-unet datasets with the plugin's reader, anything else with napari's."""
    for path in paths:
        viewer.open(path, plugin=PLUGIN if is_napari_unet_dataset(path) else "napari")


def launch(sample: str | None = "nuclei", paths: Sequence[str] = ()) -> None:
    open_viewer(sample, paths)
    napari.run()
