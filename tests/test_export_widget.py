"""Export dock in a real napari viewer, on a real zarr store (run under xvfb-run -a)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from napari_unet.conventions import (
    METADATA_KEY,
    ROLE_ACCEPTED,
    ROLE_ANNOTATIONS,
    ROLE_INSTANCES,
    ROLE_SEMANTIC,
)
from napari_unet.io import export as ex
from napari_unet.io import ome_zarr_dataset as io
from napari_unet.io.names import safe_name
from napari_unet.widgets.export_widget import ExportWidget

CLASSES = ["background", "nucleus", "debris"]
TIMEOUT = 60_000


def _add_image_with_labels(viewer, name, shape, seed, big_ids=False):
    rng = np.random.default_rng(seed)
    image = viewer.add_image(rng.normal(100, 20, shape).astype(np.float32), name=name)
    annotations = np.zeros(shape, np.uint8)
    annotations[2:6, 2:20] = 1
    annotations[10:14, 5:25] = 2
    annotations[20:22, 3:8] = 3
    semantic = np.ones(shape, np.uint8)
    semantic[10:20, 5:25] = 2
    instances = np.zeros(shape, np.uint32)
    instances[10:20, 5:12] = 70_000 if big_ids else 1
    instances[10:20, 14:25] = 4_000_000_000 if big_ids else 2
    accepted = np.zeros(shape, np.uint32)
    accepted[8:22] = 1
    accepted[10:20, 5:12] = 2
    layers = {}
    for role, data in [(ROLE_ANNOTATIONS, annotations), (ROLE_SEMANTIC, semantic),
                       (ROLE_INSTANCES, instances), (ROLE_ACCEPTED, accepted)]:
        own = {"role": role, "image": name}
        if role in (ROLE_ANNOTATIONS, ROLE_SEMANTIC):
            own["class_names"] = list(CLASSES)
        if role in (ROLE_SEMANTIC, ROLE_INSTANCES):
            own["provenance"] = {"model_sha256": f"sha-{name}", "instance_params": {"threshold": 0.5}}
        layers[role] = viewer.add_labels(data, name=f"{name} {role}", metadata={METADATA_KEY: own})
    return image, layers


def _datasets(folder):
    return sorted(p.name for p in folder.iterdir())


def _tiny_model():
    from napari_unet.nn.model import ModelConfig
    from napari_unet.nn.segmenter import Segmenter

    return Segmenter.create(ModelConfig(depth=2, base_width=4, n_classes=3), list(CLASSES))


@pytest.fixture
def export_setup(make_napari_viewer):
    viewer = make_napari_viewer()
    cells = _add_image_with_labels(viewer, "cells", (32, 40), 0, big_ids=True)
    tissue = _add_image_with_labels(viewer, "tissue 2", (24, 30), 1)
    widget = ExportWidget(viewer)
    widget.confirm_overwrite = lambda path: pytest.fail(f"unexpected question about {path}")
    return viewer, widget, cells, tissue


def test_export_two_images_and_model_then_open_again(export_setup, make_napari_viewer, napari_unet_plugin,
                                                     qtbot, tmp_path):
    viewer, widget, (cells, cells_layers), (tissue, tissue_layers) = export_setup
    assert widget.checked_images() == ["cells", "tissue 2"]
    assert widget.checked_roles("cells") == [ROLE_ANNOTATIONS, ROLE_SEMANTIC, ROLE_INSTANCES, ROLE_ACCEPTED]
    model = _tiny_model()
    widget.set_model(model)
    assert widget.model_check.isEnabled()
    folder = tmp_path / "export"

    with qtbot.waitSignal(widget.export_finished, timeout=TIMEOUT) as finished:
        worker = widget.export(folder)
        assert worker is not None and widget.is_exporting
        assert not widget.export_button.isEnabled() and widget.cancel_button.isEnabled()
    result = finished.args[0]
    assert result.ok and not result.failed and not result.skipped
    assert _datasets(folder) == ["cells.zarr", "model.pt", "tissue_2.zarr"]
    assert widget.export_button.isEnabled() and not widget.is_exporting
    assert widget.last_message[0] == "info" and "exported 2 dataset(s)" in widget.last_message[1]

    from napari_unet.nn.segmenter import Segmenter

    saved = Segmenter.load(folder / "model.pt")
    assert saved.fingerprint() == model.fingerprint()

    for image, layers in [(cells, cells_layers), (tissue, tissue_layers)]:
        path = result.written[image.name]
        entry, labels, provenance = io.read_dataset(path)
        assert entry.name == image.name
        np.testing.assert_array_equal(np.asarray(entry.data), image.data)
        assert [e.name for e in labels] == [layer.name for layer in layers.values()]
        assert [e.role for e in labels] == list(layers)
        assert provenance["model"]["sha256"] == model.fingerprint()
        assert provenance["model"]["file"] == "model.pt"
        assert provenance["model"]["card"]["classes"] == CLASSES
        assert provenance["accepted_pixels"] == int(np.count_nonzero(layers[ROLE_ACCEPTED].data))
        assert provenance["layers"] == {
            layers[role].name: {"model_sha256": f"sha-{image.name}", "instance_params": {"threshold": 0.5}}
            for role in (ROLE_SEMANTIC, ROLE_INSTANCES)
        }

    viewer2 = make_napari_viewer()
    for name in ("cells", "tissue 2"):
        viewer2.open(str(result.written[name]), plugin="napari-unet")
    expected = [layer for group in ([cells, *cells_layers.values()], [tissue, *tissue_layers.values()])
                for layer in group]
    assert [layer.name for layer in viewer2.layers] == [layer.name for layer in expected]
    for old, new in zip(expected, viewer2.layers):
        assert type(new) is type(old)
        restored = np.asarray(new.data)
        assert restored.dtype == old.data.dtype
        np.testing.assert_array_equal(restored, old.data)
        if type(old).__name__ == "Labels":
            assert new.metadata[METADATA_KEY]["role"] == old.metadata[METADATA_KEY]["role"]
            assert new.metadata[METADATA_KEY].get("class_names") == old.metadata[METADATA_KEY].get("class_names")
    assert viewer2.layers["cells instances"].data.max() == 4_000_000_000
    assert viewer2.layers["cells semantic"].metadata[METADATA_KEY]["class_names"] == CLASSES
    # reopened as made: the accepted layer an outline, the exported model offered to the dock
    assert viewer2.layers["cells accepted"].contour == 1
    assert {layer.metadata[METADATA_KEY]["model_path"] for layer in viewer2.layers} == {str(folder / "model.pt")}


def test_unticked_layers_are_left_out_and_the_tree_tracks_layers(export_setup, qtbot, tmp_path):
    viewer, widget, _, (tissue, tissue_layers) = export_setup
    widget.set_image_checked("tissue 2", False)
    widget.set_labels_checked("cells", ROLE_SEMANTIC, False)
    assert widget.checked_images() == ["cells"]
    assert ROLE_SEMANTIC not in widget.checked_roles("cells")
    assert not widget.model_check.isEnabled()  # no model yet

    viewer.layers.remove(tissue_layers[ROLE_INSTANCES])
    assert widget.checked_roles("tissue 2") == [ROLE_ANNOTATIONS, ROLE_SEMANTIC, ROLE_ACCEPTED]
    viewer.add_image(np.zeros((8, 8), np.float32), name="new one")
    assert widget.tree.topLevelItemCount() == 3
    assert widget.checked_images() == ["cells", "new one"]
    viewer.layers["new one"].name = "renamed"
    assert widget.tree.topLevelItem(2).text(0) == "renamed"

    widget.set_folder(tmp_path)
    result = widget.export_now(images=["cells"])
    assert result is not None and result.ok and result.model_path is None
    _, labels, provenance = io.read_dataset(tmp_path / "cells.zarr")
    assert [e.role for e in labels] == [ROLE_ANNOTATIONS, ROLE_INSTANCES, ROLE_ACCEPTED]
    assert "model" not in provenance and list(provenance["layers"]) == ["cells instances"]


def test_overwrite_is_asked_first(export_setup, qtbot, tmp_path):
    viewer, widget, (cells, layers), _ = export_setup
    widget.set_folder(tmp_path)
    assert widget.export_now(images=["cells"]).ok
    path = tmp_path / "cells.zarr"
    before = (path / "zarr.json").read_bytes()
    old = layers[ROLE_ANNOTATIONS].data.copy()
    layers[ROLE_ANNOTATIONS].data[0:2, 0:2] = 3

    asked = []
    widget.confirm_overwrite = lambda p: asked.append(p) or False
    assert widget.export(images=["cells"]) is None  # nothing left to do: no worker
    assert asked == [path]
    assert widget.last_result.skipped == {"cells": "cells.zarr already exists and was kept"}
    assert any(level == "warning" and "skipped 'cells'" in text for level, text in widget.messages)
    assert (path / "zarr.json").read_bytes() == before
    _, labels, _ = io.read_dataset(path)
    np.testing.assert_array_equal(np.asarray(labels[0].data), old)

    widget.confirm_overwrite = lambda p: True
    with qtbot.waitSignal(widget.export_finished, timeout=TIMEOUT) as finished:
        widget.export(images=["cells"])
    assert finished.args[0].ok and finished.args[0].written == {"cells": path}
    _, labels, _ = io.read_dataset(path)
    np.testing.assert_array_equal(np.asarray(labels[0].data), layers[ROLE_ANNOTATIONS].data)
    assert _datasets(tmp_path) == ["cells.zarr"]  # no leftovers of the swap


def test_cancel_leaves_no_dataset_and_no_temp_folder(export_setup, qtbot, tmp_path, monkeypatch):
    viewer, widget, _, _ = export_setup
    widget.set_model(_tiny_model())
    started, release = threading.Event(), threading.Event()
    real_write = ex.write_dataset

    def blocking_write(*args, progress=None, **kwargs):
        def report(done, total):
            progress(done, total)
            if done >= 1:  # the hidden temporary dataset exists now
                started.set()
                release.wait(TIMEOUT / 1000)

        return real_write(*args, progress=report, **kwargs)

    monkeypatch.setattr(ex, "write_dataset", blocking_write)
    with qtbot.waitSignal(widget.export_finished, timeout=TIMEOUT) as finished:
        worker = widget.export(tmp_path)
        assert worker is not None
        qtbot.waitUntil(started.is_set, timeout=TIMEOUT)
        assert any(p.name.startswith(".cells.zarr.writing-") for p in tmp_path.iterdir())
        widget.cancel()
        release.set()
    result = finished.args[0]
    assert result.cancelled and not result.written and result.model_path is None
    assert _datasets(tmp_path) == []  # no dataset, no temporary folder, no model
    assert widget.last_message[0] == "warning" and "cancelled" in widget.last_message[1]
    assert widget.export_button.isEnabled() and not widget.cancel_button.isEnabled()


def test_closing_the_viewer_joins_an_export_started_from_the_export_dock_alone(export_setup, qtbot, tmp_path,
                                                                                monkeypatch):
    import time

    viewer, widget, _, _ = export_setup
    viewer.window.add_dock_widget(widget)  # no main napari-unet dock in this viewer
    # the dock finds the main window at the next event-loop turn (napari wraps it first)
    qtbot.waitUntil(lambda: widget._watched_window is not None, timeout=TIMEOUT)
    real_write = ex.write_dataset
    started = threading.Event()

    def write_until_stopped(*args, progress=None, should_stop=None, **kwargs):
        def report(done, total):
            progress(done, total)
            started.set()
            while not should_stop():  # the export hangs until someone stops it
                time.sleep(0.01)

        return real_write(*args, progress=report, should_stop=should_stop, **kwargs)

    monkeypatch.setattr(ex, "write_dataset", write_until_stopped)
    worker = widget.export(tmp_path, images=["cells"])
    qtbot.waitUntil(started.is_set, timeout=TIMEOUT)
    assert not worker.done.is_set()
    viewer.close()
    assert worker.done.is_set(), "the export thread outlived the viewer"
    assert widget.controller.scheduler.running() == []
    assert _datasets(tmp_path) == []  # the dataset in progress was not written, no temporary folder left


def test_export_progress_is_yielded_chunk_by_chunk(export_setup, tmp_path):
    viewer, widget, (cells, layers), _ = export_setup
    from napari_unet.napari.export import job_from_layers

    job = job_from_layers(cells, [layers[ROLE_ANNOTATIONS]], tmp_path / "cells.zarr")
    result = ex.ExportResult(tmp_path)
    records = list(ex.export_datasets([job], result))
    progress = [r for r in records if isinstance(r, ex.ExportProgress)]
    assert records[0] == ("start", "cells") and records[-1] == ("written", "cells", tmp_path / "cells.zarr")
    assert progress and progress[-1].chunks.done == progress[-1].chunks.total > 0
    assert progress[-1].fraction == 1.0 and result.ok


def test_user_errors_become_notifications(export_setup, tmp_path):
    viewer, widget, _, _ = export_setup
    widget.set_folder(tmp_path)
    widget.set_image_checked("cells", False)
    widget.set_image_checked("tissue 2", False)
    widget.export_button.click()  # the button path: no exception escapes
    assert widget.last_message[0] == "error" and "no image selected" in widget.last_message[1]
    assert widget.export() is None

    widget.set_image_checked("cells", True)
    widget.set_folder("")
    assert widget.export() is None
    assert "no destination folder" in widget.last_message[1]

    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    assert widget.export(a_file) is None
    assert "is a file, not a folder" in widget.last_message[1]
    assert widget.export(tmp_path, images=["no such image"]) is None
    assert "no image layer 'no such image'" in widget.last_message[1]
    assert _datasets(tmp_path) == ["file.txt"]
    assert not widget.is_exporting


def test_safe_names():
    assert safe_name("tissue 2") == "tissue_2"
    assert safe_name("a/b\\c:d") == "a_b_c_d"
    assert safe_name("..") == "image"
    assert safe_name("CON") == "CON_"
    assert safe_name("cells.tif") == "cells.tif"


def test_model_comes_from_the_viewers_controller(export_setup, qtbot, tmp_path):
    from napari_unet.widgets.controller import controller_for

    viewer, widget, _, _ = export_setup
    controller = controller_for(viewer)
    assert widget.controller is controller  # one per viewer, shared with the main dock
    assert widget.current_model() is None and not widget.model_check.isEnabled()
    model = _tiny_model()
    controller.session.set_model(model)
    controller.model_changed.emit()
    assert widget.current_model() is model and widget.model_check.isEnabled()

    with qtbot.waitSignal(widget.export_finished, timeout=TIMEOUT) as finished:
        worker = widget.export(tmp_path, images=["cells"])
        assert worker in controller.scheduler.running() or worker.done.is_set()  # one scheduler for every job
    assert finished.args[0].model_path == tmp_path / "model.pt"

    widget.confirm_overwrite = lambda path: path.name == "cells.zarr"  # keep the old model file
    with qtbot.waitSignal(widget.export_finished, timeout=TIMEOUT) as finished:
        widget.export(tmp_path, images=["cells"])
    result = finished.args[0]
    assert result.ok and result.model_path is None
    assert io.read_dataset(tmp_path / "cells.zarr")[2]["model"]["file"] is None
    assert any("model.pt already exists" in text for _, text in widget.messages)


def test_full_disk_and_unwritable_folder_are_reported(export_setup, qtbot, tmp_path, monkeypatch):
    viewer, widget, _, _ = export_setup
    real_write = ex.write_dataset

    def full_disk_for_cells(path, *args, **kwargs):
        if path.name == "cells.zarr":
            raise ex.UserInputError("Not enough disk space to export cells.zarr: free some space")
        return real_write(path, *args, **kwargs)

    monkeypatch.setattr(ex, "write_dataset", full_disk_for_cells)
    with qtbot.waitSignal(widget.export_finished, timeout=TIMEOUT) as finished:
        widget.export(tmp_path)
    result = finished.args[0]
    assert list(result.failed) == ["cells"] and list(result.written) == ["tissue 2"]
    assert ("error", "Not enough disk space to export cells.zarr: free some space") in widget.messages
    assert _datasets(tmp_path) == ["tissue_2.zarr"]

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(ex.tempfile, "mkstemp", refuse)
    assert widget.export(tmp_path / "sub") is None
    assert widget.last_message[0] == "error" and "cannot write to" in widget.last_message[1]


def test_ngff_04_for_fiji_and_layers_in_the_viewers_order(export_setup, qtbot, tmp_path):
    import zarr

    viewer, widget, (cells, cells_layers), _ = export_setup
    viewer.layers.move(viewer.layers.index(cells_layers[ROLE_ACCEPTED]), viewer.layers.index(cells) + 1)
    assert [widget.ngff_combo.itemData(i) for i in range(widget.ngff_combo.count())] == ["0.5", "0.4"]
    assert widget.ngff_combo.currentData() == "0.5"  # the default
    widget.ngff_combo.setCurrentIndex(1)
    widget.set_image_checked("tissue 2", False)
    result = widget.export_now(tmp_path, images=["cells"], include_model=False)
    assert result.ok
    path = result.written["cells"]
    assert (path / ".zgroup").is_file() and zarr.open_group(path, mode="r").metadata.zarr_format == 2
    _, labels, _ = io.read_dataset(path)
    in_viewer = [layer.name for layer in viewer.layers if layer.name.startswith("cells ")]
    assert [e.name for e in labels] == in_viewer and in_viewer[0] == "cells accepted"
