"""napari widgets of napari-unet: the dock that runs the human-in-the-loop cycle.

Imports Qt and napari; the compute core (the rest of the package) never imports this.
"""

from napari_unet.widgets.main_widget import UNetWidget

__all__ = ["UNetWidget"]
