"""Instance settings chosen per model, on the user's own instance annotations.

The best `border_evidence` (and foreground threshold) differs from model to model: a model
trained for minutes marks every border faintly, a well-trained one marks them clearly, and EM
cells want fewer splits than touching nuclei (BENCHMARKS.md headline). So after training the
model's outputs on the images whose objects the user outlined (dense instance labels, accepted
regions) are computed once and only the instance step is repeated over a small grid, keeping
the settings with the best AP@0.5 there. Scribbles say nothing about where one object ends
and the next begins: without outlined objects the model's settings stay, and the result says
why. A candidate must beat the model's current settings (the defaults, or those picked for a
shipped model) by more than chance on that many objects: the model was trained on these very
annotations, so small differences there do not carry to new images.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np

from napari_unet.functionals.error_kinds import ErrorKinds, total_error_kinds
from napari_unet.functionals.instances import InstanceParams
from napari_unet.functionals.prediction import Prediction

MIN_OBJECTS = 20  # fewer outlined objects than this: the model's settings stay (20, not 30: BENCHMARKS.md section 6)
# Settings picked on at least this many objects (a shipped model's) give way only to as many: on 21
# accepted objects one seed of the sample's loop traded them for border evidence 0.9 and lost 0.017 on
# the whole image (BENCHMARKS.md headline); below 100 objects AP@0.5 moves by chance more than 0.03.
OVERRIDE_OBJECTS = 100
MIN_GAIN = 0.01  # AP@0.5 a change must add (or one object's worth on few objects, whichever is more)
# Searched one after the other from the model's settings (coordinate search): border evidence, the threshold,
# then how sure of an object the network must be (values chosen on `train` images, BENCHMARKS.md headline).
SEARCH: tuple[tuple[str, tuple[float, ...]], ...] = (
    ("border_evidence", (0.0, 0.3, 0.5, 0.7, 0.9)),
    ("threshold", (0.4, 0.5, 0.6)),
    ("min_confidence", (0.0, 0.8, 0.85, 0.9)),
)
# Settings stored before `min_confidence` existed were picked with every object kept.
BEFORE_MIN_CONFIDENCE = 0.0
SETTING_NAMES = {"threshold": "threshold", "min_size": "min size", "seed_spacing": "seed spacing",
                 "seed_prominence": "seed prominence", "border_evidence": "border evidence",
                 "min_confidence": "min confidence"}


@dataclass(frozen=True)
class TuningCase:
    """One annotated image: the model's outputs there and the user's objects (ids > 0).

    `known` marks where the objects are known (accepted regions); None: everywhere (dense labels).
    """

    prediction: Prediction
    truth: np.ndarray
    known: np.ndarray | None = None

    def objects(self) -> int:
        return int(np.unique(self.truth[self.truth > 0]).size)


@dataclass(frozen=True)
class InstanceTuning:
    """What tuning picked and why: stored in the checkpoint, shown in the dock and the CLI."""

    params: InstanceParams
    tuned: bool  # False: the model's settings (or the defaults) were kept (`reason` says why)
    ap50: float | None = None  # AP@0.5 on the annotations with `params`
    default_ap50: float | None = None  # ... and with the settings the search started from
    objects: int = 0
    images: int = 0
    reason: str = ""
    source: str = ""  # what the annotations were, for a shipped model's settings; "": the user's own
    errors: ErrorKinds | None = None  # the mistakes left on those objects with `params` (None: not measured)

    def describe(self) -> str:
        """One line for people: what was picked, on what, or why nothing was."""
        defaults = InstanceParams()
        changed = [f"{SETTING_NAMES[name]} {getattr(self.params, name):g}" for name in SETTING_NAMES
                   if getattr(self.params, name) != getattr(defaults, name)]
        picked = ", ".join(changed) if changed else "the defaults"
        if not self.tuned:
            return f"instance settings: {'defaults' if not changed else 'kept, ' + picked} ({self.reason})"
        return (f"tuned on {self.source or 'your annotations'}: {picked} (AP@0.5 {self.ap50:.3f}, "
                f"before {self.default_ap50:.3f}; {self.objects} objects in {self.images} image(s))")

    def describe_errors(self, options: bool = False) -> str:
        """What is still wrong on the outlined objects, and what to try (`options`: name the CLI's);
        "" when it was not measured."""
        if self.errors is None:
            return ""
        return (f"On the {self.errors.true_objects} objects you outlined, which it learnt from: "
                f"{self.errors.summary(options)}")

    def to_dict(self) -> dict:
        return {**asdict(self), "params": self.params.to_dict()}  # asdict makes `errors` a table too

    @classmethod
    def from_dict(cls, table: dict) -> InstanceTuning:
        """From a checkpoint (a user file): the params are checked as InstanceParams checks them."""
        if not isinstance(table, dict) or not isinstance(table.get("params"), dict):
            raise TypeError("its instance tuning is not a table of settings")
        fields = set(cls.__dataclass_fields__) - {"params", "errors"}
        params = {"min_confidence": BEFORE_MIN_CONFIDENCE, **table["params"]}
        return cls(params=InstanceParams(**params), errors=ErrorKinds.from_dict(table.get("errors")),
                   **{k: v for k, v in table.items() if k in fields})


def settings_in_use(tuning: InstanceTuning | None) -> InstanceParams:
    """A model's instance settings: the ones tuning picked, else the defaults."""
    return tuning.params if tuning is not None and tuning.tuned else InstanceParams()


def tune_instance_params(
    cases: Sequence[TuningCase],
    instances: Callable[[Prediction, InstanceParams], np.ndarray],
    current: InstanceTuning | None = None,
) -> InstanceTuning:
    """The InstanceParams with the best AP@0.5 on `cases`, searched from the model's `current` settings.

    A fine-tuned shipped model starts from the settings picked for it (BENCHMARKS.md), not from
    the package defaults. `instances(prediction, params)` is the model's instance step. Each
    change must add more than `MIN_GAIN` (or one object's share of AP on few objects); ties keep
    the current settings.
    """
    start = settings_in_use(current)
    objects = sum(case.objects() for case in cases)
    refused = too_few(objects, len(cases), current)
    if refused is not None:
        return refused
    margin = max(MIN_GAIN, 1.0 / objects)

    best, best_errors = start, mistakes_at(cases, instances, start)
    default_score = best_errors.ap50
    for name, values in SEARCH:
        for value in values:
            candidate = replace(best, **{name: value})
            if candidate == best:
                continue
            errors = mistakes_at(cases, instances, candidate)
            if errors.ap50 > best_errors.ap50 + margin:
                best, best_errors = candidate, errors
    return InstanceTuning(best, True, round(best_errors.ap50, 4), round(default_score, 4), objects, len(cases),
                          errors=best_errors)


def mistakes_at(
    cases: Sequence[TuningCase], instances: Callable[[Prediction, InstanceParams], np.ndarray], params: InstanceParams
) -> ErrorKinds:
    """The mistakes `params` leave on the cases' objects, by kind (only predicted objects inside known regions)."""
    return total_error_kinds((case.truth, _inside(instances(case.prediction, params), case.known)) for case in cases)


def too_few(objects: int, images: int, current: InstanceTuning | None = None) -> InstanceTuning | None:
    """The current settings (or the defaults), with the reason, when `objects` outlined objects are
    too few to tune on or to outweigh the objects the current settings were picked on; else None."""
    kept = settings_in_use(current)
    picked_on = current.objects if current is not None and current.tuned else 0
    if objects == 0:
        return InstanceTuning(kept, False, reason="no outlined objects to tune on (scribbles only)")
    if objects < MIN_OBJECTS:
        return InstanceTuning(kept, False, objects=objects, images=images,
                              reason=f"{objects} outlined objects, fewer than {MIN_OBJECTS} to tune on")
    if picked_on >= OVERRIDE_OBJECTS and objects < OVERRIDE_OBJECTS:
        return InstanceTuning(kept, False, objects=objects, images=images,
                              reason=f"{objects} outlined objects, fewer than {OVERRIDE_OBJECTS} to change "
                                     f"settings picked on {picked_on}")
    return None


def _inside(labels: np.ndarray, known: np.ndarray | None) -> np.ndarray:
    """Only the predicted objects mostly inside `known` (the rest were never judged by the user)."""
    if known is None:
        return labels
    ids, inside = np.unique(labels[known], return_counts=True)
    sizes = np.bincount(labels.ravel(), minlength=int(labels.max()) + 1)
    keep = np.zeros(sizes.size, bool)
    keep[ids] = inside * 2 > sizes[ids]
    keep[0] = False
    return np.where(keep[labels], labels, 0)
