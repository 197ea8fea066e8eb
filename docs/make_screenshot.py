"""Regenerate docs/screenshot.png: one human-in-the-loop cycle on the nuclei sample.

    xvfb-run -a -s "-screen 0 1366x768x24" python3 docs/make_screenshot.py [--seconds 40] [--steps N] [--tab 4]

Opens napari (1366x768, a common laptop screen) with the napari-unet dock, trains on the
sample's scribbles, predicts, accepts a rectangle, and saves a screenshot of the whole
window with the chosen step's tab in front.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=40, help="training budget")
    parser.add_argument("--steps", type=int, default=0, help="stop after this many steps (0: the budget decides)")
    parser.add_argument("--tab", type=int, default=3, choices=[1, 2, 3, 4], help="the step shown in the dock")
    parser.add_argument("--size", default="1366x768", help="window size, WIDTHxHEIGHT")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "screenshot.png")
    args = parser.parse_args()

    import napari
    from qtpy.QtCore import QEventLoop, QTimer
    from qtpy.QtWidgets import QApplication

    from napari_unet.napari import layers as lb

    viewer = napari.Viewer(show=True)
    width, height = (int(n) for n in args.size.split("x"))
    viewer.window._qt_window.resize(width, height)
    viewer.open_sample("napari-unet", "nuclei")
    _, widget = viewer.window.add_plugin_dock_widget("napari-unet", "U-Net human-in-the-loop segmentation")
    app = QApplication.instance()

    def wait(signal, seconds: float) -> None:
        loop = QEventLoop()
        signal.connect(lambda *_: loop.quit())
        QTimer.singleShot(int(seconds * 1000), loop.quit)
        loop.exec_()

    widget.train_step.budget_spin.setValue(args.seconds)
    widget.train_step.steps_spin.setValue(args.steps)
    widget.train_step.autopredict_check.setChecked(False)
    widget.train()
    wait(widget.controller.training_finished, args.seconds + 300)
    widget.predict()
    wait(widget.controller.prediction_finished, 300)
    widget.correct_step.start_drawing("rectangle")
    shapes = [layer for layer in viewer.layers if lb.role_of(layer) == "corrections"][0]
    import numpy as np

    shapes.add_rectangles([np.array([[20, 20], [200, 230]], dtype=float)])
    widget.correct_step.accept("rectangle")
    viewer.layers.selection.active = viewer.layers[widget.annotate_step.image_picker.currentText() + " annotations"]
    widget.tabs.setCurrentIndex(args.tab - 1)
    viewer.reset_view()
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < 2:
        app.processEvents()
        time.sleep(0.02)
    viewer.screenshot(str(args.out), canvas_only=False, flash=False)
    print(f"wrote {args.out}")
    viewer.close()


if __name__ == "__main__":
    main()
