import copy

import numpy as np
import pytest
import torch
from generators import drain
from synthetic import blobs

from napari_unet.conventions import ACCEPTED_BACKGROUND
from napari_unet.errors import UserInputError
from napari_unet.functionals.data import TrainingImage, prepare
from napari_unet.functionals.metrics import average_precision
from napari_unet.nn.segmenter import Segmenter
from napari_unet.nn.training import (
    BLEND_WITH_START,
    LEARNING_RATE,
    WARM_START_LEARNING_RATE,
    WARMUP_STEPS,
    Progress,
    TrainConfig,
    Trainer,
    _hold_instance_heads,
)

TINY = dict(patch_size=64, batch_size=4, device="cpu", seed=0)


def run_to_end(trainer: Trainer, should_stop=None):
    """The trainer's progress records and the model it returns."""
    return drain(trainer.run(should_stop))


def test_progress_records_and_step_budget():
    image, labels = blobs(96, n=8)
    trainer = Trainer([TrainingImage.from_instances(image[None], labels)], TrainConfig(steps=5, **TINY))
    records, segmenter = run_to_end(trainer)
    assert [r.step for r in records if not r.stage] == [1, 2, 3, 4, 5]
    assert [r.stage for r in records if r.stage] == ["counting mistakes: predicting image 1/1"]  # 8 objects
    assert all(isinstance(r, Progress) and np.isfinite(r.loss) and r.pixels_per_second > 0 for r in records)
    assert records[-1].remaining == 0.0 and records[-1].device.startswith("cpu")
    assert segmenter.history[-1]["steps"] == 5 and segmenter.instance_heads_trained


def test_stop_flag_ends_early_with_a_usable_model():
    image, labels = blobs(96, n=8)
    trainer = Trainer([TrainingImage.from_instances(image[None], labels)], TrainConfig(steps=1000, **TINY))
    seen = []
    gen = trainer.run(should_stop=lambda: len(seen) >= 3)
    with pytest.raises(StopIteration) as done:
        while True:
            seen.append(next(gen))
    segmenter = done.value.value
    assert [r.step for r in seen if not r.stage] == [1, 2, 3]
    assert segmenter.history[-1]["stopped"] is True
    assert segmenter.predict(image[None]).probabilities.shape == (2, 96, 96)


def test_scribbles_only_do_not_train_instance_heads_and_seconds_budget():
    image, labels = blobs(96, n=8)
    scribbles = np.zeros(labels.shape, np.uint8)
    scribbles[labels == 1] = 2
    scribbles[:3] = 1
    trainer = Trainer([TrainingImage.from_scribbles(image[None], scribbles)], TrainConfig(seconds=1.0, **TINY))
    records, segmenter = run_to_end(trainer)
    assert records and records[-1].elapsed >= 1.0
    assert not segmenter.instance_heads_trained


def test_seeded_runs_are_reproducible():
    image, labels = blobs(64, n=5)
    item = TrainingImage.from_instances(image[None], labels)
    losses = [[r.loss for r in run_to_end(Trainer([item], TrainConfig(steps=3, **TINY)))[0]] for _ in range(2)]
    assert losses[0] == losses[1]


def test_warm_start_continues_and_new_class_extends_head():
    image, labels = blobs(64, n=5)
    item = TrainingImage.from_instances(image[None], labels)
    _, first = run_to_end(Trainer([item], TrainConfig(steps=2, **TINY)))
    weights = first.net.encoders[0][0].weight.detach().clone()
    scribbles = np.where(labels > 0, 2, 1).astype(np.uint8)
    scribbles[:4, :4] = 3  # the user added a third class
    _, second = run_to_end(Trainer([TrainingImage.from_scribbles(image[None], scribbles)],
                                   TrainConfig(steps=1, **TINY), segmenter=first))
    assert second.config.n_classes == 3 and len(second.class_names) == 3
    assert len(second.history) == 2
    assert not torch.equal(second.net.encoders[0][0].weight, weights)  # trained further from the warm start
    with pytest.raises(UserInputError, match="channel"):
        Trainer([TrainingImage.from_instances(np.stack([image, image]), labels)], TrainConfig(steps=1, **TINY),
                segmenter=first).run().__next__()


def test_a_warm_start_fine_tunes_at_the_lower_rate_unless_a_rate_is_set():
    image, labels = blobs(64, n=5)
    item = TrainingImage.from_instances(image[None], labels)

    def first_step(start, **settings):
        """(peak rate in the history, largest change of a first-layer weight after one Adam step)."""
        before = None if start is None else start.net.encoders[0][0].weight.detach().clone()
        _, trained = run_to_end(Trainer([item], TrainConfig(steps=1, **settings, **TINY), segmenter=start))
        change = None if before is None else float((trained.net.encoders[0][0].weight.detach() - before).abs().max())
        return trained.history[-1]["config"]["learning_rate"], change

    new_rate, _ = first_step(None)
    _, start = run_to_end(Trainer([item], TrainConfig(steps=2, **TINY)))
    warm_rate, warm_change = first_step(copy.deepcopy(start))
    set_rate, set_change = first_step(copy.deepcopy(start), learning_rate=2e-2)
    assert new_rate == LEARNING_RATE and warm_rate == WARM_START_LEARNING_RATE < LEARNING_RATE and set_rate == 2e-2
    # Adam's first step moves each weight by about the warm-up rate: the rate recorded is the rate used
    assert warm_change == pytest.approx(WARM_START_LEARNING_RATE / WARMUP_STEPS, rel=0.05)
    assert set_change == pytest.approx(2e-2 / WARMUP_STEPS, rel=0.05)


def test_preview_is_served_from_the_training_thread():
    image, labels = blobs(64, n=5)
    trainer = Trainer([TrainingImage.from_instances(image[None], labels)], TrainConfig(steps=3, **TINY))
    trainer.request_preview(image[None, :32, :40], tag="view")
    records, _ = run_to_end(trainer)
    previews = [r.preview for r in records if r.preview is not None]
    assert len(previews) == 1
    tag, prediction = previews[0]
    assert tag == "view" and prediction.probabilities.shape == (2, 32, 40)


@pytest.mark.slow
def test_training_learns_objects_an_untrained_model_misses():
    image, labels = blobs(192, n=50, seed=1)
    train, test = (image[:128], labels[:128]), (image[128:], labels[128:])
    config = TrainConfig(steps=150, patch_size=64, batch_size=8, device="cpu", seed=0)
    trainer = Trainer([TrainingImage.from_instances(train[0][None], train[1])], config)
    records, segmenter = run_to_end(trainer)
    trained = segmenter.instances(segmenter.predict(test[0][None]))
    ap_trained = average_precision([test[1]], [trained], thresholds=[0.5])[0.5]

    torch.manual_seed(0)
    untrained = Segmenter.create(TrainConfig(**TINY).model_config(1, 2), ["background", "object"])
    untrained.instance_heads_trained = True
    baseline = untrained.instances(untrained.predict(test[0][None]))
    ap_untrained = average_precision([test[1]], [baseline], thresholds=[0.5])[0.5]
    assert ap_trained > 0.8 > ap_untrained + 0.3


def test_validation_strip_is_held_out_and_scored_when_data_is_large(monkeypatch):
    from napari_unet.nn import validation

    monkeypatch.setattr(validation, "MIN_ANNOTATED_PIXELS", 100)
    image, labels = blobs(128, n=12)
    item = TrainingImage.from_instances(image[None], labels)
    held = validation.split([item], 0.25)
    assert held.train[0].annotations.shape == (96, 128) and held.validation[0].annotations.shape == (32, 128)
    records, segmenter = run_to_end(Trainer([item], TrainConfig(steps=2, **TINY)))
    assert records[-1].validation is not None and set(records[-1].validation) == {"mean_iou", "ap50"}
    assert segmenter.history[-1]["validation"] == records[-1].validation
    assert validation.split([item], 0.25).validation  # monkeypatched threshold
    monkeypatch.setattr(validation, "MIN_ANNOTATED_PIXELS", 10**9)
    assert not validation.split([item], 0.25).validation


def test_out_of_gpu_memory_halves_the_batch_then_explains(monkeypatch):
    # No GPU here: inject the error torch raises when one runs out of memory.
    from napari_unet.nn import training

    real_step = training._train_step
    calls = []

    def step_that_runs_out_once(net, optimizer, scaler, batch, *args):
        calls.append(len(batch.image))
        if len(calls) == 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_step(net, optimizer, scaler, batch, *args)

    monkeypatch.setattr(training, "_train_step", step_that_runs_out_once)
    image, labels = blobs(64, n=5)
    item = TrainingImage.from_instances(image[None], labels)
    records, segmenter = run_to_end(Trainer([item], TrainConfig(steps=2, **TINY)))
    assert calls == [4, 2, 2]
    assert "out of GPU memory" in records[0].message and segmenter.history[-1]["steps"] == 2

    def always_out_of_memory(*args):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(training, "_train_step", always_out_of_memory)
    with pytest.raises(UserInputError, match="smaller model preset"):
        run_to_end(Trainer([item], TrainConfig(steps=2, **{**TINY, "batch_size": 1})))


def test_a_batch_without_annotated_pixels_gives_zero_gradient_not_an_error():
    from napari_unet.functionals.data import IGNORE
    from napari_unet.nn.training import _loss

    logits = torch.randn(2, 4, 8, 8, requires_grad=True)
    semantic = torch.full((2, 8, 8), IGNORE)
    zeros = torch.zeros(2, 8, 8)
    loss = _loss(logits, semantic, zeros, zeros, zeros.bool(), 2, torch.tensor(3.0))
    loss.backward()
    assert loss.item() == 0 and torch.count_nonzero(logits.grad) == 0


@pytest.mark.slow
def test_blending_with_the_start_model_moves_weights_back_by_the_fraction_asked():
    image, labels = blobs(64, n=5)
    item = TrainingImage.from_instances(image[None], labels)
    _, start = run_to_end(Trainer([item], TrainConfig(steps=2, **TINY)))
    before = {k: v.clone() for k, v in start.net.state_dict().items()}
    settings = dict(steps=3, tune_instances=False, **TINY)
    _, plain = run_to_end(Trainer([item], TrainConfig(**settings), segmenter=copy.deepcopy(start)))
    _, half = run_to_end(Trainer([item], TrainConfig(blend_with_start=0.5, **settings),
                                 segmenter=copy.deepcopy(start)))
    _, whole = run_to_end(Trainer([item], TrainConfig(blend_with_start=1.0, **settings),
                                  segmenter=copy.deepcopy(start)))
    plain_weights, half_weights = plain.net.state_dict(), half.net.state_dict()
    for name, value in whole.net.state_dict().items():
        if value.is_floating_point():
            assert torch.allclose(value, before[name])
            assert torch.allclose(half_weights[name], (before[name] + plain_weights[name]) / 2, atol=1e-6)
    assert not torch.equal(plain.net.encoders[0][0].weight, before["encoders.0.0.weight"])
    assert half.history[-1]["blended_with_start"] == 0.5 and "blended_with_start" not in plain.history[-1]
    with pytest.raises(UserInputError, match="blend"):
        TrainConfig(blend_with_start=1.5)
    # unset, a start model that learnt from more images than these (a pretrained one) is blended half-way
    pretrained = copy.deepcopy(start)
    pretrained.history[-1]["images"] = 400
    _, auto = run_to_end(Trainer([item], TrainConfig(**settings), segmenter=pretrained))
    assert auto.history[-1]["blended_with_start"] == BLEND_WITH_START
    assert torch.allclose(auto.net.encoders[0][0].weight, half.net.encoders[0][0].weight)
    # the dock's default class name is not the pretrained model's: renamed, the class is still blended back
    _, renamed = run_to_end(Trainer([item], TrainConfig(**settings), segmenter=copy.deepcopy(pretrained),
                                    class_names=["background", "renamed"]))
    assert renamed.class_names == ["background", "renamed"]
    assert renamed.history[-1]["blended_with_start"] == BLEND_WITH_START
    _, back = run_to_end(Trainer([item], TrainConfig(blend_with_start=1.0, **settings),
                                 segmenter=copy.deepcopy(start), class_names=["background", "renamed"]))
    for name, value in back.net.state_dict().items():
        if value.is_floating_point():
            assert torch.allclose(value, before[name])  # its class row came from the start's one class


@pytest.mark.slow
def test_later_rounds_blend_back_to_the_model_the_rounds_began_from_also_after_a_save(tmp_path):
    """Blending each round to the round before would let the rounds' drift add up (BENCHMARKS.md section 5)."""
    image, labels = blobs(64, n=5)
    item = TrainingImage.from_instances(image[None], labels)
    _, start = run_to_end(Trainer([item], TrainConfig(steps=2, **TINY)))
    before = {k: v.clone() for k, v in start.net.state_dict().items() if v.is_floating_point()}
    settings = dict(steps=3, tune_instances=False, **TINY)
    _, first = run_to_end(Trainer([item], TrainConfig(blend_with_start=0.5, **settings), segmenter=start))
    assert not torch.equal(first.net.encoders[0][0].weight, before["encoders.0.0.weight"])
    first.save(tmp_path / "round1.pt")
    again = Segmenter.load(tmp_path / "round1.pt")
    _, second = run_to_end(Trainer([item], TrainConfig(blend_with_start=1.0, **settings), segmenter=again))
    for name, value in second.net.state_dict().items():
        if name in before:
            assert torch.allclose(value, before[name])  # the first round's start, not the first round's end
    checkpoint = torch.load(tmp_path / "round1.pt", weights_only=True)
    checkpoint["anchor"]["encoders.0.0.weight"] = torch.zeros(3)
    torch.save(checkpoint, tmp_path / "bad.pt")
    with pytest.raises(UserInputError, match="blend anchor"):
        Segmenter.load(tmp_path / "bad.pt")
    # renaming a class keeps the anchor (its rows follow the class); a class that starts fresh drops it
    renamed = first.adapt_classes(["background", "renamed"])
    assert torch.equal(renamed.anchor["head.weight"], first.anchor["head.weight"])
    assert first.adapt_classes(["background", "cell", "membrane"]).anchor is None


def test_warm_start_on_scribbles_keeps_the_instance_heads_it_started_with():
    """Scribbles give the instance heads no targets: a warm start's own outputs hold them in place."""
    image, labels = blobs(96, n=8)
    _, start = run_to_end(Trainer([TrainingImage.from_instances(image[None], labels)], TrainConfig(steps=40, **TINY)))
    before = start.predict(image[None]).distance
    scribbles = np.zeros(labels.shape, np.uint8)
    scribbles[labels == 1] = 2
    scribbles[:3] = 1
    drift = {}
    for keep in (True, False):
        # 1e-2: at 3e-2 the 30 steps were chaotic, and the order of the two drifts changed with the CPU model
        config = TrainConfig(steps=30, learning_rate=1e-2, keep_instance_heads=keep, **TINY)
        _, tuned = run_to_end(Trainer([TrainingImage.from_scribbles(image[None], scribbles)], config,
                                      segmenter=copy.deepcopy(start)))
        assert tuned.instance_heads_trained
        drift[keep] = float(np.abs(tuned.predict(image[None]).distance - before).mean())
    assert drift[False] > 0.05 and drift[True] < 0.6 * drift[False]  # seeds 0-2, Intel Xeon: 0.024-0.034 vs 0.085-0.103


def test_held_instance_targets_are_the_start_models_outputs_only_where_none_are_known():
    image, labels = blobs(64, n=5)
    accepted = np.zeros(labels.shape, np.int64)
    accepted[:32] = np.where(labels[:32] > 0, labels[:32] + ACCEPTED_BACKGROUND, ACCEPTED_BACKGROUND)
    item = TrainingImage.from_annotations(image[None], np.where(labels > 0, 2, 1).astype(np.uint8), accepted)
    torch.manual_seed(0)
    start = Segmenter.create(TrainConfig(**TINY).model_config(1, 2), ["background", "object"])
    prepared = prepare(item, start.normalisation, margin=0)
    known, boundary = prepared.instance_valid.copy(), prepared.boundary.copy()
    assert (known == item.instance_mask).all() and known[:30].any() and not known[32:].any()
    _hold_instance_heads(start, prepared, torch.device("cpu"))
    own = start.predict(image[None])  # the same normalisation, no resampling: the same outputs
    assert prepared.instance_valid.all()
    np.testing.assert_array_equal(prepared.boundary[known], boundary[known])
    np.testing.assert_allclose(prepared.boundary[~known], own.boundary[~known], atol=1e-4)
    np.testing.assert_allclose(prepared.distance[~known], own.distance[~known], atol=1e-4)



def test_each_source_image_is_recorded_at_the_size_it_was_trained_at():
    from dataclasses import replace

    from napari_unet.functionals.scale import object_diameter

    small_image, small = blobs(96, n=12, radius=(5, 6))
    large_image, large = blobs(96, n=3, radius=(12, 14), seed=1)
    scribbles = np.zeros(small.shape, np.uint8)
    scribbles[small > 0], scribbles[:2] = 2, 1
    items = [replace(TrainingImage.from_instances(small_image[None], small), source="small"),
             replace(TrainingImage.from_instances(large_image[None], large), source="large"),
             replace(TrainingImage.from_scribbles(small_image[None], scribbles), source="scribbled")]
    trainer = Trainer(items, TrainConfig(steps=1, validation_fraction=0.0, tune_instances=False, **TINY))
    _, segmenter = run_to_end(trainer)
    assert trainer.diameters["small"] == pytest.approx(object_diameter(small), rel=0.01)
    assert trainer.diameters["large"] == pytest.approx(object_diameter(large), rel=0.01)
    assert trainer.diameters["large"] > 2 * trainer.diameters["small"]
    # scribbles alone: the others' median, which is also the model's one training diameter
    assert trainer.diameters["scribbled"] == pytest.approx(segmenter.object_diameter, rel=0.01)


def test_whole_number_settings_given_as_floats_become_ints():
    """A seed from a benchmark's `--set seed=1` arrives as 1.0: numpy's generators refuse floats."""
    config = TrainConfig(seed=1.0, threads=2.0, steps=3.0)
    assert [(type(v), v) for v in (config.seed, config.threads, config.steps)] == [(int, 1), (int, 2), (int, 3)]
    np.random.default_rng(config.seed)  # would raise TypeError on the float
