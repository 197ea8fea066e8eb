"""Where the model is unsure: a per-pixel uncertainty map from one prediction.

The measure is the entropy of the class probabilities, divided by its maximum (log K) so it
reads 0 (certain) to 1 (all classes equally likely) for any number of classes. It needs no
extra network pass (flipped passes would double the cost of the live preview) and it is
computed from the same tiled, blended probabilities the semantic layer shows, so it is tiled
exactly like the prediction. It is stored as uint8 (0..255): one byte per pixel, like the
semantic layer, so a whole stack of it costs no more memory than the predictions.
"""

from __future__ import annotations

import numpy as np

from napari_unet.functionals.prediction import ROWS_PER_BAND, Prediction

UNCERTAINTY_MAX = 255  # the uint8 value of "all classes equally likely"
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


def uncertainty_map(prediction: Prediction) -> np.ndarray:
    """(H, W) uint8 uncertainty of one predicted plane, 0 certain .. 255 all classes equally likely."""
    return np.round(class_entropy(prediction.probabilities) * UNCERTAINTY_MAX).astype(np.uint8)
