"""What the network says about one 2D image, kept so post-processing can rerun without it.

Lives apart from `inference` so that post-processing and editing code need not import torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Prediction:
    """Network outputs for one 2D image, post-activation."""

    probabilities: np.ndarray  # (K, H, W) class probabilities, class 0 = background
    boundary: np.ndarray  # (H, W) probability of an object border
    distance: np.ndarray  # (H, W) predicted distance to the border, 1 at object centres

    def semantic(self) -> np.ndarray:
        """Class label per pixel as annotation values (1 = background, 2..K = classes)."""
        return (np.argmax(self.probabilities, axis=0) + 1).astype(np.uint8)

    def foreground(self) -> np.ndarray:
        """Probability that a pixel belongs to any non-background class."""
        return 1.0 - self.probabilities[0]
