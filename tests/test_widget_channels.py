"""The dock on a two-channel image that napari opened as two layers: combined, trained, predicted."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from dock_helpers import predict, tiny_training, train  # noqa: E402
from synthetic import blobs  # noqa: E402

from napari_unet.napari import layers as lb  # noqa: E402
from napari_unet.widgets import UNetWidget  # noqa: E402


def test_two_channel_layers_train_a_two_channel_model_and_predict(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    nuclei, truth = blobs(64, n=6, noise=0.05)
    membrane = np.random.default_rng(1).normal(50, 10, nuclei.shape).astype(np.float32)
    viewer.add_image(np.stack([nuclei, membrane]), channel_axis=0, name="cells", scale=(0.5, 0.5),
                     translate=(7, 3))
    widget = UNetWidget(viewer)
    viewer.window.add_dock_widget(widget)
    step = widget.annotate_step
    tiny_training(widget, steps=2, batch=2)
    step.image_picker.set_layer(viewer.layers["cells"])
    messages = widget.controller.messages
    assert any("'cells', 'cells [1]' look like the channels of one image" in text for _, text in messages.log)
    assert step.combine_button.text() == "Combine 2"

    viewer.layers.selection.clear()
    step.combine_button.click()
    combined = viewer.layers["cells (2 channels)"]
    assert step.image_picker.layer() is combined and widget.controller.image is combined
    # the channels are no longer offered as images of their own
    assert step.image_picker.findText("cells") < 0 and step.image_picker.findText("cells [1]") < 0
    assert step.channel_combo.currentText() == "2 channel layers" and not step.channel_combo.isEnabled()
    qtbot.waitUntil(lambda: "cells (2 channels) annotations" in viewer.layers, timeout=5_000)
    annotations = viewer.layers["cells (2 channels) annotations"]
    assert annotations.data.shape == (64, 64)
    assert tuple(annotations.scale) == (0.5, 0.5) and tuple(annotations.translate) == (7, 3)
    annotations.data[truth == 0] = 1
    annotations.data[truth > 0] = 2
    assert train(qtbot, widget) is True, messages.errors()
    assert widget.controller.session.segmenter.config.in_channels == 2
    assert predict(qtbot, widget) == "done", messages.errors()
    semantic = viewer.layers["cells (2 channels) semantic"]
    assert semantic.data.shape == (64, 64) and np.all(semantic.data > 0)
    assert tuple(semantic.translate) == (7, 3)
    instances = viewer.layers["cells (2 channels) instances"]
    assert instances.data.shape == (64, 64) and lb.meta(instances)["image"] == "cells (2 channels)"


def test_combining_leaves_one_annotations_layer_to_paint(make_napari_viewer, qtbot):
    # Picking one channel layer first gives it an annotations layer; after Combine the combined image
    # has its own, and the channel's empty one goes (two layers named "... annotations" confuse the brush)
    viewer = make_napari_viewer()
    nuclei, _ = blobs(48, n=4, noise=0.05)
    viewer.add_image(np.stack([nuclei, nuclei[::-1]]), channel_axis=0, name="cells")
    widget = UNetWidget(viewer)
    viewer.window.add_dock_widget(widget)
    step = widget.annotate_step
    step.image_picker.set_layer(viewer.layers["cells"])
    qtbot.waitUntil(lambda: "cells annotations" in viewer.layers, timeout=5_000)
    viewer.layers.selection.clear()
    step.combine_button.click()
    qtbot.waitUntil(lambda: "cells (2 channels) annotations" in viewer.layers, timeout=5_000)
    assert "cells annotations" not in viewer.layers
    assert [layer.name for layer in viewer.layers if layer.name.endswith("annotations")] == [
        "cells (2 channels) annotations"]


def test_combining_layers_of_different_shapes_says_why(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((32, 32), np.float32), name="dapi")
    viewer.add_image(np.zeros((32, 40), np.float32), name="gfp")
    widget = UNetWidget(viewer)
    viewer.window.add_dock_widget(widget)
    step = widget.annotate_step
    assert step.combine_button.text() == "Combine"  # nothing detected: different names, no file
    step.combine_button.click()
    assert "select two or more image layers" in widget.controller.messages.errors()[-1]
    viewer.layers.selection.update({viewer.layers["dapi"], viewer.layers["gfp"]})
    step.combine_button.click()
    assert widget.controller.messages.errors()[-1] == \
        "'gfp' has shape (32, 40) but 'dapi' has (32, 32): channels of one image must have the same shape"
    assert not any(lb.is_channel_stack(layer) for layer in viewer.layers)  # nothing combined


def test_export_offers_the_combined_image_not_its_channels_even_after_a_channel_is_renamed(
        make_napari_viewer, napari_unet_plugin, qtbot):
    # After Combine, the user trains on one multichannel image: that is what Export offers. Renaming a
    # channel layer (say "cells [1]" -> "membrane") left it out of the combined image's list, so it came
    # back as an image of its own in the image picker and in Export.
    from napari_unet.widgets.launch import EXPORT_WIDGET, MAIN_WIDGET

    viewer = make_napari_viewer()
    nuclei, _ = blobs(48, n=4, noise=0.05)
    viewer.add_image(np.stack([nuclei, nuclei[::-1]]), channel_axis=0, name="cells")
    _, widget = viewer.window.add_plugin_dock_widget("napari-unet", MAIN_WIDGET)
    _, export = viewer.window.add_plugin_dock_widget("napari-unet", EXPORT_WIDGET, tabify=True)
    step = widget.annotate_step
    step.image_picker.set_layer(viewer.layers["cells"])
    viewer.layers.selection.clear()
    step.combine_button.click()
    qtbot.waitUntil(lambda: "cells (2 channels) annotations" in viewer.layers, timeout=5_000)

    def offered():
        pickable = [step.image_picker.itemText(i) for i in range(step.image_picker.count())]
        return pickable, [image for image, _ in export.tree._structure]

    assert offered() == (["cells (2 channels)"], ["cells (2 channels)"])
    viewer.layers["cells [1]"].name = "membrane"
    viewer.layers["cells"].name = "nuclei"
    assert offered() == (["cells (2 channels)"], ["cells (2 channels)"])
    combined = viewer.layers["cells (2 channels)"]
    assert lb.meta(combined)["channel_layers"] == ["nuclei", "membrane"]
