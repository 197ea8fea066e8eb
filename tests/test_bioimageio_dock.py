"""The export dock's BioImage.IO action in a real napari viewer: the current model -> a package (xvfb-run -a)."""

from __future__ import annotations

import sys

import pytest
import torch

from napari_unet.nn.model import ModelConfig
from napari_unet.nn.segmenter import Segmenter
from napari_unet.widgets import settings
from napari_unet.widgets.controller import controller_for
from napari_unet.widgets.export_widget import ExportWidget

TIMEOUT = 120_000
CLASSES = ["background", "nucleus"]


@pytest.fixture
def out(tmp_path):
    """An empty folder for packages (tmp_path also holds the test's settings file)."""
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


@pytest.fixture
def dock(make_napari_viewer):
    viewer = make_napari_viewer()
    widget = ExportWidget(viewer)
    widget.confirm_overwrite = lambda path: pytest.fail(f"unexpected question about {path}")
    return viewer, widget


def _give_model(viewer) -> Segmenter:
    torch.manual_seed(0)
    model = Segmenter.create(ModelConfig(depth=2, base_width=4), list(CLASSES))
    model.history.append({"steps": 3, "loss": 0.5, "images": 1})
    controller = controller_for(viewer)
    controller.session.set_model(model)
    controller.model_changed.emit()
    return model


def test_without_a_model_the_action_says_so_and_writes_nothing(dock, out):
    _, widget = dock
    assert not widget.bioimageio.button.isEnabled()
    assert widget.bioimageio.export(out / "model.zip") is None
    assert "no model to share yet" in widget.last_message[1] and widget.last_message[0] == "error"
    assert list(out.iterdir()) == []


def test_without_the_extra_the_action_gives_the_install_command(dock, out, monkeypatch):
    viewer, widget = dock
    _give_model(viewer)
    monkeypatch.setitem(sys.modules, "bioimageio", None)  # what Python does for a package that is not there
    assert widget.bioimageio.export(out / "model.zip") is None
    level, text = widget.last_message
    assert level == "error" and "pip install 'napari-unet[bioimageio]'" in text
    assert list(out.iterdir()) == []


def test_dock_writes_the_current_model_as_a_package_through_the_scheduler(dock, qtbot, out):
    pytest.importorskip("bioimageio.spec", reason="BioImage.IO export needs the bioimageio extra")
    from bioimageio.spec import load_description

    viewer, widget = dock
    model = _give_model(viewer)
    settings.save("threshold", 0.35)  # the Predict step's instance parameters travel in the package
    assert widget.bioimageio.button.isEnabled()
    path = out / "shared.zip"
    progress = []
    with qtbot.waitSignal(widget.bioimageio.finished, timeout=TIMEOUT) as finished:
        worker = widget.bioimageio.export(path)
        worker.yielded.connect(lambda count: progress.append(count.done))
        assert worker in controller_for(viewer).scheduler.running() or worker.done.is_set()
        assert not widget.bioimageio.button.isEnabled()  # one package at a time
    assert finished.args[0] == path and path.is_file()
    assert progress and progress[-1] == 3 and widget.bioimageio.progress_bar.value() == 1000
    assert widget.last_message == ("info", f"BioImage.IO package saved to {path}")
    assert widget.bioimageio.button.isEnabled()

    description = load_description(path)
    config = description.config.model_extra["napari_unet"]
    assert config["class_names"] == CLASSES and config["instance_parameters"]["threshold"] == 0.35
    assert Segmenter.load(path).fingerprint() == model.fingerprint()  # napari-unet opens it again as the model
    assert [p.name for p in out.iterdir()] == ["shared.zip"]  # no staged file left


def test_a_bad_name_and_a_kept_file_write_nothing(dock, out):
    pytest.importorskip("bioimageio.spec", reason="BioImage.IO export needs the bioimageio extra")
    viewer, widget = dock
    _give_model(viewer)
    assert widget.bioimageio.export(out / "model.bioimage") is None
    assert ".zip" in widget.last_message[1] and list(out.iterdir()) == []

    existing = out / "model.zip"
    existing.write_bytes(b"keep me")
    asked = []
    widget.confirm_overwrite = lambda path: asked.append(path) or False
    assert widget.bioimageio.export(existing) is None
    assert asked == [existing] and existing.read_bytes() == b"keep me"
