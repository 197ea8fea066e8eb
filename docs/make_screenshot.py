"""Regenerate docs/screenshot.png: one human-in-the-loop cycle on the nuclei sample.

    xvfb-run -a python3 docs/make_screenshot.py [--seconds 40]

Opens napari with the napari-unet dock, trains on the sample's scribbles, predicts,
accepts the top-left quarter, and saves a screenshot of the whole window.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=40, help="training budget")
    parser.add_argument("--scroll", action="store_true", help="scroll the dock to its bottom (sections 3-4)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "screenshot.png")
    args = parser.parse_args()

    import napari
    from qtpy.QtCore import QEventLoop, QTimer
    from qtpy.QtWidgets import QApplication

    from napari_unet.napari import layers as lb

    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1500, 1050)
    viewer.open_sample("napari-unet", "nuclei")
    _, widget = viewer.window.add_plugin_dock_widget("napari-unet", "U-Net human-in-the-loop segmentation")
    app = QApplication.instance()

    def wait(signal, seconds: float) -> None:
        loop = QEventLoop()
        signal.connect(lambda *_: loop.quit())
        QTimer.singleShot(int(seconds * 1000), loop.quit)
        loop.exec_()

    widget.budget_spin.setValue(args.seconds)
    widget.autopredict_check.setChecked(False)
    widget.train()
    wait(widget.training_finished, args.seconds + 300)
    widget.predict()
    wait(widget.prediction_finished, 300)
    camera = lb.camera_of(viewer)
    widget.start_drawing("rectangle")
    shapes = [layer for layer in viewer.layers if lb.role_of(layer) == "corrections"][0]
    import numpy as np

    shapes.add_rectangles([np.array([[20, 20], [200, 230]], dtype=float)])
    widget.accept("rectangle")
    viewer.layers.selection.active = viewer.layers[widget.image_picker.currentText() + " annotations"]
    viewer.reset_view()
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < 2:
        app.processEvents()
        time.sleep(0.02)
    if args.scroll:
        from qtpy.QtWidgets import QScrollArea

        bar = widget.findChild(QScrollArea).verticalScrollBar()
        bar.setValue(bar.maximum())
        app.processEvents()
    viewer.screenshot(str(args.out), canvas_only=False, flash=False)
    print(f"wrote {args.out}")
    viewer.close()


if __name__ == "__main__":
    main()
