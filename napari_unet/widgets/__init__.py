"""napari widgets of napari-unet: the dock that runs the human-in-the-loop cycle, and the export dock.

`dock.UNetWidget` shows one widget per step (annotate_step, train_step, predict_step,
correct_step) over the viewer's `controller.Controller`; `export_widget.ExportWidget` finds
the same controller through `controller.controller_for(viewer)`. Imports Qt and napari; the
compute core (the rest of the package) never imports this.
"""

from napari_unet.widgets.dock import UNetWidget

__all__ = ["UNetWidget"]
