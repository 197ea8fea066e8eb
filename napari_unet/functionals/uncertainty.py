"""Where the model is unsure: a per-pixel uncertainty map from one prediction.

Two measures, both from the prediction the worker already has (no extra network pass; flipped
passes would double the cost of the live preview):
- class entropy: the entropy of the class probabilities divided by its maximum (log K), 0
  (certain) to 1 (all classes equally likely) for any number of classes; tiled exactly like the
  prediction, so the live preview shows it for each tile as it arrives;
- split instability: the objects that change (no match at IoU 0.5) when the foreground
  threshold moves by SPLIT_SPREAD either way. Alone it ranks regions by their object errors
  worse than entropy; added to it, no better beyond noise (BENCHMARKS.md section 5). It costs two more
  instance post-processing passes (no network) and needs the whole plane, so only a finished
  plane has it.
The layer and "Suggest next" use the entropy. `uncertainty_map(prediction, unstable)` can mark
the unstable objects too (they read 1, everything else its entropy): the effort benchmark
compares both rankings with it. The map is stored as uint8 (0..255): one byte per pixel, like
the semantic layer, so a whole stack of it costs no more memory than the predictions.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from scipy import ndimage

from napari_unet.functionals.instances import InstanceParams, instances_from_prediction
from napari_unet.functionals.metrics import match_instances
from napari_unet.functionals.prediction import ROWS_PER_BAND, Prediction

UNCERTAINTY_MAX = 255  # the uint8 value of "all classes equally likely"
SPLIT_SPREAD = 0.1  # the foreground threshold moves this much each way to test an object's split
_EPS = np.float32(1e-6)


def class_entropy(probabilities: np.ndarray) -> np.ndarray:
    """(H, W) float32 entropy of (K, H, W) class probabilities divided by log K: 0 certain .. 1 unsure."""
    k = probabilities.shape[0]
    out = np.zeros(probabilities.shape[1:], np.float32)
    if k < 2:
        return out
    for y in range(0, out.shape[0], ROWS_PER_BAND):  # bands: no full-size (K, H, W) temporaries
        p = np.asarray(probabilities[:, y : y + ROWS_PER_BAND], np.float32)
        out[y : y + ROWS_PER_BAND] = -(p * np.log(np.maximum(p, _EPS))).sum(axis=0)
    out /= np.float32(np.log(k))
    return np.clip(out, 0.0, 1.0, out=out)


def unstable_objects(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels of the objects of either label image that have no match at IoU 0.5 in the other."""
    overlap = match_instances(first, second)
    iou = overlap.iou.toarray() if overlap.iou.nnz else np.zeros(overlap.iou.shape)
    matched = iou >= 0.5
    lost = overlap.true_ids[~matched.any(axis=1)] if iou.shape[0] else overlap.true_ids
    new = overlap.pred_ids[~matched.any(axis=0)] if iou.shape[1] else overlap.pred_ids
    return np.isin(first, lost) | np.isin(second, new)


def split_instability(prediction: Prediction, params: InstanceParams = InstanceParams(), *,
                      use_instance_heads: bool = True) -> np.ndarray:
    """(H, W) bool: pixels of objects that change when the foreground threshold moves by +-SPLIT_SPREAD.

    Only the foreground components (at the low threshold) that hold a pixel between the two
    thresholds can change (elsewhere both splits see the same mask and the same heads), so the
    two instance passes run on those alone (most objects' edges cross the band, so this saves
    little on a plane full of objects). Every object counts, min confidence or not: dropping the
    unsure ones looks at the whole image, and they are unsure anyway (the class entropy shows them).
    """
    low_t, high_t = (float(np.clip(params.threshold + d, 0.01, 0.99)) for d in (-SPLIT_SPREAD, SPLIT_SPREAD))
    low_mask = prediction.foreground_mask(low_t)
    components, _ = ndimage.label(low_mask)
    changing = np.unique(components[low_mask & ~prediction.foreground_mask(high_t)])
    keep = np.isin(components, changing[changing > 0])
    if not keep.any():
        return keep
    # Background everywhere else: only the changing components are split (foreground reads only class 0).
    background = np.where(keep, prediction.probabilities[0], np.float32(1.0))[None]
    only_changing = Prediction(background, prediction.boundary, prediction.distance, prediction.scale)
    low, high = (instances_from_prediction(only_changing, replace(params, threshold=t, min_confidence=0.0),
                                           use_instance_heads=use_instance_heads) for t in (low_t, high_t))
    return unstable_objects(low, high)


def uncertainty_map(prediction: Prediction, unstable: np.ndarray | None = None) -> np.ndarray:
    """(H, W) uint8 uncertainty of one predicted plane, 0 certain .. 255 unsure.

    unstable: the plane's `split_instability`; given, its objects read 255 and the rest the class
    entropy, else the class entropy alone (a live-preview tile).
    """
    u = class_entropy(prediction.probabilities)
    if unstable is not None:
        u[np.asarray(unstable, bool)] = 1.0
    return np.round(u * UNCERTAINTY_MAX).astype(np.uint8)
