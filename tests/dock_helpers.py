"""Driving the napari-unet dock in GUI tests: tiny training settings, a tiny untrained model, and waits on the
dock's signals.

Every wait ends on a Qt signal (never a sleep); TIMEOUT is only a generous ceiling for a loaded
2-core machine. Imported by the dock's GUI tests and by conftest's `nuclei_dock` fixture.
"""

from __future__ import annotations

IMAGE = "nuclei (DSB2018)"  # the name of the nuclei sample's image layer
TIMEOUT = 90_000  # ms


def tiny_training(widget, steps: int = 3, batch: int = 4) -> None:
    """Settings that train in about a second on a CPU, with no live preview and no prediction after."""
    step = widget.train_step
    step.patch_spin.setValue(64)
    step.batch_spin.setValue(batch)
    step.steps_spin.setValue(steps)
    step.budget_spin.setValue(60)
    step.preview_spin.setValue(0)
    step.autopredict_check.setChecked(False)


def train(qtbot, widget) -> bool:
    """Train through the dock and wait for the end; True when training finished with a model."""
    with qtbot.waitSignal(widget.controller.training_finished, timeout=TIMEOUT) as blocker:
        widget.train()
    return blocker.args[0]


def predict(qtbot, widget, scope=None) -> str:
    """Predict through the predict step and wait for the end: "done", "cancelled" or "failed"."""
    with qtbot.waitSignal(widget.controller.prediction_finished, timeout=TIMEOUT) as blocker:
        widget.predict_step.predict(scope)
    return blocker.args[0]



def load_untrained_model(widget, folder):
    """Load a tiny untrained 1-channel model (background, cell) through the train step, as a user loads
    a file; returns the model the dock predicts with."""
    from napari_unet.nn.model import ModelConfig
    from napari_unet.nn.segmenter import Segmenter

    segmenter = Segmenter.create(ModelConfig(in_channels=1, n_classes=2, base_width=4, depth=2), ["background", "cell"])
    widget.train_step.load_model(segmenter.save(folder / "m.pt"))
    return widget.controller.session.segmenter
