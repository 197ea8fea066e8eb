"""Objects of an image bigger than memory, block by block, equal to one whole-image pass.

The 2D recipe (`functionals.instances`) splits each connected foreground component on its
own bounding box (plus a few pixels of smoothing), so a component's objects do not depend
on anything else in the image. Here each block is read with a `halo` around it; a
component belongs to the block whose core holds the top-left corner of its bounding box,
and that block writes its objects whole, even where they reach into the next block. A
component that fits within the halo is thus never cut at a block border and gets the
same objects as in a whole-image pass; ids are numbered block after block, unique in the
image. Components larger than the halo are still written, cut at the region's edge.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import ndimage

from napari_unet.functionals.instances import InstanceParams, instances_from_prediction
from napari_unet.functionals.prediction import Prediction

Region = tuple[slice, slice]


def block_instances(
    prediction_of: Callable[[Region], Prediction],
    shape: tuple[int, int],
    out,
    params: InstanceParams = InstanceParams(),
    *,
    use_instance_heads: bool = True,
    block: int = 1024,
    halo: int = 128,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Write the objects of a (H, W) image into `out` (zeros, e.g. a zarr array); returns the object count.

    `prediction_of(region)` gives the network outputs of a region (read from disk: only
    one block and its halo are in memory at a time).
    """
    height, width = shape
    starts = [(y, x) for y in range(0, height, block) for x in range(0, width, block)]
    next_id = 1
    for done, (y, x) in enumerate(starts, start=1):
        core = (slice(y, min(y + block, height)), slice(x, min(x + block, width)))
        region = (slice(max(y - halo, 0), min(core[0].stop + halo, height)),
                  slice(max(x - halo, 0), min(core[1].stop + halo, width)))
        prediction = prediction_of(region)
        labels = instances_from_prediction(prediction, params, use_instance_heads=use_instance_heads)
        components, _ = ndimage.label(prediction.foreground_mask(params.threshold))
        current = None  # the region's pixels in `out`: read and written once per block, not per object
        for index, box in enumerate(ndimage.find_objects(components), start=1):
            if box is None:
                continue
            top, left = box[0].start + region[0].start, box[1].start + region[1].start
            if not (core[0].start <= top < core[0].stop and core[1].start <= left < core[1].stop):
                continue  # another block owns this component
            mask = components[box] == index
            ids = labels[box][mask]
            kept = np.unique(ids[ids > 0])
            if kept.size == 0:
                continue
            new_ids = np.zeros(int(kept.max()) + 1, np.uint32)
            new_ids[kept] = np.arange(next_id, next_id + kept.size, dtype=np.uint32)
            next_id += kept.size
            if current is None:
                current = np.array(out[region])
            current[box][mask] = new_ids[ids]
        if current is not None:
            out[region] = current
        if progress is not None:
            progress(done, len(starts))
    return next_id - 1
