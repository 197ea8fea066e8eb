"""Which model the dock starts from, in a real napari viewer (run under `xvfb-run -a`).

The shipped nuclei model for a one-channel image (fine-tuned gently) unless a new one is chosen, a
pretrained model or a file remembered across launches, and the model a dataset was exported with.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from dock_helpers import train  # noqa: E402

from napari_unet import conventions as c  # noqa: E402
from napari_unet.nn.training import LEARNING_RATE, WARM_START_LEARNING_RATE  # noqa: E402
from napari_unet.widgets import UNetWidget  # noqa: E402


def test_a_one_channel_image_starts_from_the_shipped_nuclei_model_unless_new_is_chosen(nuclei_dock, qtbot):
    viewer, widget = nuclei_dock
    step = widget.train_step
    assert widget.controller.segmenter is None
    assert step.start_combo.currentText() == "pretrained: nuclei"
    assert train(qtbot, widget) is True
    history = widget.controller.session.segmenter.history
    assert len(history) >= 2 and history[-1]["steps"] == 3  # the shipped model's own training, then ours
    assert history[-1]["config"]["learning_rate"] == WARM_START_LEARNING_RATE  # fine-tuned gently
    assert any("starting from the shipped 'nuclei' model" in text for _, text in widget.controller.messages.log)

    step.start_combo.setCurrentText("new model")
    step._on_start_chosen()
    assert widget.controller.segmenter is None
    assert step.start_combo.currentText() == "new model"
    assert train(qtbot, widget) is True
    assert len(widget.controller.session.segmenter.history) == 1
    assert widget.controller.session.segmenter.history[-1]["config"]["learning_rate"] == LEARNING_RATE


def test_the_users_own_image_with_the_default_class_name_is_blended_back_to_nuclei(make_napari_viewer, qtbot):
    """The dock names a user's class 'object', nuclei's is 'nucleus': a rename, so the blend still applies."""
    from dock_helpers import tiny_training
    from synthetic import blobs

    viewer = make_napari_viewer()
    image, labels = blobs(96, n=8)
    layer = viewer.add_image(image, name="mine")
    widget = UNetWidget(viewer)
    viewer.window.add_dock_widget(widget)
    tiny_training(widget)
    widget.controller.select_image(layer)
    annotations = widget.controller.annotations_layer()
    assert widget.controller.class_names == list(c.DEFAULT_CLASS_NAMES)
    annotations.data = np.where(labels > 0, c.FIRST_CLASS, c.BACKGROUND).astype(annotations.data.dtype)
    assert widget.train_step.start_combo.currentText() == "pretrained: nuclei"
    assert train(qtbot, widget) is True
    model = widget.controller.session.segmenter
    assert model.class_names == list(c.DEFAULT_CLASS_NAMES) and model.history[-1]["blended_with_start"] == 0.5
    assert model.anchor is not None
    assert "moved 50% back to the start model's" in widget.controller.messages.log[-1][1]


def test_start_from_a_pretrained_model_and_from_a_new_one(make_napari_viewer, monkeypatch, tmp_path):
    from napari_unet.nn.model import ModelConfig
    from napari_unet.nn.segmenter import Segmenter
    from napari_unet.widgets import train_step, training_jobs

    path = Segmenter.create(ModelConfig(depth=2, base_width=4, n_classes=3), ["bg", "cell", "edge"]).save(
        tmp_path / "tiny.pt")
    for module in (train_step, training_jobs):
        monkeypatch.setattr(module, "available_models", lambda: ["tiny"])
    monkeypatch.setattr(training_jobs, "model_path", lambda name: path)
    widget = UNetWidget(make_napari_viewer())
    combo = widget.train_step.start_combo
    items = [combo.itemText(i) for i in range(combo.count())]
    assert items == ["new model", "pretrained: tiny", "file…"]
    combo.setCurrentText("pretrained: tiny")
    combo.activated.emit(combo.currentIndex())
    assert widget.controller.segmenter.class_names == ["bg", "cell", "edge"]
    assert combo.currentText() == "current model"
    widget.shutdown()
    again = UNetWidget(make_napari_viewer())  # the start model is a setting too
    assert again.controller.segmenter is not None
    assert again.controller.segmenter.class_names == ["bg", "cell", "edge"]
    combo = again.train_step.start_combo
    combo.setCurrentText("new model")
    combo.activated.emit(combo.currentIndex())
    assert again.controller.segmenter is None and combo.currentText() == "new model"
    # a model file: remembered by its path
    other = Segmenter.create(ModelConfig(depth=2, base_width=4), ["bg", "nucleus"]).save(tmp_path / "other.pt")
    monkeypatch.setattr(train_step.QFileDialog, "getOpenFileName", lambda *a, **k: (str(other), ""))
    combo.setCurrentText("file…")
    combo.activated.emit(combo.currentIndex())
    assert again.controller.segmenter.class_names == ["bg", "nucleus"]
    again.shutdown()
    third = UNetWidget(make_napari_viewer())
    assert third.controller.segmenter.class_names == ["bg", "nucleus"]


def test_reopened_dataset_brings_its_model(make_napari_viewer, tmp_path):
    from napari_unet.nn.model import ModelConfig
    from napari_unet.nn.segmenter import Segmenter

    path = Segmenter.create(ModelConfig(depth=2, base_width=4), ["background", "nucleus"]).save(tmp_path / "model.pt")
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((32, 32), np.float32), name="cells",
                     metadata={c.METADATA_KEY: {"model_path": str(path)}})  # what the dataset reader sets
    widget = UNetWidget(viewer)
    viewer.window.add_dock_widget(widget)
    assert widget.controller.segmenter is not None
    assert widget.controller.segmenter.class_names == ["background", "nucleus"]
    assert "loaded the model exported with 'cells'" in widget.controller.messages.last[1]
    assert widget.predict_step.predict_button.isEnabled()


def test_dataset_exported_with_its_model_reopens_with_it(make_napari_viewer, napari_unet_plugin, tmp_path):
    from napari_unet.nn.model import ModelConfig
    from napari_unet.nn.segmenter import Segmenter
    from napari_unet.widgets.export_widget import ExportWidget

    viewer = make_napari_viewer()
    viewer.add_image(np.random.default_rng(0).random((32, 32)).astype(np.float32), name="cells")
    widget = UNetWidget(viewer)
    viewer.window.add_dock_widget(widget)
    model = Segmenter.create(ModelConfig(depth=2, base_width=4), ["background", "nucleus"])
    widget.controller.session.set_model(model)
    export = ExportWidget(viewer)
    assert export.controller is widget.controller
    result = export.export_now(tmp_path, images=["cells"], include_model=True)
    assert result.ok and result.model_path == tmp_path / "model.pt"

    again = make_napari_viewer()
    again.open(str(result.written["cells"]), plugin="napari-unet")
    reopened = UNetWidget(again)
    again.window.add_dock_widget(reopened)
    assert reopened.controller.segmenter.fingerprint() == model.fingerprint()
    assert "loaded the model exported with 'cells'" in reopened.controller.messages.last[1]
