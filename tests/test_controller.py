"""The controller and its scheduler in a real viewer, without the dock (run under xvfb-run -a)."""

from __future__ import annotations

import gc
import threading

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from napari_unet import conventions as c  # noqa: E402
from napari_unet.errors import UserInputError  # noqa: E402
from napari_unet.nn.model import ModelConfig  # noqa: E402
from napari_unet.nn.segmenter import Segmenter  # noqa: E402
from napari_unet.nn.training import TrainConfig  # noqa: E402
from napari_unet.widgets.controller import controller_for  # noqa: E402
from napari_unet.widgets.workers import (  # noqa: E402
    PlaneResult,
    Scheduler,
    TileProgress,
    gui_friendly_threads,
    predict_generator,
)

TIMEOUT = 90_000


def _painted_viewer(make_napari_viewer):
    viewer = make_napari_viewer()
    rng = np.random.default_rng(0)
    image = viewer.add_image(rng.random((48, 48)).astype(np.float32), name="img")
    annotations = np.zeros((48, 48), np.uint8)
    annotations[:6] = 1
    annotations[-6:] = 2
    viewer.add_labels(annotations, name="img annotations")
    return viewer, image


def test_one_controller_per_viewer_and_a_new_one_after_shutdown_keeps_the_model(make_napari_viewer):
    viewer = make_napari_viewer()
    controller = controller_for(viewer)
    assert controller_for(viewer) is controller
    assert controller_for(make_napari_viewer()) is not controller
    model = Segmenter.create(ModelConfig(depth=2, base_width=4), ["background", "cell"])
    controller.session.set_model(model, new=True)
    controller.shutdown()
    again = controller_for(viewer)
    assert again is not controller and not again.closed and again.session.segmenter is model


def test_scheduler_joins_every_job_and_reports_errors(qtbot):
    scheduler = Scheduler()
    stop = threading.Event()
    started = threading.Event()

    def endless(stop):
        started.set()
        while not stop.is_set():
            yield None
            stop.wait(0.01)

    def failing():
        raise ValueError("broken")
        yield

    errors = []
    worker = scheduler.start(endless, stop, stop=stop, connect={})
    failed = threading.Event()  # connected before the worker starts: a fast end is never missed
    scheduler.start(failing, connect={"errored": errors.append, "finished": failed.set})
    qtbot.waitUntil(failed.is_set, timeout=TIMEOUT)
    assert started.wait(10) and worker in scheduler.running()
    assert scheduler.join(timeout=10) is True
    assert stop.is_set() and worker.done.is_set() and scheduler.running() == []
    assert [str(e) for e in errors] == ["broken"]


def test_scheduler_joins_only_the_jobs_asked_for(qtbot):
    scheduler = Scheduler()

    def endless(stop):
        while not stop.is_set():
            yield None
            stop.wait(0.01)

    own, other = threading.Event(), threading.Event()
    export = scheduler.start(endless, own, stop=own, connect={})
    training = scheduler.start(endless, other, stop=other, connect={})
    assert scheduler.join(timeout=10, only=[export]) is True  # the export dock closes alone
    assert export.done.is_set() and not other.is_set() and not training.done.is_set()
    assert scheduler.join(timeout=10) is True
    assert training.done.is_set()


def test_prediction_leaves_a_core_to_the_viewer():
    import torch

    from napari_unet.functionals.instances import InstanceParams
    from napari_unet.nn.model import ModelConfig
    from napari_unet.nn.segmenter import Segmenter

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1 + gui_friendly_threads())
        model = Segmenter.create(ModelConfig(depth=2, base_width=4, n_classes=2), ["background", "object"])
        run = predict_generator(model, "img", lambda plane: np.zeros((1, 32, 32), np.float32), [()],
                                InstanceParams(), 1, threading.Event())
        *_, result = list(run)
        assert result.semantic.shape == (32, 32)
        assert torch.get_num_threads() == gui_friendly_threads()
    finally:
        torch.set_num_threads(before)


def test_prediction_yields_its_tile_progress():
    from napari_unet.functionals.instances import InstanceParams
    from napari_unet.nn.model import ModelConfig
    from napari_unet.nn.segmenter import Segmenter

    model = Segmenter.create(ModelConfig(depth=2, base_width=4, n_classes=2), ["background", "object"])
    planes = [(0,), (1,)]
    run = predict_generator(model, "img", lambda plane: np.zeros((1, 160, 160), np.float32), planes,
                            InstanceParams(), 1, threading.Event(), 32, 1)
    records = list(run)
    results = [r for r in records if isinstance(r, PlaneResult)]
    assert [r.plane for r in results] == planes
    for index in range(len(planes)):  # each plane's tiles count up to all of them, before its result
        counts = [r.tiles for r in records if isinstance(r, TileProgress) and r.index == index]
        assert counts and counts[-1].done == counts[-1].total > 1
        assert [c.done for c in counts] == sorted(c.done for c in counts)
        assert records.index(results[index]) > max(i for i, r in enumerate(records)
                                                  if isinstance(r, TileProgress) and r.index == index)


def test_training_works_on_a_copy_of_the_model(make_napari_viewer, qtbot):
    viewer, image = _painted_viewer(make_napari_viewer)
    controller = controller_for(viewer)
    controller.select_image(image)
    config = TrainConfig(preset="fast", patch_size=32, batch_size=2, steps=2, seconds=60, threads=1)
    with qtbot.waitSignal(controller.training_finished, timeout=TIMEOUT):
        controller.train(config)
        worker = controller._train_worker
    # napari's activity dock showed it: a bar of the step budget, with the step and loss (napari
    # closes the bar from the worker thread at the end, so the last record may not reach it)
    assert worker.pbar.total == 1000 and worker.pbar.n >= 500
    assert worker.pbar.desc.startswith("napari-unet: training, step ")
    first = controller.segmenter
    weights = first.fingerprint()
    assert [(i.source, i.plane) for i in controller.last_training_items] == [("img", ())]
    with qtbot.waitSignal(controller.training_finished, timeout=TIMEOUT) as finished:
        controller.train(config)
        assert controller.segmenter is first  # the viewer keeps predicting with it while training runs
        with pytest.raises(UserInputError, match="training is running"):
            controller.predict(None)
    assert finished.args == [True]
    assert controller.segmenter is not first and first.fingerprint() == weights
    # the second round continued from the first one's model (what sample_loop's correction round measures)
    assert controller.segmenter.history[:-1] == first.history and len(first.history) == 1
    assert controller.session.loss_offset == 4
    assert "back to the start" not in controller.messages.log[-1][1]  # a model of the user's own images: not blended
    controller.segmenter.history[-1]["images"] = 400  # as if it were a pretrained model: its run is blended
    with qtbot.waitSignal(controller.training_finished, timeout=TIMEOUT):
        controller.train(config)
    assert controller.segmenter.history[-1]["blended_with_start"] == 0.5
    assert "moved 50% back to the start model's" in controller.messages.log[-1][1]


def test_deleted_annotations_are_kept_and_adoption_is_forgotten_with_the_layer(make_napari_viewer, qtbot):
    viewer, image = _painted_viewer(make_napari_viewer)
    controller = controller_for(viewer)
    controller.select_image(image)
    annotations = controller.annotations_layer()
    assert annotations in controller._adopted and annotations.selected_label == c.FIRST_CLASS
    strokes = np.array(annotations.data)
    viewer.layers.remove(annotations)
    del annotations
    gc.collect()
    assert len(controller._adopted) == 0  # a weak set: no id() of a dead layer left to be reused
    restored = controller.annotations_layer()
    np.testing.assert_array_equal(restored.data, strokes)
    assert any("restored the deleted annotations" in text for _, text in controller.messages.log)
