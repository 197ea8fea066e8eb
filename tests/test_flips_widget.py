"""The predict step's test-time flips: Predict uses them, the prediction right after training does not
(it stays as fast as the preview), and the choice persists (real viewer, tiny real model)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from dock_helpers import IMAGE, TIMEOUT  # noqa: E402

from napari_unet import conventions as c  # noqa: E402
from napari_unet.napari import layers as lb  # noqa: E402
from napari_unet.nn.model import ModelConfig  # noqa: E402
from napari_unet.nn.segmenter import Segmenter  # noqa: E402
from napari_unet.widgets import UNetWidget  # noqa: E402


def _predicted(qtbot, widget, run):
    with qtbot.waitSignal(widget.controller.prediction_finished, timeout=TIMEOUT) as blocker:
        run()
    assert blocker.args[0] == "done"
    provenance = lb.meta(widget.controller.paired(c.ROLE_INSTANCES))["provenance"]
    return provenance["test_time_flips"], widget.controller.session.cache.get(IMAGE, ()).prediction


def test_predict_uses_the_chosen_flips_and_training_s_own_prediction_one_pass(make_napari_viewer,
                                                                              napari_unet_plugin, qtbot, tmp_path):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-unet", "nuclei")
    widget = UNetWidget(viewer)
    step = widget.predict_step
    model = Segmenter.create(ModelConfig(depth=2, base_width=4), ["background", "nucleus"])  # no resizing
    widget.controller.load_model(model.save(tmp_path / "m.pt"))
    assert [step.flips_combo.itemText(i) for i in range(step.flips_combo.count())] == [
        "off", "2 passes", "4 passes", "8 passes"]
    assert step.flips_combo.currentText() == "off" and "live preview" in step.flips_combo.toolTip()

    step.flips_combo.setCurrentText("4 passes")
    flips, prediction = _predicted(qtbot, widget, lambda: step.predict("plane"))
    image = viewer.layers[IMAGE]
    plane = lb.image_plane(image, lb.layout_in(viewer, image), ())
    segmenter = widget.controller.segmenter
    assert flips == 4
    np.testing.assert_allclose(prediction.probabilities, segmenter.predict(plane, flips=4).probabilities, atol=1e-4)
    one = segmenter.predict(plane).probabilities
    assert np.abs(prediction.probabilities - one).max() > 1e-3

    flips, prediction = _predicted(qtbot, widget, lambda: widget._after_training(True))  # training just ended
    assert flips == 1
    np.testing.assert_allclose(prediction.probabilities, one, atol=1e-4)
    widget.shutdown()

    again = UNetWidget(make_napari_viewer())  # persisted with the other settings
    assert again.predict_step.test_time_flips() == 4
    again.shutdown()
