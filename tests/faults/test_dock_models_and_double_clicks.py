"""Fault matrix rows in the dock: model files that do not fit, and buttons pressed twice or out of turn."""

from __future__ import annotations

import torch
from dock_helpers import TIMEOUT

from napari_unet.nn.model import ModelConfig
from napari_unet.nn.segmenter import Segmenter


def test_model_files_that_do_not_fit_are_refused_or_explained(nuclei_dock, qtbot, tmp_path):
    viewer, widget = nuclei_dock
    errors = widget.controller.messages.errors
    (tmp_path / "notes.pt").write_bytes(b"not a model")
    widget.train_step.load_model(str(tmp_path / "notes.pt"))
    assert "is not a napari-unet model checkpoint" in errors()[-1]
    rgb = Segmenter.create(ModelConfig(in_channels=3, n_classes=2, base_width=4, depth=2), ["background", "cell"])
    checkpoint = rgb.to_checkpoint()
    checkpoint["format_version"] = 99
    torch.save(checkpoint, tmp_path / "newer.pt")
    widget.train_step.load_model(str(tmp_path / "newer.pt"))
    assert "reads formats up to" in errors()[-1] and "update napari-unet" in errors()[-1]
    assert widget.controller.session.segmenter is None or widget.controller.session.segmenter.config.in_channels == 1

    widget.train_step.load_model(str(rgb.save(tmp_path / "rgb.pt")))  # loads: it is a good model, for RGB images
    widget.predict_step.predict()
    assert "the model takes 3 channel(s)" in errors()[-1] and not widget.controller.is_predicting
    with qtbot.waitSignal(widget.controller.training_finished, timeout=TIMEOUT) as finished:
        widget.train()
    assert finished.args == [False] and "start a new model" in errors()[-1]


def test_pressing_train_and_predict_twice_or_out_of_turn(nuclei_dock, qtbot, tmp_path):
    viewer, widget = nuclei_dock
    log = widget.controller.messages.log
    with qtbot.waitSignal(widget.controller.training_finished, timeout=TIMEOUT) as finished:
        widget.train()
        widget.train()
        assert log[-1] == ("info", "already training: press Stop (Shift+S) to end it")
        widget.predict_step.predict()
        assert log[-1][0] == "error" and "training is running" in log[-1][1]
    assert finished.args == [True]
    with qtbot.waitSignal(widget.controller.prediction_finished, timeout=TIMEOUT) as finished:
        widget.predict_step.predict()
        widget.predict_step.predict()
        assert log[-1] == ("info", "already predicting: Cancel stops it")
        widget.train()
        assert log[-1][0] == "error" and "a prediction is running" in log[-1][1]
    assert finished.args == ["done"]


def test_a_checkpoint_with_missing_weights_says_which(tmp_path):
    """torch's message starts "Error(s) in loading state_dict for UNet:" and names the keys on the next line."""
    import pytest

    from napari_unet.errors import UserInputError

    model = Segmenter.create(ModelConfig(base_width=4, depth=2), ["background", "cell"])
    checkpoint = model.to_checkpoint()
    first = next(iter(checkpoint["state_dict"]))
    del checkpoint["state_dict"][first]
    torch.save(checkpoint, tmp_path / "cut.pt")
    with pytest.raises(UserInputError, match="damaged or incompatible") as error:
        Segmenter.load(tmp_path / "cut.pt")
    assert "Missing key(s)" in str(error.value) and first in str(error.value) and "\n" not in str(error.value)
