"""The Predict step's instance sliders follow the model's tuned settings (real viewer, tiny real training)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from dock_helpers import IMAGE, tiny_training, train  # noqa: E402

from napari_unet.conventions import ACCEPTED_BACKGROUND  # noqa: E402
from napari_unet.functionals.instance_tuning import InstanceTuning  # noqa: E402
from napari_unet.functionals.instances import InstanceParams  # noqa: E402
from napari_unet.io.resources import NUCLEI_INSTANCES, read_tif  # noqa: E402
from napari_unet.napari import layers as lb  # noqa: E402
from napari_unet.nn.model import ModelConfig  # noqa: E402
from napari_unet.nn.segmenter import Segmenter  # noqa: E402
from napari_unet.widgets import UNetWidget  # noqa: E402


def test_sliders_move_to_the_tuned_settings_of_a_trained_or_loaded_model(make_napari_viewer, napari_unet_plugin,
                                                                          qtbot, tmp_path):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-unet", "nuclei")
    widget = UNetWidget(viewer)
    controller, step = widget.controller, widget.predict_step
    tiny_training(widget)
    image = viewer.layers[IMAGE]
    truth = np.asarray(read_tif(NUCLEI_INSTANCES)).astype(np.uint32)  # 125 nuclei, all accepted
    controller.accepted_layer(image, lb.layout_in(viewer, image), data=truth + ACCEPTED_BACKGROUND)
    step.border_slider.setValue(0.05)  # the user's own choice before training
    assert step.tuning_label.isHidden()

    assert train(qtbot, widget)
    assert [step for step, _ in widget.train_step.loss_plot.points] == [1, 2, 3]  # tuning adds no point of its own
    tuning = controller.segmenter.instance_tuning
    assert tuning is not None and tuning.tuned and tuning.objects == 125
    assert step.border_slider.value() == pytest.approx(tuning.params.border_evidence)
    assert step.threshold_slider.value() == pytest.approx(tuning.params.threshold)
    assert step.instance_params() == tuning.params
    assert "tuned on your annotations" in tuning.describe() and tuning.errors is not None
    # what was picked, then the mistakes left on the 125 accepted objects
    assert step.tuning_label.text() == f"{tuning.describe()}\n{tuning.describe_errors()}"
    assert tuning.describe_errors().startswith("On the 125 objects you outlined, which it learnt from: ")
    assert not step.tuning_label.isHidden()
    assert any("tuned on your annotations" in text for _, text in controller.messages.log)  # the finish message
    step.border_slider.setValue(0.9)  # still the user's to move
    assert step.instance_params().border_evidence == 0.9

    model = Segmenter.create(ModelConfig(depth=2, base_width=4), ["background", "nucleus"])
    picked = InstanceParams(threshold=0.4, min_size=20, seed_prominence=0.2, border_evidence=0.7, min_confidence=0.9)
    model.instance_tuning = InstanceTuning(picked, True, 0.8, 0.7, 300, 12)
    controller.load_model(model.save(tmp_path / "tuned.pt"))
    assert step.instance_params() == picked  # every setting, seed prominence and min confidence included
    assert step.prominence_slider.value() == pytest.approx(0.2)
    assert step.confidence_slider.value() == pytest.approx(0.9) and "min confidence 0.9" in step.tuning_label.text()
    assert "border evidence 0.7" in step.tuning_label.text() and "threshold 0.4" in step.tuning_label.text()
    step.border_slider.setValue(0.2)
    model.instance_tuning = None  # saved before tuning existed: the sliders stay where the user left them
    controller.load_model(model.save(tmp_path / "old.pt"))
    assert step.instance_params().border_evidence == 0.2 and step.tuning_label.text() == ""
