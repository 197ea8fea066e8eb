"""The predict step's object diameter: auto on images the model has not seen, the training diameter
on its own training images, or a size the user sets (real viewer, tiny real model)."""

from __future__ import annotations

import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from dock_helpers import IMAGE, predict  # noqa: E402

from napari_unet import conventions as c  # noqa: E402
from napari_unet.functionals.scale import AUTO  # noqa: E402
from napari_unet.napari import layers as lb  # noqa: E402
from napari_unet.napari.session import Session  # noqa: E402
from napari_unet.nn.model import ModelConfig  # noqa: E402
from napari_unet.nn.segmenter import Segmenter  # noqa: E402
from napari_unet.widgets import UNetWidget  # noqa: E402


def _tiny_model(path, *, canonical=20.0, trained=10.0):
    """A shipped-like model: its training objects were 10 px, it works at 20 px."""
    return Segmenter.create(ModelConfig(depth=2, base_width=4), ["background", "nucleus"],
                            canonical_diameter=canonical, object_diameter=trained).save(path)


def _predict(qtbot, widget):
    assert predict(qtbot, widget, "plane") == "done"
    instances = widget.controller.paired(c.ROLE_INSTANCES)
    entry = widget.controller.session.cache.get(IMAGE, ())
    return lb.meta(instances)["provenance"], entry.prediction.scale, widget.predict_step.instance_status.text()


def test_auto_only_where_the_model_has_not_seen_the_image():
    session = Session()
    assert session.diameter_for("a", AUTO) is None  # no model yet
    session.set_model(Segmenter.create(ModelConfig(depth=2, base_width=4), ["bg", "fg"], canonical_diameter=20.0),
                      new=True)
    assert session.diameter_for("a", AUTO) == AUTO and session.diameter_for("a", 33.0) == 33.0
    session.set_model(session.segmenter, trained_on=["a"])  # trained here on "a"
    assert session.diameter_for("a", AUTO) is None and session.diameter_for("b", AUTO) == AUTO
    session.set_model(session.segmenter, trained_on=["b"])  # warm start: it has seen both
    assert session.trained_on == {"a", "b"}
    session.rename_image("a", "a2")  # a renamed layer is still the image it was trained on
    session.forget_image("b")  # a removed one: another image of that name later is new to the model
    assert session.diameter_for("a2", AUTO) is None and session.diameter_for("b", AUTO) == AUTO
    session.set_model(session.segmenter, new=True)  # a model loaded from a file knows none of them
    assert session.diameter_for("a", AUTO) == AUTO and session.diameter_for("a", None) is None
    fixed = Segmenter.create(ModelConfig(depth=2, base_width=4), ["bg", "fg"], canonical_diameter=None)
    session.set_model(fixed, new=True)  # a model that never resizes: nothing to measure
    assert session.diameter_for("a", AUTO) is None


def test_images_trained_on_are_predicted_at_the_size_each_was_trained_at():
    session = Session()
    session.set_model(Segmenter.create(ModelConfig(depth=2, base_width=4), ["bg", "fg"], canonical_diameter=20.0,
                                       object_diameter=25.0), new=True)
    session.set_model(session.segmenter, trained_on=["small", "large", "scribbled"],
                      diameters={"small": 12.0, "large": 40.0})  # "scribbled": no objects of its own known
    assert session.diameter_for("small", AUTO) == 12.0 and session.diameter_for("large", AUTO) == 40.0
    assert session.diameter_for("scribbled", AUTO) is None  # the model's training diameter
    session.rename_image("large", "large2")
    session.forget_image("small")
    assert session.diameter_for("large2", AUTO) == 40.0 and session.diameter_for("small", AUTO) == AUTO
    session.set_model(session.segmenter, new=True)
    assert session.trained_diameters == {} and session.diameter_for("large2", AUTO) == AUTO


def test_object_diameter_control_sets_the_scale_of_predictions(make_napari_viewer, napari_unet_plugin, qtbot,
                                                               tmp_path):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-unet", "nuclei")
    widget = UNetWidget(viewer)
    step = widget.predict_step
    widget.controller.load_model(_tiny_model(tmp_path / "shipped.pt"))
    # a new image for this model: auto measures (the default a user of a shipped model needs)
    assert step.diameter_combo.currentText() == "auto" and not step.diameter_spin.isEnabled()
    assert "10 px" in step.diameter_combo.toolTip() and "auto" in step.diameter_label.toolTip()
    provenance, _, status = _predict(qtbot, widget)
    assert provenance["object_diameter_source"] == "measured"
    assert f"predicted for objects of {provenance['object_diameter']:.0f} px (measured)" in status

    step.diameter_combo.setCurrentText("this size")
    assert step.diameter_spin.isEnabled()
    step.diameter_spin.setValue(40)
    provenance, scale, status = _predict(qtbot, widget)
    assert scale == pytest.approx(0.5) and provenance["object_diameter"] == 40.0
    assert "objects of 40 px (set)" in status

    step.diameter_combo.setCurrentText("as trained")
    provenance, scale, _ = _predict(qtbot, widget)
    assert scale == pytest.approx(2.0) and provenance == {**provenance, "object_diameter": 10.0,
                                                         "object_diameter_source": "as trained"}
    # the image it was trained on (here: in this viewer): auto keeps the training diameter, one pass
    step.diameter_combo.setCurrentText("auto")
    widget.controller.session.set_model(widget.controller.segmenter, trained_on=[IMAGE])
    provenance, scale, _ = _predict(qtbot, widget)
    assert scale == pytest.approx(2.0) and provenance["object_diameter_source"] == "as trained"
    step.diameter_combo.setCurrentText("this size")
    step.diameter_spin.setValue(25)
    widget.shutdown()

    again = UNetWidget(make_napari_viewer())  # persisted with the other settings
    assert again.predict_step.diameter_combo.currentText() == "this size"
    assert again.predict_step.object_diameter() == 25.0
    again.shutdown()


def test_the_model_line_tells_the_steps_trained_here_from_those_a_shipped_model_came_with():
    session = Session()
    shipped = Segmenter.create(ModelConfig(depth=2, base_width=4), ["bg", "fg"])
    shipped.history = [{"steps": 40_000}, {"steps": 881}]
    session.set_model(shipped, new=True)  # loaded: all its steps are from elsewhere
    assert "40,881 steps" in session.model_summary() and "here" not in session.model_summary()
    shipped.history.append({"steps": 3})  # fine-tuned here (the dock's training returns it with one more run)
    session.set_model(shipped, trained_on=["a"])
    assert "40,884 steps (3 of them here)" in session.model_summary()
    shipped.history.append({"steps": 97})
    session.set_model(shipped, trained_on=["a"])
    assert "40,981 steps (100 of them here)" in session.model_summary()
    scratch = Segmenter.create(ModelConfig(depth=2, base_width=4), ["bg", "fg"])
    scratch.history = [{"steps": 50}]
    session.set_model(None, new=True)
    session.set_model(scratch, trained_on=["a"])  # a new model trained here: every step is the user's
    assert "50 steps" in session.model_summary() and "here" not in session.model_summary()
