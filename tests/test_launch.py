"""The README's launch path: napari with the dock and the sample data."""

from napari_unet.widgets import UNetWidget
from napari_unet.widgets.launch import MAIN_WIDGET, open_viewer


def test_gui_opens_with_dock_and_sample(qtbot, napari_unet_plugin):
    viewer = open_viewer("em")
    try:
        assert [layer.name for layer in viewer.layers] == ["EM membranes (ISBI 2012)",
                                                          "EM membranes (ISBI 2012) annotations"]
        docks = [w for name, w in viewer.window.dock_widgets.items() if MAIN_WIDGET in name]
        assert len(docks) == 1 and isinstance(docks[0], UNetWidget)
    finally:
        viewer.close()
