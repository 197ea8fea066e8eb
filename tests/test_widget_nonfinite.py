"""NaN / infinity in an image, said at the Train / Predict click in a real viewer (run under `xvfb-run -a`).

An in-memory image is checked where the job would read it (the annotated planes for Train, the
planes to predict for Predict), so no job starts; a lazy image keeps being checked by the job as
it reads each tile.
"""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from dock_helpers import TIMEOUT, load_untrained_model, predict, tiny_training  # noqa: E402

from napari_unet.widgets import UNetWidget  # noqa: E402


def test_nan_in_an_in_memory_image_is_said_at_the_click_and_only_where_a_job_would_read(
        make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer()
    widget = UNetWidget(viewer)
    viewer.window.add_dock_widget(widget)
    tiny_training(widget)
    data = np.random.default_rng(0).random((2, 32, 32)).astype(np.float32)
    data[1, 5, 7] = np.nan  # plane 1 only
    data[1, 9, 9] = np.inf
    viewer.add_image(data, name="img")
    qtbot.waitUntil(lambda: "img annotations" in viewer.layers, timeout=5_000)
    annotations = viewer.layers["img annotations"]
    annotations.data[1, :4] = 1
    annotations.data[1, -4:] = 2
    messages = widget.controller.messages

    widget.train()  # annotated plane 1 holds the NaN: refused at the click, no job
    assert not widget.controller.is_training
    assert "'img' plane 1 has 2 NaN or infinite values: replace them" in messages.errors()[-1]

    load_untrained_model(widget, tmp_path)
    viewer.dims.set_point(0, 0)
    assert predict(qtbot, widget, "plane") == "done"  # plane 0 is finite: predicted
    errors = len(messages.errors())
    widget.predict_step.predict("stack")  # every plane: plane 1 is refused at the click
    assert not widget.controller.is_predicting and len(messages.errors()) == errors + 1
    assert "'img' plane 1 has 2 NaN or infinite values" in messages.errors()[-1]

    viewer.add_image(np.full((32, 32), 0.5, np.float32), name="finite")  # finite floats: predicted
    widget.annotate_step.image_picker.set_layer(viewer.layers["finite"])
    assert predict(qtbot, widget, "plane") == "done"


def test_nan_in_a_lazy_image_is_still_found_by_the_job(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer()
    widget = UNetWidget(viewer)
    viewer.window.add_dock_widget(widget)
    data = np.random.default_rng(1).random((32, 32)).astype(np.float32)
    data[3, 3] = np.nan
    viewer.add_image(da.from_array(data, chunks=16), name="lazy")  # not read at the click
    load_untrained_model(widget, tmp_path)
    with qtbot.waitSignal(widget.controller.prediction_finished, timeout=TIMEOUT) as finished:
        widget.predict_step.predict("plane")
    assert finished.args == ["failed"]
    assert "NaN or infinite values" in widget.controller.messages.errors()[-1]
