"""The whole human-in-the-loop cycle through the dock on the nuclei sample (run under `xvfb-run -a`).

Train a few steps on small patches, predict, tune the objects live, correct, accept, retrain, and
save and load the model, waiting on the dock's Qt signals, never sleeping.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from dock_helpers import IMAGE, TIMEOUT, predict, train  # noqa: E402
from skimage.measure import label as label_regions  # noqa: E402

from napari_unet import conventions as c  # noqa: E402
from napari_unet.functionals.data import cut_objects  # noqa: E402
from napari_unet.napari import layers as lb  # noqa: E402
from napari_unet.nn.inference import Prediction  # noqa: E402


def _gt_prediction() -> Prediction:
    """A clean 'network output' made from the sample's true nuclei, for deterministic instance tests."""
    from scipy import ndimage

    from napari_unet.io.resources import NUCLEI_INSTANCES, read_tif

    truth = np.asarray(read_tif(NUCLEI_INSTANCES))
    fg = (truth > 0).astype(np.float32)
    distance = ndimage.distance_transform_edt(fg).astype(np.float32)
    return Prediction(
        probabilities=np.stack([1 - fg, fg]),
        boundary=np.zeros_like(fg),
        distance=distance / max(float(distance.max()), 1.0),
    )


def test_full_cycle(nuclei_dock, qtbot, tmp_path, monkeypatch):
    viewer, widget = nuclei_dock
    annotations = viewer.layers[c.layer_name(IMAGE, c.ROLE_ANNOTATIONS)]
    painted = np.array(annotations.data, copy=True)

    # train a few steps in the worker
    assert train(qtbot, widget) is True
    assert widget.controller.session.segmenter is not None
    assert len(widget.controller.last_training_items) == 1
    assert widget.controller.last_training_items[0].instance_mask is None
    assert widget.train_step.train_stats.text().startswith("step 3")
    assert len(widget.train_step.loss_plot.points) == 3

    # predict: semantic + instance layers, network outputs cached for live updates
    assert predict(qtbot, widget) == "done"
    semantic = viewer.layers[c.layer_name(IMAGE, c.ROLE_SEMANTIC)]
    instances = viewer.layers[c.layer_name(IMAGE, c.ROLE_INSTANCES)]
    assert semantic.data.shape == instances.data.shape == (512, 512)
    assert set(np.unique(semantic.data)) <= {1, 2} and semantic.data.min() >= 1
    assert widget.controller.session.cache.get(IMAGE, ()) is not None
    provenance = instances.metadata[c.METADATA_KEY]["provenance"]
    assert provenance["model_sha256"] == widget.controller.session.segmenter.fingerprint()
    assert provenance["training"]["steps"] == 3 and "threshold" in provenance["instance_params"]
    # the image it was trained on is predicted at the size it was trained at (auto: one pass, as fast as before)
    assert widget.controller.session.trained_on == {IMAGE}
    assert provenance["object_diameter_source"] == "as trained"
    assert semantic.metadata[c.METADATA_KEY]["provenance"]["model_sha256"] == provenance["model_sha256"]

    # instance parameters update the layer live from the cached prediction, never the network
    entry = widget.controller.session.cache.get(IMAGE, ())
    entry.prediction, entry.use_instance_heads, entry.params = _gt_prediction(), False, None
    with monkeypatch.context() as patch:  # only here: training later predicts to count its mistakes
        patch.setattr(widget.controller.session.segmenter, "predict", lambda *a, **k: pytest.fail("network re-run"))
        with qtbot.waitSignal(widget.controller.instances_updated, timeout=TIMEOUT):
            widget.predict_step.min_size_spin.setValue(5)
        before = np.array(instances.data)
        n_before = len(np.unique(before)) - 1
        assert n_before > 20
        with qtbot.waitSignal(widget.controller.instances_updated, timeout=TIMEOUT):
            widget.predict_step.min_size_spin.setValue(150)
    n_after = len(np.unique(instances.data)) - 1
    assert 0 < n_after < n_before
    assert "objects in this plane" in widget.predict_step.instance_status.text()

    # nothing corrected since the prediction (live instance updates are not corrections)
    assert widget.controller.is_uncorrected(viewer.layers[IMAGE])
    # merge two objects picked in the viewer
    labels = np.array(instances.data)
    ids, sizes = np.unique(labels[labels > 0], return_counts=True)
    a, b = (int(i) for i in ids[np.argsort(-sizes)[:2]])
    for obj in (a, b):
        r, col = np.argwhere(labels == obj)[0]
        widget.correct_step.pick_at(instances.data_to_world((r, col)))
    assert widget.correct_step.object_ids() == [a, b]
    widget.correct_step.merge()
    merged = np.array(instances.data)
    assert not np.any(merged == max(a, b))
    assert np.count_nonzero(merged == min(a, b)) == np.count_nonzero(labels == a) + np.count_nonzero(labels == b)
    assert widget.correct_step.object_ids() == []
    # ... and split it again at its two centres (re-seeding)
    widget.correct_step.split_by_seeds(min(a, b), 2)
    assert len(np.unique(instances.data)) - 1 == n_after
    # Ctrl+Z in the instance layer undoes a correction
    instances.undo()
    assert np.array_equal(instances.data, merged)
    instances.undo()
    assert np.array_equal(instances.data, labels)

    # split an object along a drawn line (a Shapes path across its middle)
    labels = np.array(instances.data)
    obj = int(ids[np.argsort(-sizes)[0]])
    rows, cols = np.nonzero(labels == obj)
    mid = int(np.median(rows))
    widget.correct_step.start_drawing("path")
    shapes = viewer.layers[c.layer_name(IMAGE, "corrections")]
    shapes.add_paths([np.array([[mid, cols.min() - 3], [mid, cols.max() + 3]], dtype=float)])
    widget.correct_step.split_by_line()
    assert not widget.controller.messages.errors(), widget.controller.messages.errors()
    split = np.array(instances.data)
    assert len(np.unique(split)) == len(np.unique(labels)) + 1
    assert len(shapes.data) == 0  # the used cut line is tidied away

    # remove small objects, renumber
    widget.correct_step.remove_small(200)
    sizes_now = np.bincount(np.asarray(instances.data).ravel())[1:]
    assert sizes_now[sizes_now > 0].min() >= 200
    widget.correct_step.relabel()
    ids_now = np.unique(instances.data)
    assert np.array_equal(ids_now, np.arange(len(ids_now)))

    # accept the current view (zoomed in on a corner): dense annotations + accepted objects there
    camera = lb.camera_of(viewer)
    camera.center = (128, 128)
    camera.zoom = 800 / 128  # the view shows about 128 x 96 pixels around (128, 128)
    view = lb.view_region(viewer, viewer.layers[IMAGE], lb.layout_in(viewer, viewer.layers[IMAGE]))
    assert view is not None and view[0].start > 0 and view[0].stop < 256
    assert not widget.controller.is_uncorrected(viewer.layers[IMAGE])  # merges and splits are corrections
    with qtbot.waitSignal(widget.controller.accepted_changed, timeout=5_000):
        n = widget.correct_step.accept("view")
    assert widget.controller.messages.log[-1][0] == "info"  # a corrected region: no warning
    accepted = viewer.layers[c.layer_name(IMAGE, c.ROLE_ACCEPTED)]
    assert n and 0 < np.count_nonzero(accepted.data) < 512 * 512
    inside = accepted.data > 0
    assert np.all(annotations.data[inside] > 0)
    objects = np.asarray(instances.data) > 0
    assert np.array_equal(accepted.data[inside & objects] - 1, np.asarray(instances.data)[inside & objects])
    assert np.all(accepted.data[inside & ~objects] == c.ACCEPTED_BACKGROUND)
    assert np.array_equal(annotations.data[~inside], painted[~inside])  # strokes elsewhere untouched
    assert accepted.contour == 1
    # accept a drawn rectangle too
    widget.correct_step.start_drawing("rectangle")
    shapes.add_rectangles([np.array([[400, 400], [480, 480]], dtype=float)])
    widget.correct_step.accept("rectangle")
    assert np.all(accepted.data[400:480, 400:480] > 0)

    # retrain (warm start): the accepted pixels are in the training set
    model = widget.controller.session.segmenter
    weights = model.fingerprint()
    assert train(qtbot, widget) is True
    # continued from the model (its history grows), trained on a copy: the old model never changed
    assert widget.controller.session.segmenter is not model and model.fingerprint() == weights
    assert len(widget.controller.session.segmenter.history) == len(model.history) + 1
    item = widget.controller.last_training_items[0]
    assert item.instance_mask is not None
    known = np.asarray(accepted.data) > 0  # objects cut by a region's border teach the classes only
    cut = cut_objects(np.where(known, np.asarray(accepted.data).astype(np.int64) - c.ACCEPTED_BACKGROUND, 0), known)
    assert np.array_equal(item.instance_mask, known & ~cut) and item.instance_mask.any()
    assert np.array_equal(item.annotations, np.asarray(annotations.data))
    # the curve goes on where the first run ended, each run's last step in its place
    assert [step for step, _ in widget.train_step.loss_plot.points] == [1, 2, 3, 4, 5, 6]

    # predicting again keeps the accepted objects and classes: the retrain never paints over what the user vouched for
    # (and so does a live update of the objects from the sliders)
    kept = np.asarray(accepted.data)
    regions = label_regions(np.where(kept > c.ACCEPTED_BACKGROUND, kept, 0), connectivity=1)

    def keeps_accepted() -> None:
        objects_now = np.asarray(instances.data)
        pairs = np.unique(np.stack([regions[regions > 0], objects_now[regions > 0]]), axis=1)
        assert pairs.shape[1] == regions.max() and (pairs[1] > 0).all()  # one object per accepted object...
        assert len(np.unique(pairs[1])) == regions.max()  # ... each its own
        assert not objects_now[kept == c.ACCEPTED_BACKGROUND].any()

    assert predict(qtbot, widget) == "done"
    keeps_accepted()
    assert np.array_equal(semantic.data[kept > 0], annotations.data[kept > 0])
    with qtbot.waitSignal(widget.controller.instances_updated, timeout=TIMEOUT):
        widget.predict_step.min_size_spin.setValue(widget.predict_step.min_size_spin.value() + 7)
    keeps_accepted()

    # clear accepted (annotations keep their labels); undo the accept in the annotations layer
    widget.correct_step.clear_accepted("plane")
    assert not np.any(accepted.data)
    annotations.undo()
    annotations.undo()
    assert np.array_equal(annotations.data, painted)

    # model checkpoint round trip without dialogs
    path = widget.train_step.save_model(tmp_path / "model.pt")
    assert path.is_file()
    widget.train_step.new_model()
    assert widget.controller.session.segmenter is None
    loaded = widget.train_step.load_model(path)
    assert loaded.class_names == ["background", "nucleus"]
    assert widget.controller.session.segmenter is loaded
    assert not widget.controller.messages.errors(), widget.controller.messages.errors()


def test_an_accepted_layer_that_does_not_fit_leaves_the_prediction_as_it_is(nuclei_dock):
    """A new prediction keeps the accepted objects; an accepted layer of another shape gives a warning, not a traceback."""
    viewer, widget = nuclei_dock
    image = viewer.layers[IMAGE]
    semantic = np.ones((512, 512), np.uint8)
    instances = np.zeros((512, 512), np.uint32)
    instances[10:20, 10:20] = 1
    layer = viewer.add_labels(np.zeros((512, 512), np.uint32), name=c.layer_name(IMAGE, c.ROLE_ACCEPTED))
    layer.data[0:30, 0:30] = c.ACCEPTED_BACKGROUND  # the user said: no object here
    kept_semantic, kept = widget.controller.keeping_accepted(image, (), semantic, instances)
    assert not kept.any()
    strokes = np.asarray(viewer.layers[c.layer_name(IMAGE, c.ROLE_ANNOTATIONS)].data)[0:30, 0:30]
    assert np.array_equal(kept_semantic[0:30, 0:30], np.where(strokes > 0, strokes, 1))  # the user's classes there
    assert (kept_semantic[30:] == 1).all()
    viewer.layers.remove(layer)
    viewer.add_labels(np.ones((100, 100), np.uint32), name=c.layer_name(IMAGE, c.ROLE_ACCEPTED))
    assert widget.controller.keeping_accepted(image, (), semantic, instances) == (semantic, instances)
    level, text = widget.controller.messages.log[-1][:2]
    assert level == "warning" and "without the accepted objects" in text
