"""Accuracy metrics: instance average precision and per-class semantic IoU.

Instance AP follows StarDist and Cellpose: each true object matches at most one
predicted object, a match counts as a true positive when its IoU reaches the
threshold, and AP = TP / (TP + FP + FN). Over several images the counts are
summed before dividing, so images with many objects weigh more than images with
few, which is what StarDist reports.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import maximum_bipartite_matching

from napari_unet.errors import UserInputError

# IoU thresholds 0.5, 0.55, ..., 0.9: the range whose mean AP the spec reports.
DEFAULT_THRESHOLDS: tuple[float, ...] = tuple(round(0.5 + 0.05 * i, 2) for i in range(9))


class InstanceOverlap(NamedTuple):
    """IoU of every overlapping (true, predicted) object pair, and the areas behind it.

    `iou[i, j]` is the IoU of objects `true_ids[i]` and `pred_ids[j]` and `intersection[i, j]`
    their shared pixels; pairs that do not overlap are not stored (sparse), so thousands of
    objects stay cheap. `true_area` and `pred_area` are each object's pixel count.
    """

    true_ids: np.ndarray
    pred_ids: np.ndarray
    iou: sparse.csr_array
    intersection: sparse.csr_array
    true_area: np.ndarray
    pred_area: np.ndarray


@dataclass(frozen=True)
class InstanceScores:
    """AP and the TP/FP/FN counts behind it, per IoU threshold."""

    tp: dict[float, int]
    fp: dict[float, int]
    fn: dict[float, int]

    @property
    def ap(self) -> dict[float, float]:
        """TP / (TP + FP + FN); 1.0 when there is nothing to find and nothing found."""
        scores = {}
        for thr, tp in self.tp.items():
            total = tp + self.fp[thr] + self.fn[thr]
            scores[thr] = tp / total if total else 1.0
        return scores

    @property
    def mean_ap(self) -> float:
        """Mean AP over the evaluated thresholds (0.5 to 0.9 by default)."""
        return float(np.mean(list(self.ap.values())))

    def table(self) -> str:
        """Plain-text table of threshold, AP, TP, FP, FN, then the mean AP."""
        lines = [f"{'IoU':>5} {'AP':>7} {'TP':>8} {'FP':>8} {'FN':>8}"]
        for thr, ap in self.ap.items():
            lines.append(
                f"{thr:>5.2f} {ap:>7.3f} {self.tp[thr]:>8d} {self.fp[thr]:>8d} {self.fn[thr]:>8d}"
            )
        lines.append(f"{'mean':>5} {self.mean_ap:>7.3f}")
        return "\n".join(lines)


def _check_shapes(truth: np.ndarray, pred: np.ndarray) -> None:
    if truth.shape != pred.shape:
        raise UserInputError(
            f"ground truth has shape {truth.shape} but the prediction has shape "
            f"{pred.shape}; they must cover the same pixels"
        )


def _as_labels(labels: np.ndarray, what: str) -> np.ndarray:
    """Flat non-negative integer ids; bool and integral floats are accepted."""
    flat = np.asarray(labels).ravel()
    if flat.dtype.kind == "f":
        if not np.all(np.isfinite(flat)) or np.any(flat != np.round(flat)):
            raise UserInputError(f"{what} must hold integer object ids, not fractional values")
        flat = flat.astype(np.int64)
    elif flat.dtype.kind == "b":
        flat = flat.view(np.uint8)
    elif flat.dtype.kind not in "iu":
        raise UserInputError(f"{what} must hold integer object ids, not {flat.dtype} values")
    if flat.size and flat.dtype.kind == "i" and flat.min() < 0:
        raise UserInputError(f"{what} must hold non-negative object ids (0 = background)")
    return flat


def _compact(flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Object ids present (sorted, without 0) and each pixel's 1-based index (0 = background).

    A lookup table is linear in the pixel count; np.unique (a sort) is the fallback
    for sparse huge ids, where a table would not fit in memory.
    """
    if flat.size == 0:
        return np.zeros(0, dtype=flat.dtype), np.zeros(0, dtype=np.int64)
    top = int(flat.max())
    if top <= max(4 * flat.size, 1 << 16):
        present = np.bincount(flat.astype(np.intp, copy=False)) > 0  # uint64 too
        present[0] = False
        ids = np.flatnonzero(present)
        lookup = np.zeros(top + 1, dtype=np.int64)
        lookup[ids] = np.arange(1, ids.size + 1)
        return ids.astype(flat.dtype), lookup[flat]
    ids, index = np.unique(flat, return_inverse=True)
    if ids[0] == 0:
        return ids[1:], index.astype(np.int64)
    return ids, index.astype(np.int64) + 1


def match_instances(truth: np.ndarray, pred: np.ndarray) -> InstanceOverlap:
    """IoU between every true and every predicted object (0 = background, any ids)."""
    truth, pred = np.asarray(truth), np.asarray(pred)
    _check_shapes(truth, pred)
    true_ids, t = _compact(_as_labels(truth, "ground truth"))
    pred_ids, p = _compact(_as_labels(pred, "prediction"))
    n_true, n_pred = true_ids.size, pred_ids.size
    true_area = np.bincount(t, minlength=n_true + 1)[1:]
    pred_area = np.bincount(p, minlength=n_pred + 1)[1:]
    both = (t > 0) & (p > 0)
    # Summing duplicate (true, pred) entries yields the intersection areas.
    inter = sparse.coo_array(
        (np.ones(np.count_nonzero(both), dtype=np.int64), (t[both] - 1, p[both] - 1)),
        shape=(n_true, n_pred),
    ).tocsr()
    rows = np.repeat(np.arange(n_true), np.diff(inter.indptr))
    union = true_area[rows] + pred_area[inter.indices] - inter.data
    iou = sparse.csr_array(
        (inter.data / union, inter.indices, inter.indptr), shape=(n_true, n_pred)
    )
    return InstanceOverlap(true_ids, pred_ids, iou, inter, true_area, pred_area)


def _check_thresholds(thresholds: Sequence[float]) -> None:
    if not thresholds or any(not 0 < thr <= 1 for thr in thresholds):
        raise UserInputError(f"IoU thresholds must lie in (0, 1], got {list(thresholds)}")


def matched_pairs(overlap: InstanceOverlap, thr: float) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one matches at IoU >= thr: their indices into `true_ids` and `pred_ids`.

    StarDist's optimal assignment first maximises the number of pairs with
    IoU >= thr (scores only break ties), so the matches are a maximum matching
    in the graph of such pairs, found here sparsely (Hopcroft-Karp). Above 0.5 the
    pairs are already one-to-one and the matching is trivial.
    """
    candidates = sparse.csr_array(overlap.iou >= thr, dtype=np.int8)
    if thr > 0.5:
        pairs = candidates.tocoo()
        kept = pairs.data != 0
        return pairs.row[kept], pairs.col[kept]
    match = maximum_bipartite_matching(candidates, perm_type="column")
    rows = np.flatnonzero(match >= 0)
    return rows, match[rows]


def _counts(overlap: InstanceOverlap, thr: float) -> tuple[int, int, int]:
    """One-to-one TP/FP/FN at one threshold."""
    tp = matched_pairs(overlap, thr)[0].size
    n_true, n_pred = overlap.iou.shape
    return tp, n_pred - tp, n_true - tp


def instance_counts(
    truth: np.ndarray, pred: np.ndarray, thresholds: Sequence[float] = DEFAULT_THRESHOLDS
) -> dict[float, tuple[int, int, int]]:
    """(TP, FP, FN) per IoU threshold for one image, matching objects one-to-one."""
    _check_thresholds(thresholds)
    overlap = match_instances(truth, pred)
    return {thr: _counts(overlap, thr) for thr in thresholds}


def instance_scores(
    truths: Sequence[np.ndarray],
    preds: Sequence[np.ndarray],
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
) -> InstanceScores:
    """TP/FP/FN summed over image pairs, with AP derived from the sums.

    A single array counts as one image (2D or 3D), not as a stack of images.
    """
    if isinstance(truths, np.ndarray):
        truths = [truths]
    if isinstance(preds, np.ndarray):
        preds = [preds]
    if len(truths) != len(preds):
        raise UserInputError(
            f"got {len(truths)} ground-truth images but {len(preds)} predictions; "
            "give one prediction per ground-truth image"
        )
    _check_thresholds(thresholds)
    tp = dict.fromkeys(thresholds, 0)
    fp = dict.fromkeys(thresholds, 0)
    fn = dict.fromkeys(thresholds, 0)
    for truth, pred in zip(truths, preds):
        for thr, (t, f, n) in instance_counts(truth, pred, thresholds).items():
            tp[thr] += t
            fp[thr] += f
            fn[thr] += n
    return InstanceScores(tp, fp, fn)


def average_precision(
    truths: Sequence[np.ndarray],
    preds: Sequence[np.ndarray],
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
) -> dict[float, float]:
    """AP per IoU threshold with counts summed over images (see `instance_scores`)."""
    return instance_scores(truths, preds, thresholds).ap


def semantic_iou(
    truth: np.ndarray,
    pred: np.ndarray,
    labels: Sequence[int] | None = None,
    ignore: int | None = 0,
) -> dict[int, float]:
    """IoU per class label, over the pixels where `truth` is not `ignore`.

    By default the labels are every value found in either array (except `ignore`);
    a label absent from both gets NaN, so it cannot pass for perfect or for failed.
    """
    truth, pred = np.asarray(truth), np.asarray(pred)
    _check_shapes(truth, pred)
    t, p = truth.ravel(), pred.ravel()
    if ignore is not None:
        annotated = t != ignore
        t, p = t[annotated], p[annotated]
    if labels is None:
        found = np.union1d(np.unique(t), np.unique(p))
        labels = [int(v) for v in found if v != ignore]
    values = np.asarray(sorted(set(labels)), dtype=np.int64)
    if values.size == 0:
        return {}
    k = values.size

    def index(x: np.ndarray) -> np.ndarray:
        """Position of each pixel's value in `values`; k for any other value."""
        pos = np.minimum(np.searchsorted(values, x), k - 1)
        return np.where(values[pos] == x, pos, k)

    # Confusion matrix with one extra row/column for values outside `labels`.
    confusion = np.bincount(index(t) * (k + 1) + index(p), minlength=(k + 1) ** 2)
    confusion = confusion.reshape(k + 1, k + 1)
    inter = np.diag(confusion)[:k]
    union = confusion.sum(axis=1)[:k] + confusion.sum(axis=0)[:k] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, inter / union, np.nan)
    return {int(v): float(s) for v, s in zip(values, iou)}
