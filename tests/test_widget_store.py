"""The dock on a plane too big for memory: predicted into a zarr store, shown as lazy layers, corrected in place."""

from __future__ import annotations

import os

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

import dask.array as da  # noqa: E402
import torch  # noqa: E402
import zarr  # noqa: E402
from dock_helpers import load_untrained_model  # noqa: E402
from napari.settings import get_settings  # noqa: E402
from synthetic import blobs  # noqa: E402

from napari_unet import conventions as c  # noqa: E402
from napari_unet.functionals.instances import InstanceParams  # noqa: E402
from napari_unet.napari.cheap_layers import PAINT_OVERLAYS  # noqa: E402
from napari_unet.napari.rendering import ASYNC_HINT  # noqa: E402
from napari_unet.nn.chunked import predict_to_zarr  # noqa: E402
from napari_unet.widgets import UNetWidget  # noqa: E402

TIMEOUT = 90_000


def _chunk_times(array_path) -> dict[str, int]:
    return {os.path.join(d, f): os.stat(os.path.join(d, f)).st_mtime_ns
            for d, _, files in os.walk(array_path / "c") for f in files}


def _dock_on_big_image(make_napari_viewer, tmp_path, array):
    """A dock over the lazy image `array` ("big"), a tiny untrained model loaded, stores of 32 px blocks."""
    viewer = make_napari_viewer()
    viewer.add_image(array, name="big")
    widget = UNetWidget(viewer)
    viewer.window.add_dock_widget(widget)
    torch.manual_seed(1)  # an untrained model: some initialisations make no objects at all
    segmenter = load_untrained_model(widget, tmp_path)
    controller = widget.controller
    controller.store_above_pixels, controller.store_block, controller.store_folder = 1000, 32, tmp_path / "out"
    return viewer, widget, segmenter


def _dock_on_a_pyramid(make_napari_viewer, tmp_path):
    """The dock on a lazy 96 x 112 plane it shows as a 3-level pyramid (2 halved levels), selected,
    with instance settings that find the blobs: (viewer, widget, params)."""
    image, _ = blobs(96, n=14, seed=5)
    image = np.pad(image, ((0, 0), (0, 16)), mode="edge")  # 96 x 112
    viewer, widget, segmenter = _dock_on_big_image(make_napari_viewer, tmp_path, da.from_array(image, chunks=16))
    widget.controller.store_multiscale_above, widget.controller.store_coarsest = 64, 32  # 112 px a side
    widget.annotate_step.image_picker.set_layer(viewer.layers["big"])
    whole = segmenter.predict(image[None], out_dtype=np.float16)
    return viewer, widget, InstanceParams(threshold=float(np.quantile(whole.foreground(), 0.8)), min_size=3)


def zoom_out(layer) -> None:
    """What napari's canvas does at a draw with the whole plane in a small view: the coarsest level."""
    h, w = layer.level_shapes[0]
    layer._update_draw(scale_factor=8.0, corner_pixels_displayed=np.array([[0.0, 0.0], [h, w]], dtype=float),
                       shape_threshold=(h // 8, w // 8))


@pytest.mark.slow
def test_a_big_lazy_image_is_predicted_into_a_store_shown_lazily_and_corrected_in_place(
        make_napari_viewer, qtbot, tmp_path):
    image, _ = blobs(96, n=14, seed=5)
    image = np.pad(image, ((0, 0), (0, 16)), mode="edge")  # 96 x 112: blocks of 32 leave a partial column
    source = zarr.create_array(str(tmp_path / "image.zarr"), shape=image.shape, dtype=np.float32, chunks=(16, 16))
    source[...] = image
    viewer, widget, segmenter = _dock_on_big_image(make_napari_viewer, tmp_path, da.from_zarr(source))
    controller = widget.controller
    widget.annotate_step.image_picker.set_layer(viewer.layers["big"])
    whole = segmenter.predict(image[None], out_dtype=np.float16)  # an untrained model: its top fifth as objects
    params = InstanceParams(threshold=float(np.quantile(whole.foreground(), 0.8)), min_size=3)
    step = widget.predict_step
    records = []
    controller.store_progress.connect(records.append)
    with qtbot.waitSignal(controller.prediction_finished, timeout=TIMEOUT) as finished:
        controller.predict(params, probabilities=True)  # a threshold finer than the slider's steps
    assert finished.args[0] == "done"
    qtbot.waitUntil(lambda: not controller.is_predicting, timeout=TIMEOUT)

    # the memory-bounded path ran: 12 blocks of 32 px, two passes with progress, no plane in the memory cache
    assert {(r.stage, r.total) for r in records} == {("network", 12), ("objects", 12)}
    assert records[-1].stage == "objects" and records[-1].done == 12
    assert len(controller.session.cache) == 0
    store = tmp_path / "out" / "big_predictions.zarr"
    semantic, instances = viewer.layers["big semantic"], viewer.layers["big instances"]
    assert isinstance(instances.data, zarr.Array) and isinstance(semantic.data, zarr.Array)
    probability = viewer.layers["big probability cell"]
    assert isinstance(probability.data, da.Array)
    assert instances.metadata["napari_unet"]["store"] == str(store)
    # the same outputs as `napari-unet predict --out-zarr` (one core path)
    predict_to_zarr(segmenter, image[None], tmp_path / "cli.zarr", params, block=32, probabilities=True)
    expected = zarr.open_group(str(tmp_path / "cli.zarr"), mode="r")
    saved = zarr.open_group(str(store), mode="r")
    assert int(saved["instances"][...].max()) > 1
    assert np.array_equal(saved["instances"][...], expected["instances"][...])
    assert np.array_equal(saved["semantic"][...], expected["semantic"][...])
    assert np.allclose(np.asarray(probability.data), expected["probabilities"][1])
    assert "objects" in step.instance_status.text()
    assert instances._slice.image.raw.max() > 0  # the layer was redrawn as blocks landed

    # a brush stroke lands in the store, in the chunks it touches only
    before = _chunk_times(store / "instances")
    instances.paint((8, 8), 999, refresh=True)
    reopened = zarr.open_group(str(store), mode="r")["instances"]
    assert reopened[8, 8] == 999
    changed = {path for path, t in _chunk_times(store / "instances").items() if before.get(path) != t}
    assert changed and len(changed) < len(before)

    # a correction of the correct step and an accepted rectangle land in the store too
    ids = [int(i) for i in np.unique(reopened[40:96, 40:112]) if i not in (0, 999)][:2]
    assert len(ids) == 2
    widget.correct_step.merge(ids)
    merged = zarr.open_group(str(store), mode="r")["instances"][...]
    assert ids[0] not in merged or ids[1] not in merged
    correct = widget.correct_step
    shapes = correct._corrections_layer(viewer.layers["big"])
    shapes.add_rectangles(np.array([[0, 0], [47, 55]]))
    assert correct.accept("rectangle") > 0
    accepted = zarr.open_group(str(store), mode="r")["accepted"][...]
    assert accepted[:48, :56].any() and not accepted[48:, :].any() and not accepted[:, 56:].any()
    assert "saved in" in correct.accepted_status.text()

    # predicting again replaces the outputs but keeps the accepted objects; Cancel stops it between blocks
    with qtbot.waitSignal(controller.prediction_finished, timeout=TIMEOUT) as finished:
        step.predict()
        step.cancel_prediction()
    assert finished.args[0] == "cancelled"
    qtbot.waitUntil(lambda: not controller.is_predicting, timeout=TIMEOUT)
    again = zarr.open_group(str(store), mode="r")
    assert np.array_equal(again["accepted"][...], accepted)
    assert viewer.layers["big accepted"].data.store_path == again["accepted"].store_path


def test_a_folder_in_the_stores_place_that_is_not_a_prediction_store_is_never_overwritten(make_napari_viewer, tmp_path):
    from napari_unet.errors import UserInputError

    viewer, widget, _ = _dock_on_big_image(make_napari_viewer, tmp_path, da.zeros((64, 64), dtype=np.float32, chunks=16))
    controller = widget.controller
    controller.store_folder = tmp_path
    mine = tmp_path / "big_predictions.zarr"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    widget.annotate_step.image_picker.set_layer(viewer.layers["big"])
    with pytest.raises(UserInputError, match="not a napari-unet prediction store"):
        controller.predict(InstanceParams())
    assert (mine / "notes.txt").read_text() == "mine" and not controller.is_predicting


@pytest.mark.slow
def test_a_plane_too_big_to_show_whole_is_browsed_through_the_stores_pyramid(make_napari_viewer, qtbot, tmp_path):
    from napari_unet.nn.chunked import output_levels

    viewer, widget, params = _dock_on_a_pyramid(make_napari_viewer, tmp_path)
    controller = widget.controller
    with qtbot.waitSignal(controller.prediction_finished, timeout=TIMEOUT) as finished:
        controller.predict(params, probabilities=True)
    assert finished.args[0] == "done"
    qtbot.waitUntil(lambda: not controller.is_predicting, timeout=TIMEOUT)

    instances, semantic = viewer.layers["big instances"], viewer.layers["big semantic"]
    probability = viewer.layers["big probability cell"]
    for layer in (instances, semantic, probability):
        assert layer.multiscale and [tuple(s) for s in layer.level_shapes] == [(96, 112), (48, 56), (24, 28)]
    assert not instances.editable  # napari does not paint on a pyramid
    store = zarr.open_group(str(tmp_path / "out" / "big_predictions.zarr"), mode="r")
    full, half = (level[...] for level in output_levels(store, "instances")[:2])
    assert full.max() > 1 and np.array_equal(half, full[::2, ::2])
    assert np.array_equal(np.asarray(instances.data[2]), full[::4, ::4])  # the layer's levels are the store's
    assert any("pyramid" in text for _, text in controller.messages.log)
    # the correct step's tools write every level of the store (napari's brush cannot paint a pyramid)
    ids = [int(i) for i in np.unique(full) if i][:2]
    widget.correct_step.merge(ids)
    assert not controller.messages.errors()
    merged = output_levels(store, "instances")
    assert ids[1] not in merged[0][...] and (merged[0][...] == ids[0]).sum() == np.isin(full, ids).sum()
    for k, level in enumerate(merged[1:], start=1):
        assert np.array_equal(level[...], merged[0][...][:: 2**k, :: 2**k])
    shapes = widget.correct_step._corrections_layer(viewer.layers["big"])
    shapes.add_rectangles(np.array([[0, 0], [47, 55]]))
    assert not viewer.layers["big accepted"].visible  # nothing accepted: not read and coloured at every move
    assert widget.correct_step.accept("rectangle") > 0
    assert viewer.layers["big accepted"].visible  # the first accept shows it
    accepted = output_levels(store, "accepted")
    assert viewer.layers["big accepted"].multiscale and len(accepted) == 3
    assert accepted[0][:48, :56].any() and not accepted[0][48:, :].any()
    assert np.array_equal(accepted[1][...], accepted[0][...][::2, ::2])
    # predicting again: a store with accepted objects shows them from the start
    instances = viewer.layers["big instances"]
    assert instances.visible  # shown by the objects pass
    instances.visible = False  # the user hides it: the next objects pass leaves it hidden
    with qtbot.waitSignal(controller.prediction_finished, timeout=TIMEOUT):
        controller.predict(params)
    qtbot.waitUntil(lambda: not controller.is_predicting, timeout=TIMEOUT)
    assert viewer.layers["big accepted"].visible
    assert not instances.visible and instances is viewer.layers["big instances"]


def test_a_landed_block_is_the_block_and_for_the_objects_pass_its_halo():
    from napari_unet.widgets.store_jobs import OBJECTS_HALO, landed_region

    shape = (96, 112)  # blocks of 32: 3 rows of 4, the last column 16 px wide
    assert landed_region(shape, 32, "network", 2) == (slice(0, 32), slice(32, 64))
    assert landed_region(shape, 32, "network", 12) == (slice(64, 96), slice(96, 112))
    assert OBJECTS_HALO >= 32  # a halo wider than this tiny plane's blocks: the whole plane
    assert landed_region(shape, 32, "objects", 6) == (slice(0, 96), slice(0, 112))
    assert landed_region((4096, 4096), 1024, "objects", 6) == (slice(1024 - OBJECTS_HALO, 2048 + OBJECTS_HALO),) * 2


def test_a_pyramid_layer_holds_only_the_tile_napari_read_around_the_view():
    from napari.components import ViewerModel
    from napari.layers import Labels

    from napari_unet.widgets.store_jobs import holds, shows_landed

    viewer = ViewerModel()
    levels = [zarr.zeros((n, n), chunks=(256, 256), dtype=np.uint8) for n in (4096, 2048, 1024)]
    layer = viewer.add_labels(levels)
    # what napari's canvas does at a draw: a 600 x 500 px view at the top left, seen at full resolution
    layer._update_draw(scale_factor=1.0, corner_pixels_displayed=np.array([[0.0, 0.0], [500.0, 600.0]]),
                       shape_threshold=(500, 600))
    assert layer.data_level == 0 and tuple(layer.corner_pixels[1]) == (511, 767)  # the view's 256 px chunks
    assert holds(layer, (slice(500, 520), slice(700, 800)))  # read, off screen: shown when panned to
    assert not holds(layer, (slice(512, 1024), slice(0, 1024)))  # the next row of chunks: read when viewed
    assert not holds(layer, (slice(3000, 4096), slice(3000, 4096)))
    # zoomed out to the whole plane: the coarsest level, all of it
    layer._update_draw(scale_factor=8.0, corner_pixels_displayed=np.array([[0.0, 0.0], [4096.0, 4096.0]]),
                       shape_threshold=(512, 512))
    assert layer.data_level == 2 and holds(layer, (slice(3000, 4096), slice(3000, 4096)))
    # the objects pass writes the finest level only: a coarser one shown is not redrawn for its blocks
    layer.metadata = {"napari_unet": {"role": "instances", "image": "big"}}
    assert not shows_landed(layer, "objects", (slice(0, 1024), slice(0, 1024)))
    assert not shows_landed(layer, "network", (slice(0, 1024), slice(0, 1024)))  # not the network's layer
    layer.metadata = {"napari_unet": {"role": "semantic", "image": "big"}}
    assert shows_landed(layer, "network", (slice(0, 1024), slice(0, 1024)))
    assert holds(Labels(np.zeros((64, 64), np.uint8)), (slice(60, 64), slice(60, 64)))  # one scale: all of it


def test_a_pyramid_zoomed_out_to_its_coarsest_level_shows_what_is_written_into_it():
    from napari.components import ViewerModel

    from napari_unet.napari import layers as lb

    levels = [zarr.zeros((n, n), chunks=(64, 64), dtype=np.uint32) for n in (256, 128, 64)]
    layer = ViewerModel().add_labels(levels)
    zoom_out(layer)
    assert layer.data_level == 2 and layer._slice.image.raw.max() == 0
    new = np.zeros((256, 256), np.uint32)
    new[64:128, 64:128] = 7
    assert lb.write_undoable(layer, (), new) == 64 * 64  # a correction into every level, as the Correct step does
    assert layer._slice.image.raw.max() == 7 and layer.thumbnail[..., 3].max() > 0  # napari had kept level 2 unread
    levels[0][:64, :64], levels[2][:32, :32] = 9, 9  # blocks a prediction wrote: the dock's redraw shows them
    lb.refresh_pyramid(layer, extent=False)
    assert layer._slice.image.raw[:32, :32].min() == 9


@pytest.mark.slow
def test_landed_blocks_redraw_only_the_layers_their_pass_writes(make_napari_viewer, qtbot, tmp_path):
    viewer, widget, params = _dock_on_a_pyramid(make_napari_viewer, tmp_path)
    controller = widget.controller
    events = []  # ("progress", passes with blocks in the record, passes it ended) and ("redraw", layer role)
    controller.store_progress.connect(
        lambda record: events.append(("progress", {name for name, _ in record.regions}, set(record.ended))))

    def follow(event) -> None:  # the click makes the semantic layer, the next event-loop turns the others
        layer, name = event.value, event.value.name.removeprefix("big ")
        layer.events.set_data.connect(lambda event, name=name: events.append(("redraw", name)))
        events.append(("visible", name, layer.visible))
        layer.events.visible.connect(lambda event, name=name, layer=layer: events.append(("visible", name, layer.visible)))

    viewer.layers.events.inserted.connect(follow)
    with qtbot.waitSignal(controller.prediction_finished, timeout=TIMEOUT) as finished:
        controller.predict(params)
    assert finished.args[0] == "done"
    assert {event[1] for event in events if event[0] == "visible"} >= {"semantic", "instances", "accepted"}
    qtbot.waitUntil(lambda: not controller.is_predicting, timeout=TIMEOUT)

    records = [(i, event[1], event[2]) for i, event in enumerate(events) if event[0] == "progress"]
    first_objects = min(i for i, passes, _ in records if "objects" in passes)
    # the instances are hidden (not read, coloured and drawn at every view move) until the objects pass writes
    shown = [(i, event[2]) for i, event in enumerate(events) if event[0] == "visible" and event[1] == "instances"]
    assert [visible for _, visible in shown] == [False, True]
    assert first_objects < shown[1][0] < min(i for i, _, ended in records if "objects" in ended) + 1
    network_ended = min(i for i, _, ended in records if "network" in ended)
    after_network = min([i for i, _, _ in records if i > network_ended] + [len(events)])
    redrawn = [(i, event[1]) for i, event in enumerate(events) if event[0] == "redraw"]
    assert any(name == "semantic" for _, name in redrawn)  # the network pass shows its classes as they land
    assert all(i < after_network for i, name in redrawn if name == "semantic")  # not for the objects' blocks
    assert any(name == "instances" for _, name in redrawn)
    assert all(i > first_objects for i, name in redrawn if name == "instances")  # no objects before their pass
    assert not any(name == "accepted" for _, name in redrawn)  # a prediction never writes accepted objects
    accepted = viewer.layers["big accepted"]
    assert accepted.multiscale and accepted.contour == 0  # outlines cost a dilation + erosion per view move
    assert not accepted.visible  # and an empty one is not read at every move until something is accepted
    instances = viewer.layers["big instances"]
    assert instances._slice.image.raw.max() > 0 and instances.thumbnail[..., 3].max() > 0  # shown, with thumbnail
    for layer in (instances, viewer.layers["big semantic"]):  # zoomed out to the coarsest level: filled in too
        zoom_out(layer)  # napari read that level (empty) when the layer was made, and keeps it
        assert layer.data_level == 2 and np.array_equal(layer._slice.image.raw, np.asarray(layer.data[2]))
        assert layer._slice.image.raw.max() > 0


def test_the_predict_click_adds_cheap_store_layers_and_leaves_the_work_to_the_worker(
        make_napari_viewer, qtbot, tmp_path):
    from napari.utils import progress

    viewer, widget, params = _dock_on_a_pyramid(make_napari_viewer, tmp_path)
    controller = widget.controller
    image = viewer.layers["big"]
    viewer.layers.selection.active = image  # the user's selection
    recount = widget.annotate_step._status_timer  # the annotated pixels' count: a scan of the whole plane
    recount.stop()
    with qtbot.waitSignal(controller.prediction_finished, timeout=TIMEOUT) as finished:
        controller.predict(params)
        assert not recount.isActive()  # result layers are not annotations: nothing to recount
        # the click returns with the semantic layer there and the passes running in the worker; napari builds
        # the other layers' visuals in event-loop turns of their own, one each
        assert controller.is_predicting
        assert not controller.messages.toast_info()  # its notes go to the message line: a toast costs ~100 ms
        assert [layer.name for layer in viewer.layers] == ["big", "big semantic"]
        assert viewer.layers.selection.active is image  # adding it did not take the user's selection
        qtbot.waitUntil(lambda: "big accepted" in viewer.layers, timeout=TIMEOUT)
        semantic, instances, accepted = (viewer.layers[f"big {name}"] for name in ("semantic", "instances", "accepted"))
        assert all(layer.multiscale for layer in (semantic, instances, accepted))
        assert semantic.visible and not instances.visible and not accepted.visible  # empty ones made hidden
        for layer in (semantic, instances, accepted):  # napari cannot paint on a pyramid: no brush visuals to build
            assert not any(layer._overlays[key].visible for key in PAINT_OVERLAYS)
        bars = [bar for bar in progress._all_instances if "big" in str(bar.desc)]
        assert not bars  # no napari activity bar: while shown, its animation repaints the whole window
    assert finished.args[0] == "done"
    qtbot.waitUntil(lambda: not controller.is_predicting, timeout=TIMEOUT)
    assert instances.visible and not accepted.visible  # the objects pass showed its layer; nothing accepted yet
    assert controller.messages.toast_info()  # the result's message pops up
    hints = [text for _, text in controller.messages.log if text == ASYNC_HINT]
    assert len(hints) == 1  # napari reads the pyramid on the GUI thread: the dock says where to change that

    # predicting again: the old outputs leave the store at the click (renamed aside), the worker deletes them;
    # the user turned napari's asynchronous reading on, so no hint
    get_settings().experimental.async_ = True
    store = tmp_path / "out" / "big_predictions.zarr"
    with qtbot.waitSignal(controller.prediction_finished, timeout=TIMEOUT) as finished:
        controller.predict(params)
        assert semantic.data[0].nchunks_initialized == 0 and semantic is viewer.layers["big semantic"]
    assert finished.args[0] == "done"
    qtbot.waitUntil(lambda: not controller.is_predicting, timeout=TIMEOUT)
    assert semantic.data[0].nchunks_initialized > 0
    assert [p.name for p in store.parent.iterdir()] == [store.name]  # nothing set aside is left
    assert [text for _, text in controller.messages.log if text == ASYNC_HINT] == hints
    qtbot.wait(100)  # napari's slices still in flight on its own thread would hold the viewer at teardown


def test_an_earlier_predictions_outputs_are_set_aside_by_renames_and_deleted_later(tmp_path):
    from napari_unet.nn.chunked import create_levelled, create_outputs, output_levels
    from napari_unet.widgets.store_jobs import (
        ACCEPTED,
        discard_set_aside,
        set_aside_outputs,
    )

    path = tmp_path / "img_predictions.zarr"
    assert set_aside_outputs(path) is None
    root = create_outputs(path, (64, 64), 2, probabilities=True, block=32, coarsest=16)
    create_levelled(root, ACCEPTED, (64, 64), np.uint32, 32, 16)
    for name in ("semantic", "instances", ACCEPTED):
        for level in output_levels(root, name):
            level[...] = 7
    aside = set_aside_outputs(path)
    assert aside.parent == tmp_path and aside.name.startswith(".")  # hidden, beside the store
    moved = [p for p in aside.rglob("*") if p.is_file() and "c" in p.relative_to(aside).parts]
    assert len(moved) >= 4 + 4 + 1  # the chunks were moved, not deleted
    root = create_outputs(path, (64, 64), 2, block=32, coarsest=16)  # the store's new, empty outputs
    assert root["semantic"].nchunks_initialized == 0 and "probabilities" not in root
    assert (output_levels(root, ACCEPTED)[0][...] == 7).all()  # the accepted objects stay
    discard_set_aside(path)
    assert not aside.exists() and path.exists()


def test_an_image_renamed_while_it_is_predicted_into_a_store_gets_its_objects_shown(make_napari_viewer, qtbot,
                                                                                       tmp_path):
    """The store job's records carry the name the image had at the click: after a rename its layers are still
    found, shown when the objects pass writes and redrawn (they stayed hidden and empty before)."""
    viewer, widget, params = _dock_on_a_pyramid(make_napari_viewer, tmp_path)
    controller = widget.controller

    def rename_once(record) -> None:  # the user renames the image as the first blocks land
        controller.store_progress.disconnect(rename_once)
        viewer.layers["big"].name = "renamed"

    controller.store_progress.connect(rename_once)
    with qtbot.waitSignal(controller.prediction_finished, timeout=TIMEOUT) as finished:
        controller.predict(params)
    assert finished.args[0] == "done"
    qtbot.waitUntil(lambda: not controller.is_predicting, timeout=TIMEOUT)
    instances = controller.paired(c.ROLE_INSTANCES, viewer.layers["renamed"])
    assert instances is not None and instances.visible
    assert instances._slice.image.raw.max() > 0
