"""Instance settings tuned on the user's outlined objects (functionals.instance_tuning)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_unet.functionals.error_kinds import ErrorKinds
from napari_unet.functionals.instance_tuning import (
    MIN_OBJECTS,
    OVERRIDE_OBJECTS,
    InstanceTuning,
    TuningCase,
    tune_instance_params,
)
from napari_unet.functionals.instances import InstanceParams, instances_from_prediction
from napari_unet.functionals.prediction import Prediction
from napari_unet.functionals.targets import boundary_target, distance_target


def lobed_objects(rows: int = 5, cols: int = 8, neck_border: float = 0.6) -> tuple[Prediction, np.ndarray, np.ndarray]:
    """Outputs of a model for rows x cols objects of two lobes each (two distance peaks), whose boundary
    head marks the line between the lobes at `neck_border` x their outer edge; (prediction, the objects
    as wholes, the lobes as objects of their own)."""
    lobes = np.zeros((rows * 30, cols * 50), np.int32)
    yy, xx = np.ogrid[:30, :50]
    for i in range(rows):
        for j in range(cols):
            cell = lobes[i * 30:(i + 1) * 30, j * 50:(j + 1) * 50]
            left, right = (yy - 15) ** 2 + (xx - 16) ** 2 <= 100, (yy - 15) ** 2 + (xx - 33) ** 2 <= 100
            n = 2 * (i * cols + j)
            cell[left] = n + 1
            cell[right & ~left] = n + 2
    wholes = (lobes + 1) // 2
    foreground = (lobes > 0).astype(np.float32)
    boundary = boundary_target(wholes)
    boundary[(boundary_target(lobes) > 0) & (boundary == 0)] = neck_border
    prediction = Prediction(np.stack([1 - foreground, foreground]), boundary, distance_target(lobes))
    return prediction, wholes, lobes


def model_instances(prediction: Prediction, params: InstanceParams) -> np.ndarray:
    return instances_from_prediction(prediction, params)


def test_a_faint_border_inside_whole_objects_tunes_border_evidence_up():
    prediction, wholes, _ = lobed_objects(neck_border=0.6)
    default = model_instances(prediction, InstanceParams())
    assert default.max() == 2 * wholes.max()  # the default keeps the lobes apart: every object in two
    tuning = tune_instance_params([TuningCase(prediction, wholes)], model_instances)
    assert tuning.tuned and tuning.params.border_evidence == 0.7  # the lowest value that merges them
    assert tuning.default_ap50 == 0.5 and tuning.ap50 == 1.0  # one lobe matches its object, the other is a false one
    assert tuning.objects == wholes.max() and tuning.images == 1
    assert "border evidence 0.7" in tuning.describe()
    assert tuning.errors.matched == wholes.max() and tuning.errors.ap50 == tuning.ap50  # nothing left
    assert tuning.describe_errors() == f"On the {wholes.max()} objects you outlined, which it learnt from: " \
                                       f"all {wholes.max()} objects matched"


def test_the_mistakes_left_at_the_picked_settings_are_counted_by_kind():
    """A neck marked at 0.95 of the outer edge is never merged (the search stops at 0.9): each object stays
    in two lobes, the larger matches it and the other is a piece on it. A model that finds nothing misses
    every object, and the line names the remedy."""
    prediction, wholes, _ = lobed_objects(rows=3, cols=8, neck_border=0.95)
    tuning = tune_instance_params([TuningCase(prediction, wholes)], model_instances)
    assert tuning.params.border_evidence == InstanceParams().border_evidence and tuning.ap50 == 0.5
    errors = tuning.errors
    assert errors.matched == errors.on_objects == 24 and errors.split == errors.missed == errors.false == 0
    assert errors.most_common() is None  # pieces on matched objects have no remedy of their own
    assert tuning.describe_errors().endswith("24 matched; 24 unmatched pieces on objects")
    blind = tune_instance_params([TuningCase(prediction, wholes)], lambda p, params: model_instances(p, params) * 0)
    assert blind.errors.missed == 24 and blind.ap50 == 0.0
    assert blind.describe_errors().endswith("0 matched; 24 missed. Most common, missed: a lower threshold keeps "
                                            "fainter objects")


def test_min_confidence_is_tuned_off_where_the_user_outlined_faint_objects_and_on_where_they_left_them_out():
    """A model unsure of a third of the objects (mean foreground 0.65, the others 1): the default drops them.
    Where the user outlined them, tuning keeps every object; where the user left them out (tuning from
    settings that keep every object, as a shipped model's), it drops them again."""
    prediction, wholes, _ = lobed_objects(neck_border=0.0)  # the default settings find whole objects
    faint = (wholes % 3 == 0) & (wholes > 0)
    prediction.probabilities[1][faint] = 0.65
    prediction.probabilities[0] = 1 - prediction.probabilities[1]
    outlined = tune_instance_params([TuningCase(prediction, wholes)], model_instances)
    assert InstanceParams().min_confidence == 0.85 and outlined.default_ap50 < 0.7  # the faint ones missed
    assert outlined.tuned and outlined.params.min_confidence == 0.0 and outlined.ap50 == 1.0
    assert "min confidence 0" in outlined.describe()
    left_out = np.where(faint, 0, wholes)
    keep_all = InstanceTuning(InstanceParams(min_confidence=0.0), True, 0.8, 0.7, 19, 1)
    dropped = tune_instance_params([TuningCase(prediction, left_out)], model_instances, keep_all)
    assert dropped.tuned and dropped.params.min_confidence == 0.8 and dropped.ap50 == 1.0
    assert dropped.errors.false == 0 and dropped.errors.matched == np.unique(left_out[left_out > 0]).size


def test_settings_stored_before_min_confidence_existed_keep_every_object():
    stored = InstanceTuning(InstanceParams(border_evidence=0.7), True, 0.81, 0.78, 412, 12).to_dict()
    del stored["params"]["min_confidence"]
    assert InstanceTuning.from_dict(stored).params == InstanceParams(border_evidence=0.7, min_confidence=0.0)


def test_where_the_lobes_are_the_objects_the_defaults_stay():
    prediction, _, lobes = lobed_objects(neck_border=0.6)
    tuning = tune_instance_params([TuningCase(prediction, lobes)], model_instances)
    # 0, 0.3 and 0.5 all keep the lobes apart: a tie keeps the default
    assert tuning.tuned and tuning.params == InstanceParams() and tuning.ap50 == tuning.default_ap50 == 1.0
    assert "the defaults" in tuning.describe()


def test_the_search_starts_from_the_models_own_settings():
    """A fine-tuned model starts from the settings picked for it, not from the package defaults: where
    nothing beats them by the margin they stay, whole, and the line names every one that differs."""
    prediction, _, lobes = lobed_objects(neck_border=0.6)
    start = InstanceParams(seed_prominence=0.2, min_size=20, threshold=0.4)
    tuning = tune_instance_params([TuningCase(prediction, lobes)], model_instances,
                                  InstanceTuning(start, True, 0.8, 0.7, 60, 2))
    assert tuning.tuned and tuning.params == start and tuning.ap50 == tuning.default_ap50 == 1.0
    assert "threshold 0.4, min size 20, seed prominence 0.2" in tuning.describe()
    shipped = InstanceTuning(start, True, 0.877, 0.854, 8000, 100, source="100 DSB2018 images")
    assert shipped.describe().startswith("tuned on 100 DSB2018 images: ") and "before 0.854" in shipped.describe()


def test_settings_picked_on_many_objects_give_way_only_to_as_many():
    """A shipped model's settings (picked on thousands of objects) stay against 21 accepted objects, where
    a one-object gain is chance, and say so; 100 outlined objects may change them."""
    shipped = InstanceTuning(InstanceParams(seed_prominence=0.2), True, 0.877, 0.854, 3739, 100, source="DSB2018")
    prediction, wholes, _ = lobed_objects(rows=3, cols=7, neck_border=0.6)
    kept = tune_instance_params([TuningCase(prediction, wholes)], model_instances, shipped)
    assert not kept.tuned and kept.params == shipped.params and kept.objects == 21
    assert kept.describe() == ("instance settings: kept, seed prominence 0.2 (21 outlined objects, fewer than "
                               f"{OVERRIDE_OBJECTS} to change settings picked on 3739)")
    prediction, wholes, _ = lobed_objects(rows=5, cols=OVERRIDE_OBJECTS // 5, neck_border=0.6)
    changed = tune_instance_params([TuningCase(prediction, wholes)], model_instances, shipped)
    assert changed.tuned and changed.params == InstanceParams(seed_prominence=0.2, border_evidence=0.7)


def test_without_outlined_objects_or_with_too_few_the_defaults_stay_and_say_why():
    assert not tune_instance_params([], model_instances).tuned
    prediction, wholes, _ = lobed_objects(rows=1, cols=MIN_OBJECTS - 1)
    few = tune_instance_params([TuningCase(prediction, wholes)], model_instances)
    assert not few.tuned and few.params == InstanceParams()
    assert f"fewer than {MIN_OBJECTS}" in few.reason and few.reason in few.describe()


def test_a_correction_round_of_21_accepted_objects_is_tuned():
    """The shipped sample's correction round accepts 21 whole objects and splits some of them (BENCHMARKS.md
    section 6): tuning on them removes the splits, where a floor of 30 kept the defaults."""
    prediction, wholes, _ = lobed_objects(rows=3, cols=7, neck_border=0.6)
    tuning = tune_instance_params([TuningCase(prediction, wholes)], model_instances)
    assert tuning.objects == 21 and tuning.tuned and tuning.params.border_evidence == 0.7


def test_only_objects_inside_the_accepted_regions_are_judged():
    prediction, wholes, _ = lobed_objects(rows=8, neck_border=0.6)
    known = np.zeros(wholes.shape, bool)
    known[:, : wholes.shape[1] // 2] = True  # the left half is accepted, holding whole objects
    truth = np.where(known, wholes, 0)
    tuning = tune_instance_params([TuningCase(prediction, truth, known)], model_instances)
    assert tuning.params.border_evidence == 0.7 and tuning.ap50 == 1.0  # the right half's objects count for nothing
    assert tuning.objects == np.unique(truth[truth > 0]).size


def test_round_trip_through_a_table_and_damaged_tables_are_refused():
    tuning = InstanceTuning(InstanceParams(border_evidence=0.7), True, 0.81, 0.78, 412, 12, source="a shipped set")
    assert InstanceTuning.from_dict(tuning.to_dict()) == tuning
    older = {k: v for k, v in tuning.to_dict().items() if k != "source"}  # saved before `source` existed
    assert InstanceTuning.from_dict(older).source == ""
    with pytest.raises(TypeError):
        InstanceTuning.from_dict({"tuned": True})
    with pytest.raises(Exception, match="border evidence"):
        InstanceTuning.from_dict({**tuning.to_dict(), "params": {"border_evidence": 3.0}})
    counted = InstanceTuning(InstanceParams(), True, 0.8, 0.8, 30, 1, errors=ErrorKinds(matched=24, merged=6))
    assert InstanceTuning.from_dict(counted.to_dict()) == counted
    for damaged in ({"matched": -1}, {**counted.to_dict()["errors"], "merged": "six"}, [1, 2]):
        assert InstanceTuning.from_dict({**counted.to_dict(), "errors": damaged}).errors is None
