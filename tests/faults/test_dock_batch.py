"""'Predict a folder' faults: the folder gone since it was chosen, files that cannot be predicted.

Before: a vanished folder ran a batch of one missing "image" and reported "1 failed" without a
reason; a file that failed in a folder batch was only counted, never named.
"""

from __future__ import annotations

import numpy as np
import tifffile
from dock_helpers import TIMEOUT, load_untrained_model

from napari_unet.widgets import UNetWidget


def _dock(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    widget = UNetWidget(viewer)
    viewer.window.add_dock_widget(widget)
    load_untrained_model(widget, tmp_path)
    return widget


def test_a_vanished_folder_is_refused_before_any_job_starts(make_napari_viewer, tmp_path):
    widget = _dock(make_napari_viewer, tmp_path)
    widget.predict_step.predict_folder(str(tmp_path / "moved away"), str(tmp_path / "out"))
    assert not widget.controller.is_predicting
    assert "moved away does not exist" in widget.controller.messages.errors()[-1]
    assert not (tmp_path / "out").exists()


def test_every_file_a_folder_batch_skips_is_named_with_its_reason(make_napari_viewer, qtbot, tmp_path):
    widget = _dock(make_napari_viewer, tmp_path)
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    tifffile.imwrite(folder / "good.tif", rng.random((48, 48)).astype(np.float32))
    holes = rng.random((48, 48)).astype(np.float32)
    holes[3, 3] = np.nan
    tifffile.imwrite(folder / "holes.tif", holes)
    (folder / "broken.tif").write_bytes(b"not a tiff")
    with qtbot.waitSignal(widget.controller.prediction_finished, timeout=TIMEOUT) as finished:
        widget.predict_step.predict_folder(str(folder), str(tmp_path / "out"))
    assert finished.args == ["done"]
    warnings = [text for level, text in widget.controller.messages.log if level == "warning"]
    assert any(text.startswith("skipped 'holes.tif': ") and "NaN" in text for text in warnings), warnings
    assert any(text.startswith("skipped 'broken.tif': could not read") for text in warnings), warnings
    assert "1 predicted" in warnings[-1] and "2 failed" in warnings[-1]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good_instances.tif", "good_semantic.tif"]
