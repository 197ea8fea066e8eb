"""Objects of an image bigger than memory, block by block, equal to one whole-image pass.

The 2D recipe (`functionals.instances`) splits each connected foreground component on its
own bounding box (plus a few pixels of smoothing), so a component's objects do not depend
on anything else in the image. Here each block is read with a `halo` around it; a
component belongs to the block whose core holds the top-left corner of its bounding box,
and that block writes its objects whole, even where they reach into the next blocks
(right and down only: the corner is in the core). A component that fits within the halo
is thus never cut at a block border and gets the same objects as in a whole-image pass;
ids are numbered block after block, unique in the image. Components larger than the halo
are still written, cut at the region's edge. One setting looks beyond the component:
`min_confidence` compares each object with the surest objects around it, here those of the block
and its halo rather than of the whole image (a 1024 px block holds hundreds of objects).

`owned_objects` is one block's share with ids 1..n of its own, so blocks can be computed
independently (on dask workers, `nn.chunked_jobs`) and composed later with `paste_owned`:
`block_instances` does both in one process, block after block.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import ndimage

from napari_unet.functionals.instances import InstanceParams, instances_from_prediction
from napari_unet.functionals.prediction import Prediction

Region = tuple[slice, slice]


def block_starts(shape: tuple[int, int], block: int) -> list[tuple[int, int]]:
    """Top-left pixel of every block of a (H, W) plane, in the order blocks are numbered (row by row)."""
    return [(y, x) for y in range(0, shape[0], block) for x in range(0, shape[1], block)]


def block_region(shape: tuple[int, int], y: int, x: int, block: int, halo: int) -> Region:
    """The block at (y, x) with `halo` pixels around it, within the plane."""
    height, width = shape
    return (slice(max(y - halo, 0), min(y + block + halo, height)),
            slice(max(x - halo, 0), min(x + block + halo, width)))


def owned_extent(shape: tuple[int, int], y: int, x: int, block: int, halo: int) -> Region:
    """Where the objects owned by the block at (y, x) can lie: from its corner to its core's end plus the halo."""
    return (slice(y, min(y + block + halo, shape[0])), slice(x, min(x + block + halo, shape[1])))


def owned_objects(prediction: Prediction, region: Region, core: Region, params: InstanceParams,
                  use_instance_heads: bool = True) -> tuple[np.ndarray, int]:
    """The objects of the components this block owns, over `owned_extent` (the region from the core's corner
    on), as "written" codes: 0 untouched, 1 written as background (a component's pixel that holds no object),
    1 + k the block's k-th object (k = 1..n, numbered as a sequential pass numbers them); returns (codes, n)."""
    labels = instances_from_prediction(prediction, params, use_instance_heads=use_instance_heads)
    components, _ = ndimage.label(prediction.foreground_mask(params.threshold))
    oy, ox = core[0].start - region[0].start, core[1].start - region[1].start
    codes = np.zeros((region[0].stop - core[0].start, region[1].stop - core[1].start), np.uint32)
    n = 0
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
        new_codes = np.ones(int(kept.max()) + 1, np.uint32)
        new_codes[kept] = np.arange(n + 2, n + 2 + kept.size, dtype=np.uint32)
        n += kept.size
        codes[box[0].start - oy:box[0].stop - oy, box[1].start - ox:box[1].stop - ox][mask] = new_codes[ids]
    return codes, n


def paste_owned(target: np.ndarray, codes: np.ndarray, offset: int) -> None:
    """Write a block's `owned_objects` codes into `target` (same shape) with ids shifted by `offset`
    (the objects of the blocks before it): pixels it wrote replace what was there, as later blocks do."""
    written = codes > 0
    target[written] = np.where(codes[written] > 1, codes[written] - 1 + offset, 0)


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
    starts = block_starts(shape, block)
    objects = 0
    for done, (y, x) in enumerate(starts, start=1):
        core = (slice(y, min(y + block, height)), slice(x, min(x + block, width)))
        region = block_region(shape, y, x, block, halo)
        codes, n = owned_objects(prediction_of(region), region, core, params, use_instance_heads)
        if n:
            extent = owned_extent(shape, y, x, block, halo)
            current = np.array(out[extent])  # read and written once per block, not per object
            paste_owned(current, codes, objects)
            out[extent] = current
        objects += n
        if progress is not None:
            progress(done, len(starts))
    return objects
