"""Why AP@0.5 is lost: each object without a match, sorted by the kind of mistake behind it.

AP@0.5 counts a missed nucleus, one cut in two and two fused into one the same way, but they
call for different remedies (a lower threshold, a higher seed prominence or border evidence,
more training on crowded images). Every true object without a match at IoU 0.5 is

- *missed*: predicted objects cover less than half of it;
- *split*: two or more predicted objects lie mostly (more than half) inside it;
- *merged*: a predicted object that covers most of it covers most of another true object too;
- *misshapen*: otherwise (it is found, but the outline is too far off);

and every predicted object without a match is *false* when less than half of it lies on true
objects (something that is not in the ground truth), else *on objects* (the pieces and fusions
counted above, from the other side). AP@0.5 = matched / (matched + unmatched true + unmatched
predicted), the counts summed over images as `metrics.instance_scores` does.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields

import numpy as np

from napari_unet.functionals.metrics import match_instances, matched_pairs

MATCH_IOU = 0.5
# What to try against each kind, in the words of the dock's sliders; OPTIONS names the CLI's.
REMEDIES = {
    "missed": "a lower threshold keeps fainter objects",
    "split": "a higher seed prominence or border evidence keeps objects whole",
    "merged": "a lower seed prominence or border evidence separates touching objects",
    "misshapen": "more training, or corrections on such objects, sharpen the outlines",
    "false": "a higher min confidence, threshold or min size drops faint objects and specks, or annotate such "
             "places as background",
}
OPTIONS = {"missed": "--threshold", "split": "--seed-prominence, --border-evidence",
           "merged": "--seed-prominence, --border-evidence", "misshapen": "",
           "false": "--min-confidence, --threshold, --min-size"}


@dataclass(frozen=True)
class ErrorKinds:
    """Counts of true objects (matched / missed / split / merged / misshapen) and of unmatched
    predicted ones (false / on objects)."""

    matched: int = 0
    missed: int = 0
    split: int = 0
    merged: int = 0
    misshapen: int = 0
    false: int = 0
    on_objects: int = 0

    def __add__(self, other: ErrorKinds) -> ErrorKinds:
        return ErrorKinds(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    @property
    def true_objects(self) -> int:
        return self.matched + self.missed + self.split + self.merged + self.misshapen

    @property
    def ap50(self) -> float:
        unmatched = self.missed + self.split + self.merged + self.misshapen + self.false + self.on_objects
        total = self.matched + unmatched
        return self.matched / total if total else 1.0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, table: object) -> ErrorKinds | None:
        """Counts stored in a checkpoint (a user file), or None where absent or not counts of every kind."""
        if not isinstance(table, dict) or set(table) != set(cls.__dataclass_fields__):
            return None
        if not all(isinstance(count, int) and not isinstance(count, bool) and count >= 0 for count in table.values()):
            return None
        return cls(**table)

    def report(self) -> str:
        """A few lines for the command line: the counts, and what to try against the most common mistake."""
        lines = [
            f"At IoU 0.5, of {self.true_objects} true objects: {self.matched} matched, {self.missed} missed, "
            f"{self.split} split, {self.merged} merged, {self.misshapen} misshapen;",
            f"predicted objects without a match: {self.false} off every true object (false), "
            f"{self.on_objects} pieces or fusions of the above.",
        ]
        worst = self.most_common()
        if worst is not None:
            named = f" ({OPTIONS[worst]})" if OPTIONS[worst] else ""
            lines.append(f"Most common: {worst} ({getattr(self, worst)}): {REMEDIES[worst]}{named}.")
        return "\n".join(lines)

    def summary(self, options: bool = False) -> str:
        """One line: the mistakes that occur, and what to try against the most common (with the CLI's
        `options` for it, or in the words of the dock's sliders)."""
        kinds = [f"{getattr(self, kind)} {kind}" for kind in ("missed", "split", "merged", "misshapen")
                 if getattr(self, kind)]
        if self.false:
            kinds.append(f"{self.false} false object{'s' if self.false > 1 else ''}")
        if self.on_objects:
            kinds.append(f"{self.on_objects} unmatched piece{'s' if self.on_objects > 1 else ''} on objects")
        if not kinds:
            return f"all {self.matched} objects matched"
        worst = self.most_common()
        named = f" ({OPTIONS[worst]})" if options and worst and OPTIONS[worst] else ""
        advice = f". Most common, {worst}: {REMEDIES[worst]}{named}" if worst else ""
        return f"{self.matched} matched; {', '.join(kinds)}{advice}"

    def most_common(self) -> str | None:
        """The kind of mistake with a remedy that occurs most (None: none occurs); ties go to the earlier kind."""
        counts = {kind: getattr(self, kind) for kind in REMEDIES}
        worst = max(counts, key=counts.get)
        return worst if counts[worst] else None


def error_kinds(truth: np.ndarray, pred: np.ndarray) -> ErrorKinds:
    """The kinds of mistake in one image's predicted instances (see the module docstring)."""
    overlap = match_instances(truth, pred)
    inter = overlap.intersection.tocoo()
    rows, cols, shared = inter.row, inter.col, inter.data
    true_index, pred_index = matched_pairs(overlap, MATCH_IOU)
    true_matched = np.zeros(overlap.true_ids.size, bool)
    pred_matched = np.zeros(overlap.pred_ids.size, bool)
    true_matched[true_index] = True
    pred_matched[pred_index] = True

    true_covered = np.bincount(rows, shared, minlength=true_matched.size)
    pred_on_truth = np.bincount(cols, shared, minlength=pred_matched.size)
    piece = shared * 2 > overlap.pred_area[cols]  # the predicted object lies mostly inside this true one
    pieces = np.bincount(rows[piece], minlength=true_matched.size)
    holds_most = shared * 2 > overlap.true_area[rows]  # the predicted object covers most of this true one
    fused = np.bincount(cols[holds_most], minlength=pred_matched.size) >= 2
    in_fusion = np.zeros(true_matched.size, bool)
    in_fusion[rows[fused[cols] & holds_most]] = True

    unmatched = ~true_matched
    missed = unmatched & (true_covered * 2 < overlap.true_area)
    split = unmatched & ~missed & (pieces >= 2)
    merged = unmatched & ~missed & ~split & in_fusion
    false = ~pred_matched & (pred_on_truth * 2 < overlap.pred_area)
    return ErrorKinds(
        matched=int(true_matched.sum()),
        missed=int(missed.sum()),
        split=int(split.sum()),
        merged=int(merged.sum()),
        misshapen=int((unmatched & ~missed & ~split & ~merged).sum()),
        false=int(false.sum()),
        on_objects=int((~pred_matched & ~false).sum()),
    )


def total_error_kinds(pairs: Iterable[tuple[np.ndarray, np.ndarray]]) -> ErrorKinds:
    """`error_kinds` summed over (truth, prediction) image pairs."""
    return sum((error_kinds(truth, pred) for truth, pred in pairs), ErrorKinds())
