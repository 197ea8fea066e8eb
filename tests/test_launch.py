"""The README's launch path: napari with the dock and the sample data."""

from napari_unet.widgets import UNetWidget
from napari_unet.widgets.export_widget import ExportWidget
from napari_unet.widgets.launch import EXPORT_WIDGET, MAIN_WIDGET, open_viewer


def test_gui_opens_with_dock_and_sample(qtbot, napari_unet_plugin):
    viewer = open_viewer("em")
    try:
        assert [layer.name for layer in viewer.layers] == ["EM membranes (ISBI 2012)",
                                                          "EM membranes (ISBI 2012) annotations"]
        docks = [w for name, w in viewer.window.dock_widgets.items() if MAIN_WIDGET in name]
        assert len(docks) == 1 and isinstance(docks[0], UNetWidget)
        exports = [w for name, w in viewer.window.dock_widgets.items() if EXPORT_WIDGET in name]
        assert len(exports) == 1 and isinstance(exports[0], ExportWidget)
        assert exports[0].controller is docks[0].controller  # found through the per-viewer registry
        qtbot.wait(50)
        assert not docks[0].visibleRegion().isEmpty() and exports[0].visibleRegion().isEmpty()  # workflow in front
    finally:
        viewer.close()
