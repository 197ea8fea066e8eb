"""A model's tuned instance settings: found after training, kept in its checkpoint, used by `predict`."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import tifffile
import torch
from synthetic import blobs
from test_training import TINY, run_to_end

from napari_unet.cli import main
from napari_unet.functionals.data import TrainingImage
from napari_unet.functionals.error_kinds import ErrorKinds
from napari_unet.functionals.instance_tuning import MIN_OBJECTS, InstanceTuning
from napari_unet.functionals.instances import InstanceParams
from napari_unet.nn.instance_tuning import tuning_steps
from napari_unet.nn.segmenter import Segmenter
from napari_unet.nn.training import TrainConfig, Trainer


def test_training_on_outlined_objects_tunes_and_reports_it_as_progress():
    image, labels = blobs(160, n=40, seed=1)
    assert labels.max() >= MIN_OBJECTS
    trainer = Trainer([TrainingImage.from_instances(image[None], labels)], TrainConfig(steps=3, **TINY))
    records, segmenter = run_to_end(trainer)
    assert [r.step for r in records if not r.stage] == [1, 2, 3]
    stages = [r.stage for r in records if r.stage]
    assert stages[0] == "tuning instance settings: predicting image 1/1" and "comparing" in stages[-1]
    assert all(r.step == 3 and r.fraction == 1.0 for r in records if r.stage)
    tuning = trainer.tuning
    assert tuning is not None and tuning.tuned and tuning.objects == labels.max() and tuning.images == 1
    assert tuning.errors is not None and tuning.errors.ap50 == pytest.approx(tuning.ap50, abs=1e-4)
    assert tuning.errors.matched + tuning.errors.missed + tuning.errors.split + tuning.errors.merged \
        + tuning.errors.misshapen == tuning.objects  # every outlined object has a kind
    assert segmenter.instance_tuning == tuning and segmenter.instance_params == tuning.params
    assert segmenter.history[-1]["instance_tuning"] == tuning.to_dict()


def test_scribbles_keep_what_was_tuned_before_and_say_why_not_now():
    image, labels = blobs(96, n=8)
    scribbles = np.zeros(labels.shape, np.uint8)
    scribbles[labels == 1], scribbles[:2] = 2, 1
    start = Segmenter.create(TrainConfig(**TINY).model_config(1, 2), ["background", "object"])
    start.instance_heads_trained = True
    tuned = InstanceTuning(InstanceParams(border_evidence=0.7), True, 0.8, 0.7, 100, 3,
                           errors=ErrorKinds(matched=80, merged=20))
    start.instance_tuning = tuned
    trainer = Trainer([TrainingImage.from_scribbles(image[None], scribbles)], TrainConfig(steps=1, **TINY),
                      segmenter=start)
    records, segmenter = run_to_end(trainer)
    assert not any(r.stage for r in records)
    assert not trainer.tuning.tuned and "scribbles only" in trainer.tuning.describe()
    assert segmenter.instance_params.border_evidence == 0.7
    assert segmenter.instance_tuning == replace(tuned, errors=None)  # counted with the weights before this run
    off = Trainer([TrainingImage.from_instances(image[None], labels)], TrainConfig(steps=1, tune_instances=False, **TINY))
    assert run_to_end(off)[1].instance_tuning is None and off.tuning is None


def test_too_few_objects_to_change_the_settings_still_count_the_mistakes_left_on_them():
    """A correction round of a few accepted objects on a model with settings picked on many: the settings
    stay, and the mistakes on those objects are counted with the weights trained now."""
    image, labels = blobs(96, n=8)
    start = Segmenter.create(TrainConfig(**TINY).model_config(1, 2), ["background", "object"])
    start.instance_heads_trained = True
    shipped = InstanceTuning(InstanceParams(border_evidence=0.7), True, 0.877, 0.854, 3739, 100, source="DSB2018",
                             errors=ErrorKinds(matched=3000, merged=739))
    start.instance_tuning = shipped
    trainer = Trainer([TrainingImage.from_instances(image[None], labels)], TrainConfig(steps=2, **TINY),
                      segmenter=start)
    records, segmenter = run_to_end(trainer)
    stages = [r.stage for r in records if r.stage]
    assert stages == ["counting mistakes: predicting image 1/1"]  # no search
    found = trainer.tuning
    assert not found.tuned and f"fewer than {MIN_OBJECTS}" in found.reason
    assert found.errors is not None and found.errors.true_objects == labels.max() == 8
    assert segmenter.instance_tuning == replace(shipped, errors=found.errors)  # the settings stay, counted anew
    assert segmenter.instance_tuning.describe_errors().startswith("On the 8 objects you outlined")


def test_tuned_settings_survive_the_checkpoint_and_old_checkpoints_load_with_the_defaults(tmp_path):
    segmenter = Segmenter.create(TrainConfig(**TINY).model_config(1, 2), ["background", "object"])
    assert segmenter.instance_params == InstanceParams()
    old = segmenter.to_checkpoint()
    del old["instance_tuning"]  # as saved before tuning existed
    assert Segmenter.from_checkpoint(old).instance_tuning is None
    segmenter.instance_tuning = InstanceTuning(InstanceParams(threshold=0.4, border_evidence=0.7), True, 0.8, 0.7, 90, 2)
    loaded = Segmenter.load(segmenter.save(tmp_path / "m.pt"))
    assert loaded.instance_tuning == segmenter.instance_tuning
    assert loaded.instance_params == InstanceParams(threshold=0.4, border_evidence=0.7)
    assert loaded.model_card()["instance_settings"]["border_evidence"] == 0.7
    untuned = InstanceTuning(InstanceParams(), False, reason="scribbles only")
    segmenter.instance_tuning = untuned
    assert Segmenter.load(segmenter.save(tmp_path / "u.pt")).instance_params == InstanceParams()
    damaged = segmenter.to_checkpoint()
    damaged["instance_tuning"] = {"params": {"threshold": 7.0}, "tuned": True}
    torch.save(damaged, tmp_path / "d.pt")
    with pytest.raises(Exception, match="threshold"):
        Segmenter.load(tmp_path / "d.pt")


def test_cli_predict_uses_the_models_settings_unless_an_option_is_given(tmp_path, capsys):
    image, labels = blobs(96, n=10)
    tifffile.imwrite(tmp_path / "img.tif", image)
    tifffile.imwrite(tmp_path / "lbl.tif", labels)
    fast = ["--steps", "3", "--patch-size", "48", "--batch-size", "2", "--device", "cpu", "--quiet"]
    assert main(["train", "--image", str(tmp_path / "img.tif"), "--instances", str(tmp_path / "lbl.tif"),
                 "--out", str(tmp_path / "plain.pt"), *fast]) == 0
    out = capsys.readouterr().out
    assert f"10 outlined objects, fewer than {MIN_OBJECTS}" in out  # too few to tune: says why
    assert "On the 10 objects you outlined, which it learnt from: " in out  # but enough to count mistakes on
    model = Segmenter.load(tmp_path / "plain.pt")
    model.instance_tuning = InstanceTuning(InstanceParams(threshold=0.9, border_evidence=0.7), True, 0.9, 0.8, 50, 1)
    model.save(tmp_path / "tuned.pt")

    def predict(name: str, *options: str) -> np.ndarray:
        out = tmp_path / f"{name}_{len(list(tmp_path.glob('*_out.tif')))}_out.tif"
        assert main(["predict", "--model", str(tmp_path / name), "--image", str(tmp_path / "img.tif"), "--quiet",
                     "--instances", str(out), *options]) == 0
        return tifffile.imread(out)

    stored = predict("tuned.pt")
    assert np.array_equal(stored, predict("plain.pt", "--threshold", "0.9", "--border-evidence", "0.7"))
    overridden = predict("tuned.pt", "--threshold", "0.05")  # the border evidence stays the model's
    assert np.array_equal(overridden, predict("plain.pt", "--threshold", "0.05", "--border-evidence", "0.7"))
    assert not np.array_equal(stored, overridden)


def test_outlined_objects_with_untrained_instance_heads_say_so():
    image, labels = blobs(96, n=8)
    segmenter = Segmenter.create(TrainConfig(**TINY).model_config(1, 2), ["background", "object"])
    assert not segmenter.instance_heads_trained
    steps = tuning_steps(segmenter, [TrainingImage.from_instances(image[None], labels)])
    with pytest.raises(StopIteration) as done:
        next(steps)
    tuning = done.value.value
    assert not tuning.tuned and "instance heads are not trained" in tuning.describe()


def test_cli_train_prints_the_mistakes_left_on_the_outlined_objects(tmp_path, capsys):
    image, labels = blobs(160, n=40, seed=1)
    tifffile.imwrite(tmp_path / "img.tif", image)
    tifffile.imwrite(tmp_path / "lbl.tif", labels)
    assert main(["train", "--image", str(tmp_path / "img.tif"), "--instances", str(tmp_path / "lbl.tif"),
                 "--out", str(tmp_path / "m.pt"), "--steps", "3", "--patch-size", "48", "--batch-size", "2",
                 "--device", "cpu", "--quiet"]) == 0
    out = capsys.readouterr().out
    tuning = Segmenter.load(tmp_path / "m.pt").instance_tuning
    assert tuning.tuned and tuning.errors is not None  # kept in the checkpoint with the settings
    assert tuning.describe_errors(options=True) in out
    assert f"On the {labels.max()} objects you outlined, which it learnt from: " in out


def test_images_too_large_for_the_search_are_left_out_and_the_line_says_so(monkeypatch):
    from napari_unet.nn import instance_tuning

    big_image, big = blobs(96, n=8)
    small_image, small = blobs(64, n=6, seed=3)
    model = Segmenter.create(TrainConfig(**TINY).model_config(1, 2), ["background", "object"])
    model.instance_heads_trained = True
    items = [TrainingImage.from_instances(big_image[None], big), TrainingImage.from_instances(small_image[None], small)]
    monkeypatch.setattr(instance_tuning, "MAX_PIXELS", 64 * 64)  # the small image fits, the big one does not

    def run(items):
        steps = tuning_steps(model, items)
        try:
            while True:
                next(steps)
        except StopIteration as done:
            return done.value

    found = run(items)
    assert found.errors is not None and found.errors.true_objects == small.max()  # only the small image counted
    alone = run(items[:1])
    assert not alone.tuned and alone.errors is None and "larger than 0.004096 Mpx" in alone.describe()
