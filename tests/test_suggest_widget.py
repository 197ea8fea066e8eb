"""Uncertainty layer and "Suggest next" in a real napari viewer (run under `xvfb-run -a`)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from dock_helpers import TIMEOUT, predict, tiny_training, train  # noqa: E402

from napari_unet import conventions as c  # noqa: E402
from napari_unet.napari import layers as lb  # noqa: E402
from napari_unet.widgets import UNetWidget  # noqa: E402


def _dock(viewer, qtbot, steps: int = 3) -> UNetWidget:
    widget = UNetWidget(viewer)
    viewer.window.add_dock_widget(widget)
    tiny_training(widget, steps)
    return widget


def _train_and_predict(qtbot, widget, scope: str) -> None:
    assert train(qtbot, widget) is True
    assert predict(qtbot, widget, scope) == "done"


def _camera_centre_in_plane(viewer, image) -> np.ndarray:
    world = np.asarray(viewer.dims.point, float)
    world[-2:] = np.asarray(lb.camera_of(viewer).center, float)[-2:]
    return np.asarray(image.world_to_data(world))[-2:]


def test_uncertainty_layer_and_suggestions_walk_unannotated_regions(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    rng = np.random.default_rng(0)
    image = viewer.add_image(rng.random((256, 256)).astype(np.float32), name="img", scale=(0.5, 0.5))
    widget = _dock(viewer, qtbot)
    qtbot.waitUntil(lambda: "img annotations" in viewer.layers, timeout=5_000)
    annotations = viewer.layers["img annotations"]
    annotations.data[:128] = 1  # the top half is fully annotated: nothing to suggest there
    annotations.data[20:40, 20:40] = 2
    widget.predict_step.suggest()  # before any prediction: a message, no traceback
    assert "predict" in widget.controller.messages.log[-1][1]
    _train_and_predict(qtbot, widget, "plane")

    uncertainty = viewer.layers["img uncertainty"]
    assert lb.role_of(uncertainty) == c.ROLE_UNCERTAINTY
    assert uncertainty.data.shape == (256, 256) and uncertainty.data.dtype == np.uint8
    assert uncertainty.data.max() > 0  # painted: a 3-step model is unsure somewhere
    assert widget.annotate_step.image_picker.findText("img uncertainty") < 0  # not an image to segment
    assert widget.predict_step.suggest_button.isEnabled()
    # added hidden: a heat map over the image would hide the objects the user predicted for
    assert not uncertainty.visible and viewer.layers["img instances"].visible
    assert "Suggest next (Shift+N) points (and shows the uncertainty)" in widget.controller.messages.log[-1][1]

    from napari.components import ViewerModel

    shortcut = {str(k): f for k, f in ViewerModel.class_keymap.items()}["Shift+N"]  # a napari action
    seen = []
    for press in range(8):  # the bottom half: 2 x 4 regions of 64 px
        if press % 2:
            shortcut(viewer)
        else:
            widget.predict_step.suggest_button.click()
        region = widget.controller.suggestions.suggested[-1]
        assert uncertainty.visible  # asked where the model is unsure: shown
        assert region.top >= 128, "suggested an annotated region"
        assert np.allclose(_camera_centre_in_plane(viewer, image), region.centre, atol=1.0)
        seen.append(region.key)
    assert len(set(seen)) == 8  # never the same region twice
    scores = [r.score for r in widget.controller.suggestions.suggested]
    assert scores == sorted(scores, reverse=True)  # in order of need
    outlines = viewer.layers["img suggestions"]
    assert lb.role_of(outlines) == c.ROLE_SUGGESTIONS and len(outlines.data) == 8
    assert np.allclose(outlines.edge_color[-1], [1.0, 0.85, 0.0, 1.0])  # the newest stands out
    assert viewer.layers.selection.active is not outlines  # painting goes on in the layer the user had
    widget.suggest()  # every open region shown: it says so and starts over
    assert "starting over" in " ".join(text for _, text in widget.controller.messages.log[-2:])
    uncertainty.visible = False  # hidden again by the user: predicting again leaves it as it is
    assert predict(qtbot, widget, "plane") == "done"
    assert viewer.layers["img uncertainty"] is uncertainty and not uncertainty.visible


def test_suggestions_move_through_a_multichannel_stack_and_to_other_images(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    rng = np.random.default_rng(1)
    stack = rng.random((3, 2, 64, 64)).astype(np.float32)  # Z, C, Y, X
    viewer.add_image(stack, name="stack")
    widget = _dock(viewer, qtbot, steps=2)
    qtbot.waitUntil(lambda: "stack annotations" in viewer.layers, timeout=5_000)
    combo = widget.annotate_step.channel_combo
    combo.setCurrentIndex(combo.findData(1))
    annotations = viewer.layers["stack annotations"]
    assert annotations.data.shape == (3, 64, 64)
    annotations.data[0, :8] = 1
    annotations.data[0, -8:] = 2
    _train_and_predict(qtbot, widget, "stack")
    assert viewer.layers["stack uncertainty"].data.shape == (3, 64, 64)
    other = viewer.add_image(rng.random((2, 64, 64)).astype(np.float32), name="other")
    widget.annotate_step.image_picker.set_layer(other)
    qtbot.waitUntil(lambda: "other annotations" in viewer.layers, timeout=5_000)
    widget.annotate_step.channel_combo.setCurrentIndex(widget.annotate_step.channel_combo.findData(0))
    with qtbot.waitSignal(widget.controller.prediction_finished, timeout=TIMEOUT):
        widget.predict_step.predict("plane")

    regions = []
    for _ in range(4):  # one 64 px region per plane: 3 stack planes + the other image
        widget.suggest()
        region = widget.controller.suggestions.suggested[-1]
        regions.append(region)
        image = viewer.layers[region.image]
        layout = lb.layout_in(viewer, image)
        assert lb.current_plane(viewer, image, layout) == region.plane  # the slider moved to its plane
        assert widget.controller.image is image  # and the dock works on that image
    assert sorted((r.image, r.plane) for r in regions) == [("other", ()), ("stack", (0,)), ("stack", (1,)),
                                                          ("stack", (2,))]
    assert len(viewer.layers["stack suggestions"].data) == 3
