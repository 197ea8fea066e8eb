"""What the network says about one 2D image, kept so post-processing can rerun without it.

Lives apart from `nn.inference` so that post-processing (`functionals.instances`) and the
corrections import no torch: they run in the GUI thread of a viewer that may not have
loaded it yet (tests/test_packaging.py checks).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ROWS_PER_BAND = 256


@dataclass
class Prediction:
    """Network outputs for one 2D image, post-activation."""

    probabilities: np.ndarray  # (K, H, W) class probabilities, class 0 = background
    boundary: np.ndarray  # (H, W) probability of an object border
    distance: np.ndarray  # (H, W) predicted distance to the border, 1 at object centres
    scale: float = 1.0  # how much the image was enlarged for the network (objects at its canonical size)

    def semantic(self) -> np.ndarray:
        """Class label per pixel as annotation values (1 = background, 2..K = classes)."""
        out = np.empty(self.probabilities.shape[1:], np.uint8)
        for y in range(0, out.shape[0], ROWS_PER_BAND):  # bands: no full-size int64 argmax
            out[y : y + ROWS_PER_BAND] = np.argmax(self.probabilities[:, y : y + ROWS_PER_BAND], axis=0) + 1
        return out

    def foreground(self) -> np.ndarray:
        """Probability that a pixel belongs to any non-background class."""
        return 1.0 - self.probabilities[0]

    def foreground_in(self, box: tuple[slice, ...]) -> np.ndarray:
        """`foreground()` on a crop only: the instance step reads it one object's box at a time."""
        return 1.0 - self.probabilities[(0, *box)]

    def foreground_mask(self, threshold: float) -> np.ndarray:
        """`foreground() > threshold`, without the full-size float array."""
        return self.probabilities[0] < np.float32(1.0 - threshold)
