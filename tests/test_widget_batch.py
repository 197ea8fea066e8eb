"""The dock's batch: "Predict all open images" and "Predict a folder" through nn.batch (dask.distributed)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

import tifffile  # noqa: E402
from dock_helpers import load_untrained_model  # noqa: E402
from synthetic import blobs  # noqa: E402

from napari_unet.functionals.instances import InstanceParams  # noqa: E402
from napari_unet.functionals.layout import ImageLayout  # noqa: E402
from napari_unet.nn.volume import predict_image  # noqa: E402
from napari_unet.widgets import UNetWidget  # noqa: E402

TIMEOUT = 120_000


def _dock(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    widget = UNetWidget(viewer)
    viewer.window.add_dock_widget(widget)
    return viewer, widget, load_untrained_model(widget, tmp_path)


def _run(qtbot, widget, start) -> list:
    records = []
    widget.controller.batch_progress.connect(records.append)
    with qtbot.waitSignal(widget.controller.prediction_finished, timeout=TIMEOUT) as finished:
        start()
    assert finished.args[0] == "done"
    qtbot.waitUntil(lambda: not widget.controller.is_predicting, timeout=TIMEOUT)
    return records


@pytest.mark.slow
def test_predict_all_open_images_adds_their_layers_and_skips_a_bad_one(make_napari_viewer, qtbot, tmp_path):
    viewer, widget, segmenter = _dock(make_napari_viewer, tmp_path)
    first, _ = blobs(64, n=6, seed=1)
    second, _ = blobs(80, n=8, seed=2)
    viewer.add_image(first, name="first")
    viewer.add_image(second, name="second")
    viewer.add_image(np.zeros((40, 40, 3), np.uint8), name="colour", rgb=True)  # 3 channels: the model takes 1
    # an untrained model: its brightest fifth of foreground makes objects
    foreground = segmenter.predict(first[None]).foreground()
    params = InstanceParams(threshold=float(np.quantile(foreground, 0.8)), min_size=1)  # finer than the slider
    records = _run(qtbot, widget, lambda: widget.controller.predict_open_images(params))

    assert sorted((r.name, r.status) for r in records) == [("colour", "failed"), ("first", "written"),
                                                           ("second", "written")]
    assert records[-1].done == records[-1].total == 3
    for name, image in (("first", first), ("second", second)):
        expected = predict_image(segmenter, image, ImageLayout.of(image.shape), params)
        assert expected.instances.max() > 0
        assert np.array_equal(viewer.layers[f"{name} instances"].data, expected.instances)
        assert np.array_equal(viewer.layers[f"{name} semantic"].data, expected.semantic)
    assert "colour instances" not in viewer.layers
    log = widget.controller.messages.log
    assert any("skipped 'colour'" in text and "channel" in text for _, text in log)
    assert "2 predicted" in widget.controller.messages.last[1] and "1 failed" in widget.controller.messages.last[1]

    # Cancel stops the batch: the job ends as cancelled, the dock is free again
    with qtbot.waitSignal(widget.controller.prediction_finished, timeout=TIMEOUT) as finished:
        widget.predict_step.open_images_button.click()
        widget.predict_step.cancel_button.click()
    assert finished.args[0] == "cancelled"
    qtbot.waitUntil(lambda: widget.predict_step.open_images_button.isEnabled(), timeout=TIMEOUT)


@pytest.mark.slow
def test_predict_a_folder_writes_every_good_image_and_reports_the_bad_file(make_napari_viewer, qtbot, tmp_path):
    _, widget, segmenter = _dock(make_napari_viewer, tmp_path)
    folder, out = tmp_path / "images", tmp_path / "predicted"
    folder.mkdir()
    images = {name: blobs(size, n=5, seed=size)[0] for name, size in (("a", 48), ("b", 56))}
    for name, image in images.items():
        tifffile.imwrite(folder / f"{name}.tif", image)
    (folder / "broken.tif").write_bytes(b"not a tiff")
    records = _run(qtbot, widget, lambda: widget.predict_step.predict_folder(str(folder), str(out)))

    assert records[-1].done == records[-1].total == 3
    for name, image in images.items():
        expected = predict_image(segmenter, image, ImageLayout.of(image.shape), widget.predict_step.instance_params())
        assert np.array_equal(tifffile.imread(out / f"{name}_instances.tif"), expected.instances)
        assert np.array_equal(tifffile.imread(out / f"{name}_semantic.tif"), expected.semantic)
    assert not list(out.glob("broken*"))
    assert "2 predicted" in widget.controller.messages.last[1] and "1 failed" in widget.controller.messages.last[1]
