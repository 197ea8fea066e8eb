"""Regenerate the user guide's screenshots (docs/guide/*.png) and README's docs/screenshot.png.

    xvfb-run -a -s "-screen 0 1280x900x24" python3 docs/make_user_guide_screenshots.py [--seconds 90]

Drives one real napari window (1200x800) with the napari-unet docks through the whole loop
on the nuclei sample, as a user would with the mouse: open the sample, train on its scribbles
(live loss and preview), predict with the uncertainty layer, Suggest next, accept a corrected
rectangle, train again, export to OME-Zarr and BioImage.IO, predict with the exported package
from the command line, predict a 3D stack. After each step it saves
`viewer.screenshot(canvas_only=False)` as a 256-colour PNG (a few hundred KB at most).
The BioImage.IO step needs the `bioimageio` extra. Takes a few minutes on a CPU.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DOCS = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=90, help="budget of the first training (the second: half)")
    parser.add_argument("--size", default="1200x800", help="window size, WIDTHxHEIGHT")
    parser.add_argument("--out-dir", type=Path, default=DOCS / "guide")
    parser.add_argument("--readme", type=Path, default=DOCS / "screenshot.png", help="README's picture")
    args = parser.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    Guide(args).run()


class Guide:
    """One napari window, driven step by step through the dock's public methods."""

    def __init__(self, args) -> None:
        import napari
        from qtpy.QtWidgets import QApplication

        self.args = args
        self.work = Path(tempfile.mkdtemp(prefix="napari-unet-guide-"))
        os.environ["NAPARI_UNET_SETTINGS"] = str(self.work / "settings.ini")  # default settings, not the user's
        self.viewer = napari.Viewer(show=True)
        width, height = (int(n) for n in args.size.split("x"))
        self.viewer.window._qt_window.resize(width, height)
        self.app = QApplication.instance()
        self.docks = {}

    # --- helpers ----------------------------------------------------------------------------

    def settle(self, seconds: float = 1.5) -> None:
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            self.app.processEvents()
            time.sleep(0.02)

    def wait(self, signal, seconds: float) -> None:
        from qtpy.QtCore import QEventLoop, QTimer

        loop = QEventLoop()
        signal.connect(lambda *_: loop.quit())
        QTimer.singleShot(int(seconds * 1000), loop.quit)
        loop.exec_()

    def shot(self, name: str, path: Path | None = None) -> None:
        """Save the whole window as a small PNG; stop if the dock shows an error (a picture of a failure)."""
        from napari._qt.dialogs.qt_notification import NapariQtNotification
        from PIL import Image

        errors = self.dock.controller.messages.errors()
        if errors:
            raise SystemExit(f"{name}: the dock reported an error: {errors[-1]}")
        self.settle()
        for toast in self.app.allWidgets():  # notifications cover the canvas; the dock's message line shows them
            if isinstance(toast, NapariQtNotification):
                toast.hide()
        self.narrow_left_docks()
        rgba = self.viewer.screenshot(canvas_only=False, flash=False)
        picture = Image.fromarray(np.ascontiguousarray(rgba[..., :3]))
        picture = picture.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        path = path or self.args.out_dir / f"{name}.png"
        picture.save(path, optimize=True)
        print(f"wrote {path} ({path.stat().st_size // 1024} KB)", flush=True)

    def narrow_left_docks(self) -> None:
        """Give the canvas the width napari's layer controls and list do not need."""
        from qtpy.QtCore import Qt

        qt_viewer = self.viewer.window._qt_viewer
        self.viewer.window._qt_window.resizeDocks(
            [qt_viewer.dockLayerControls, qt_viewer.dockLayerList], [250, 250], Qt.Horizontal)
        self.settle(0.5)

    @property
    def camera(self):
        from napari_unet.napari import layers as lb

        return lb.camera_of(self.viewer)

    def tab(self, step: int) -> None:
        self.dock.tabs.setCurrentIndex(step - 1)

    def layer(self, role: str):
        """The selected image's Labels layer of that role (annotations, instances, ...)."""
        return self.dock.controller.paired(role)

    # --- the loop ---------------------------------------------------------------------------

    def run(self) -> None:
        self.open_sample()
        self.annotate()
        self.train()
        self.predict()
        self.suggest()
        self.correct()
        self.retrain()
        self.export()
        self.command_line()
        self.stack()
        print(f"work files in {self.work}")
        self.viewer.close()

    def open_sample(self) -> None:
        self.viewer.open_sample("napari-unet", "nuclei")
        self.docks["main"], self.dock = self.viewer.window.add_plugin_dock_widget(
            "napari-unet", "U-Net segmentation")
        self.tab(1)
        self.narrow_left_docks()  # before fitting the image to the canvas
        self.viewer.reset_view()
        self.shot("01-open")

    def annotate(self) -> None:
        self.dock.annotate_step.annotate()  # the annotations layer, selected, in paint mode
        annotations = self.layer("annotations")
        annotations.selected_label = 2
        annotations.brush_size = 6
        rows, cols = np.nonzero(np.asarray(annotations.data) == 2)
        first = np.argmin(rows)  # the top stroke of the nucleus class
        self.camera.center = (float(rows[first]) + 40, float(cols[first]))
        self.camera.zoom *= 2.5
        self.shot("02-annotate")
        annotations.mode = "pan_zoom"

    def train(self) -> None:
        step = self.dock.train_step
        step.budget_spin.setValue(self.args.seconds)
        step.steps_spin.setValue(0)
        step.preview_spin.setValue(3.0)
        step.autopredict_check.setChecked(False)
        self.viewer.reset_view()
        self.tab(2)
        self.dock.train()
        self.settle(self.args.seconds * 0.7)  # mid-training: live loss curve and preview
        self.shot("03-train")
        self.wait(self.dock.controller.training_finished, self.args.seconds + 300)

    def predict(self) -> None:
        self.dock.predict_step.uncertainty_check.setChecked(True)
        self.tab(3)
        self.dock.predict()
        self.wait(self.dock.controller.prediction_finished, 300)
        self.viewer.layers.selection.active = self.layer("instances")
        self.show_only_uncertainty(False)  # objects and classes; the next picture shows the uncertainty
        self.shot("04-predict")

    def show_only_uncertainty(self, only: bool) -> None:
        from napari_unet.napari import guidance
        from napari_unet.napari import layers as lb

        for role in ("instances", "semantic"):
            self.layer(role).visible = not only
        image = self.dock.controller.image
        guidance.uncertainty_layer(self.viewer, image, lb.layout_in(self.viewer, image), create=False).visible = only

    def suggest(self) -> None:
        self.show_only_uncertainty(True)
        self.dock.suggest()
        self.shot("05-suggest")
        self.show_only_uncertainty(False)

    def correct(self) -> None:
        from napari_unet.napari import layers as lb

        self.viewer.reset_view()
        step = self.dock.correct_step
        step.remove_small(60)  # a correction: fragments below 60 px go (accepting uncorrected warns)
        step.start_drawing("rectangle")
        shapes = next(layer for layer in self.viewer.layers if lb.role_of(layer) == "corrections")
        shapes.add_rectangles([np.array([[20, 20], [200, 230]], dtype=float)])
        step.accept("rectangle")
        self.tab(4)
        self.shot("06-correct")

    def retrain(self) -> None:
        step = self.dock.train_step
        step.budget_spin.setValue(max(5, self.args.seconds // 2))
        step.autopredict_check.setChecked(True)
        self.tab(2)
        self.dock.train()
        self.wait(self.dock.controller.training_finished, self.args.seconds + 300)
        self.wait(self.dock.controller.prediction_finished, 300)  # "predict after training"
        self.shot("07-retrain")
        self.viewer.layers.selection.active = self.layer("annotations")
        self.tab(3)
        self.shot("readme", self.args.readme)

    def export(self) -> None:
        self.docks["export"], export = self.viewer.window.add_plugin_dock_widget(
            "napari-unet", "Export dataset (OME-Zarr)", tabify=True)
        export.set_folder(self.work / "export")
        (self.work / "export").mkdir()
        export.export()
        self.wait(export.export_finished, 300)
        self.package = self.work / "nuclei-model.zip"
        export.bioimageio.export(self.package)
        self.wait(export.bioimageio.finished, 300)
        if export.bioimageio.last_path is None:
            raise SystemExit(f"BioImage.IO export failed: {export.last_message}")
        self.shot("08-export")
        self.docks["main"].raise_()

    def command_line(self) -> None:
        """`napari-unet predict` with the exported package, its outputs opened next to the image."""
        from napari_unet.io.resources import resource_path

        image = resource_path("nuclei_dsb2018_image.tif")
        out = self.work / "cli"
        out.mkdir()
        subprocess.run([sys.executable, "-m", "napari_unet", "predict", "--model", str(self.package),
                        "--image", str(image), "--instances", str(out / "nuclei_objects.tif"),
                        "--quiet"], check=True)
        self.viewer.layers.clear()
        self.viewer.open(image, name="nuclei.tif")
        self.viewer.open(out / "nuclei_objects.tif", layer_type="labels", name="nuclei_objects.tif")
        self.viewer.reset_view()
        self.shot("09-command-line")

    def stack(self) -> None:
        """A (Z, Y, X) stack predicted plane by plane with the current model, objects joined in 3D."""
        import tifffile

        from napari_unet.io.resources import resource_path

        plane = tifffile.imread(resource_path("nuclei_dsb2018_image.tif")).astype(np.float32)
        depth = 12
        weights = np.exp(-0.5 * ((np.arange(depth) - depth / 2) / (depth / 4)) ** 2)
        stack = weights[:, None, None] * plane[None, :256, :256]
        self.viewer.layers.clear()
        image = self.viewer.add_image(stack, name="stack", scale=(3, 1, 1))
        self.dock.annotate_step.image_picker.set_layer(image)
        self.dock.predict_step.scope_combo.setCurrentIndex(self.dock.predict_step.scope_combo.findData("stack"))
        self.tab(3)
        self.dock.predict()
        self.wait(self.dock.controller.prediction_finished, 600)
        for layer in list(self.viewer.layers):
            if layer.name != "stack" and "instances" not in layer.name:
                layer.visible = False
        self.viewer.dims.ndisplay = 3
        self.viewer.reset_view()
        self.camera.angles = (-20, 35, 145)
        self.camera.zoom *= 0.75
        self.viewer.layers.selection.active = self.viewer.layers["stack instances"]
        self.shot("10-stack")


if __name__ == "__main__":
    main()
