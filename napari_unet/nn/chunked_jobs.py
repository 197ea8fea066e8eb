"""Predict an image bigger than memory into a zarr store on dask.distributed: blocks across workers.

The same passes as `nn.chunked.fill_outputs`, with the same result (array-equal, same ids),
as stages of independent tasks; each task writes whole chunks that no other task of its
stage writes (the store's chunks are the blocks), so no two processes ever write one chunk:

1. network: one task per block (`chunked.predict_block`) writes the block's semantic,
   probabilities and scratch maps;
2. pyramids: level k of each output from level k - 1, one task per chunk of level k
   (`io.pyramid.halve_chunk`), level after level;
3. objects: one task per block computes the objects it owns (`block_instances.owned_objects`,
   ids 1..n_b of its own) into its own slot of a scratch array and returns n_b; a prefix sum of
   the counts gives each block the ids before it;
4. merge: one task per `instances` chunk pastes, in block order, the slots of the blocks whose
   objects can reach it (itself and the blocks up to `halo` pixels above and left: objects
   reach only right and down from their owner's core), shifted by their offsets: what the
   sequential pass writes, later blocks over earlier ones; then the instance pyramids.

A worker holds about one block and its margins at a time, whatever the image size. The model
travels to the workers once and is loaded once per worker (`nn.batch`). Workers open the image
and the store by path, so both must be visible to them (a shared file system on a cluster); an
image that is not zarr (a TIFF, read whole) is first copied into the store, chunked by block.
"""

from __future__ import annotations

import hashlib
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zarr

from napari_unet.functionals.block_instances import block_region, block_starts, owned_extent, owned_objects, paste_owned
from napari_unet.functionals.instances import InstanceParams
from napari_unet.io import atomic
from napari_unet.io.pyramid import COARSEST, halve_chunk, level_chunks
from napari_unet.nn.batch import BatchOptions, cached_segmenter, cluster_client, model_bytes_of
from napari_unet.nn.chunked import (
    SCRATCH,
    trim_heap,
    block_scale,
    create_outputs,
    limit_heap_arenas,
    maps_prediction,
    output_levels,
    predict_block,
)
from napari_unet.nn.inference import Stopped, check_flips
from napari_unet.nn.segmenter import Segmenter

OBJECTS = "_objects"  # scratch: each block's owned objects, one slot (chunk) per block, removed when done
INPUT = "_input"  # scratch: an image read whole (a TIFF), chunked by block for the workers, removed when done


class BlockFailed(RuntimeError):
    """A task of the distributed prediction failed (a bug, a full disk, a worker that died): nothing was written."""


@dataclass(frozen=True)
class StoreJob:
    """What every task needs to find and predict its part: paths (visible to the workers) and settings."""

    store: str
    image: str | None  # the input file, lazy; None: the store's INPUT copy
    channel_axis: int | None
    shape: tuple[int, int]
    block: int
    margin: int
    halo: int
    tile_size: int
    stats: object
    factor: float
    params: InstanceParams | None
    use_instance_heads: bool

    def root(self) -> zarr.Group:
        return zarr.open_group(self.store, mode="r+")

    def open_image(self):
        """The (C, H, W) image, lazy: a task reads only its block."""
        if self.image is None:
            return self.root()[INPUT]
        return _open_image(self.image, self.channel_axis)


def predict_to_zarr_on_cluster(
    segmenter: Segmenter,
    image_path: str | os.PathLike,
    store: str | os.PathLike,
    params: InstanceParams | None = InstanceParams(),
    *,
    channel_axis: int | None = None,
    block: int = 1024,
    margin: int = 64,
    halo: int = 128,
    probabilities: bool = False,
    tile_size: int = 512,
    diameter: float | None = None,
    flips: int = 1,
    device: str = "auto",
    threads: int | None = None,
    client=None,
    scheduler: str | None = None,
    n_workers: int | None = None,
    processes: bool = True,
    progress: Callable[[str, int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    coarsest: int = COARSEST,
) -> int:
    """`chunked.predict_to_zarr` of the image file `image_path` with its blocks spread over dask workers
    (a given `client`, a `scheduler` address or a LocalCluster of `n_workers`); returns the object count.

    Workers load `segmenter` on `device` with `threads` torch threads and predict with `flips` test-time
    flips. `progress(stage, done, total)` after each task; a failed task raises `BlockFailed`
    (`should_stop()` true: `inference.Stopped`), and the store is then left as it was (written atomically)."""
    image = _open_image(str(image_path), channel_axis)
    segmenter.check_input(image)
    shape = tuple(int(n) for n in image.shape[1:])
    model = model_bytes_of(segmenter)
    digest = hashlib.sha256(model).hexdigest()
    check_flips(flips)
    options = BatchOptions(device=device, threads=threads, flips=flips)
    objects = 0

    def write(temp: Path) -> None:
        nonlocal objects
        root = create_outputs(temp, shape, segmenter.config.n_classes, instances=params is not None,
                              probabilities=probabilities, block=block, coarsest=coarsest)
        whole = isinstance(image, np.ndarray)  # read whole (not zarr): workers read blocks of a copy in the store
        if whole:
            root.create_array(INPUT, data=image, chunks=(image.shape[0], block, block))
        job = StoreJob(str(temp), None if whole else str(image_path), channel_axis, shape, block, margin, halo,
                       tile_size,
                       segmenter.normalisation.statistics(image), block_scale(segmenter, diameter), params,
                       segmenter.instance_heads_trained)
        starts = block_starts(shape, block)
        with cluster_client(client, scheduler, n_workers, processes, len(starts)) as dask_client:
            stage = _Stage(dask_client, progress, should_stop)
            # hash=False: a job's own key; a shared one (same model bytes) can be released under the next job
            model_future = dask_client.scatter(model, broadcast=True, hash=False)
            stage.run("network", [(f"block at {start}", _network_task, model_future, digest, options, job, *start)
                                  for start in starts])
            _pyramids(stage, job, [name for name in ("semantic", "probabilities") if name in root])
            if params is not None:
                root.create_array(OBJECTS, shape=(len(starts), block + halo, block + halo), dtype=np.uint32,
                                  chunks=(1, block + halo, block + halo), fill_value=0)
                counts = stage.run("objects", [(f"block at {start}", _objects_task, job, index, *start)
                                               for index, start in enumerate(starts)])
                offsets = np.concatenate([[0], np.cumsum(counts)]).tolist()
                stage.run("merging", [(f"block at {start}", _merge_task, job, *start,
                                       _sources(starts, index, counts, offsets, block, halo, shape))
                                      for index, start in enumerate(starts)])
                objects = int(offsets[-1])
                _pyramids(stage, job, ["instances"])
                del root[OBJECTS]
        for scratch in (SCRATCH, INPUT):
            if scratch in root:
                del root[scratch]
        root.attrs["objects"] = objects

    atomic.write_file(store, write)
    return objects


class _Stage:
    """Runs one stage's tasks on the cluster and waits for all of them, with progress, stop and failures."""

    def __init__(self, client, progress, should_stop):
        self.client, self.progress, self.should_stop = client, progress, should_stop

    def run(self, name: str, tasks: list[tuple]) -> list:
        """Each task is (what it works on, function, *arguments); returns their results in order."""
        from distributed import as_completed

        futures = [self.client.submit(function, *arguments, pure=False) for _, function, *arguments in tasks]
        where = {future.key: what for future, (what, *_) in zip(futures, tasks)}
        results = {}
        pending = as_completed(futures)
        try:
            while not pending.is_empty():
                if self.should_stop is not None and self.should_stop():
                    raise Stopped
                batch = pending.next_batch(block=self.should_stop is None)
                if not batch:
                    time.sleep(0.05)
                for future in batch:
                    try:
                        results[future.key] = future.result()
                    except Exception as error:  # the task raised, or its worker died
                        raise BlockFailed(f"the {name} pass failed at {where[future.key]}: "
                                          f"{type(error).__name__}: {error}") from error
                    if self.progress is not None:
                        self.progress(name, len(results), len(tasks))
        except BaseException:
            self.client.cancel(futures)
            raise
        return [results[future.key] for future in futures]


def _pyramids(stage: _Stage, job: StoreJob, names: list[str]) -> None:
    """The coarser levels of `names`, level after level: each chunk of level k from level k - 1."""
    root = job.root()
    levels = {name: output_levels(root, name) for name in names}
    for k in range(1, max((len(found) for found in levels.values()), default=1)):
        stage.run(f"pyramid {k} of {'+'.join(names)}", [(f"level {k} of {name} at {start}", _halve_task, job.store, levels[name][k - 1].path,
                                levels[name][k].path, *start)
                               for name in names if k < len(levels[name])
                               for start in level_chunks(levels[name][k])])


def _sources(starts: list[tuple[int, int]], index: int, counts: list[int], offsets: list[int], block: int,
             halo: int, shape: tuple[int, int]) -> list[tuple[int, int, int, int]]:
    """(slot, y, x, id offset) of the blocks whose objects can reach the chunk of block `index`, in block order:
    itself and the blocks up to `halo` pixels above and to the left that own objects."""
    y, x = starts[index]
    reach = math.ceil(halo / block) * block
    return [(i, sy, sx, offsets[i]) for i, (sy, sx) in enumerate(starts)
            if counts[i] and y - reach <= sy <= y and x - reach <= sx <= x]


# --- tasks, on the workers ---------------------------------------------------------------------------


def _open_image(path: str, channel_axis: int | None):
    """The (C, H, W) image of a file: lazy for zarr / OME-Zarr, else read whole."""
    from napari_unet.functionals.normalisation import as_channels_first
    from napari_unet.io.images import read_image

    return as_channels_first(read_image(path), channel_axis=channel_axis)


def _network_task(model: bytes, digest: str, options: BatchOptions, job: StoreJob, y: int, x: int) -> None:
    import dask

    limit_heap_arenas()  # before this worker's first zarr read starts zarr's threads
    segmenter = cached_segmenter(model, digest, options)
    with dask.config.set(scheduler="synchronous"):  # the block's read, in this task, not on the cluster
        predict_block(segmenter, job.open_image(), job.root(), y, x, job.stats, job.factor,
                      margin=job.margin, tile_size=job.tile_size, flips=options.flips)
    trim_heap()


def _halve_task(store: str, finer: str, coarser: str, y: int, x: int) -> None:
    root = zarr.open_group(store, mode="r+")
    halve_chunk(root[finer], root[coarser], y, x)


def _objects_task(job: StoreJob, index: int, y: int, x: int) -> int:
    limit_heap_arenas()
    shape, block = job.shape, job.block
    root = job.root()
    core = (slice(y, min(y + block, shape[0])), slice(x, min(x + block, shape[1])))
    region = block_region(shape, y, x, block, job.halo)
    codes, n = owned_objects(maps_prediction(root, region), region, core, job.params, job.use_instance_heads)
    if n:
        root[OBJECTS][index, :codes.shape[0], :codes.shape[1]] = codes
    del codes
    trim_heap()
    return n


def _merge_task(job: StoreJob, y: int, x: int, sources: list[tuple[int, int, int, int]]) -> None:
    shape, block = job.shape, job.block
    root = job.root()
    y1, x1 = min(y + block, shape[0]), min(x + block, shape[1])
    target = np.zeros((y1 - y, x1 - x), np.uint32)
    for slot, sy, sx, offset in sources:
        extent = owned_extent(shape, sy, sx, block, job.halo)
        top, bottom = max(extent[0].start, y), min(extent[0].stop, y1)
        left, right = max(extent[1].start, x), min(extent[1].stop, x1)
        if top < bottom and left < right:
            codes = root[OBJECTS][slot, top - sy:bottom - sy, left - sx:right - sx]
            paste_owned(target[top - y:bottom - y, left - x:right - x], codes, offset)
    if target.any():
        root["instances"][y:y1, x:x1] = target
