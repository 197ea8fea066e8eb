"""Predict an image bigger than memory into a zarr store, block by block.

Two passes, each holding about one block (and its margins) in memory, whatever the
image size. The network pass reads a block of the (lazy) image with a `margin` of context
on every side, predicts it tile by tile and writes the block's core: the class per pixel
(`semantic`), the class probabilities when asked, normalised with statistics of the whole image, and the maps the objects are made from
(background probability, boundary, distance: float16 scratch arrays in the store,
removed at the end). The object pass (`functionals.block_instances`) then writes
`instances` with ids unique in the image and objects whole across block borders.

Each output also gets a pyramid for browsing (`output_levels`): levels halved in size
(nearest pixel: labels stay labels) down to COARSEST pixels a side, under `pyramid/<output>/<k>`,
described as OME-Zarr `multiscales` (one per output) in the group's attributes. The semantic
and probability levels are written with each block, so a viewer can browse them as they fill
in; the instance levels once the objects pass is done (objects are written across blocks).

`predict_to_zarr` (the command line) writes the store beside its target and renames it
into place (io.atomic), so a failed or killed run leaves no half-written store. The dock
shows the outputs while they are written: it creates the store with `create_outputs`,
opens lazy layers over its arrays and runs `fill_outputs` (the same passes) in a worker.
"""

from __future__ import annotations

import ctypes
import functools
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import zarr

from napari_unet.functionals.block_instances import block_instances, block_starts
from napari_unet.functionals.instances import InstanceParams
from napari_unet.functionals.prediction import Prediction
from napari_unet.functionals.scale import resample, resample_prediction, scale_factor, scaled_shape
from napari_unet.io import atomic
from napari_unet.io.pyramid import COARSEST, pyramid_depth, write_coarser_levels
from napari_unet.nn.device import autocast_dtype
from napari_unet.nn.inference import Stopped, check_flips, predict_tiled
from napari_unet.nn.segmenter import Segmenter

SCRATCH = "_maps"  # background probability, boundary, distance (float16), removed when done
OUTPUTS = ("semantic", "instances", "probabilities")
PYRAMID = "pyramid"  # pyramid/<output>/<k>: the output halved k times (io.pyramid)


M_ARENA_MAX = -8  # glibc's mallopt parameter: how many malloc arenas threads may spread over


def limit_heap_arenas(arenas: int = 1) -> None:
    """Make threads started from now on share `arenas` malloc arenas (glibc; elsewhere a no-op).

    zarr decodes and encodes chunks in a thread pool; glibc gives each such thread its own arena,
    and block-sized buffers freed in one arena are not reused by another nor handed back, so the
    objects pass grew with every block (4096^2 in blocks of 1024: 312 -> 465 MB over 16 blocks,
    malloc_trim no help) and with the number of threads; with one arena it levels off
    (283 -> ~335 MB, same speed). Call it before the first zarr read of the process."""
    libc = _glibc()
    if libc is not None:
        libc.mallopt(M_ARENA_MAX, arenas)


def trim_heap() -> None:
    """Hand the heap memory freed by the last block back to the system (glibc; elsewhere a no-op).

    glibc keeps freed block-sized arrays in its heap, so without this the process grows
    block after block (measured: 4096^2 in blocks of 2048, 917 MB between blocks against 540-670)."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


@functools.cache
def _glibc():
    """glibc with its malloc tuning calls, loaded once (trim_heap runs after every block); None elsewhere."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


def output_levels(root: zarr.Group, name: str) -> list[zarr.Array]:
    """An output's array and its pyramid levels, finest first (one array when it has no pyramid)."""
    levels = [root[name]]
    while f"{PYRAMID}/{name}/{len(levels)}" in root:
        levels.append(root[f"{PYRAMID}/{name}/{len(levels)}"])
    return levels


def create_outputs(
    store: str | os.PathLike,
    shape: tuple[int, int],
    n_classes: int,
    *,
    instances: bool = True,
    probabilities: bool = False,
    block: int = 1024,
    coarsest: int = COARSEST,
) -> zarr.Group:
    """A zarr store with empty output arrays of a (H, W) image, chunked by `block`, and their
    pyramids (levels down to `coarsest` pixels a side).

    The outputs of an earlier run in `store` are replaced; other arrays there (the dock's
    accepted objects) are kept. Only metadata is written: cheap enough for the GUI thread.
    """
    height, width = shape
    chunks = (min(block, height), min(block, width))
    root = zarr.open_group(str(store), mode="a")
    for name in (*OUTPUTS, SCRATCH, *(f"{PYRAMID}/{name}" for name in OUTPUTS)):
        if name in root:
            del root[name]
    kinds = {"semantic": ((), np.uint8), "instances": ((), np.uint32), "probabilities": ((n_classes,), np.float32)}
    wanted = ["semantic", *(["instances"] if instances else []), *(["probabilities"] if probabilities else [])]
    multiscales = [create_levelled(root, name, shape, kinds[name][1], block, coarsest, kinds[name][0])
                   for name in wanted]
    root.create_array(SCRATCH, shape=(3, height, width), dtype=np.float16, chunks=(3, *chunks))
    root.attrs["block"] = int(block)
    root.attrs["ome"] = {"version": "0.5", "multiscales": multiscales}
    return root


def create_levelled(root: zarr.Group, name: str, shape: tuple[int, int], dtype, block: int,
                    coarsest: int = COARSEST, lead: tuple[int, ...] = ()) -> dict:
    """An empty array `name` of a (H, W) plane (after `lead` axes) and its pyramid levels, chunked by
    `block`; returns its OME-Zarr `multiscales` entry."""
    height, width = shape
    paths = []
    for k in range(pyramid_depth(shape, coarsest) + 1):
        level = (-(-height // 2**k), -(-width // 2**k))
        path = name if k == 0 else f"{PYRAMID}/{name}/{k}"
        root.create_array(path, shape=(*lead, *level), dtype=dtype, fill_value=0,
                          chunks=(*(1 for _ in lead), min(block, level[0]), min(block, level[1])))
        paths.append(path)
    return _multiscale(name, paths, len(lead))


def _multiscale(name: str, paths: list[str], leading: int) -> dict:
    """OME-Zarr 0.5 `multiscales` entry of one output: its levels, each twice the pixel size of the last."""
    axes = [{"name": "c", "type": "channel"}] * leading + [{"name": "y", "type": "space"},
                                                           {"name": "x", "type": "space"}]
    return {"name": name, "axes": axes, "datasets": [
        {"path": path, "coordinateTransformations": [{"type": "scale", "scale": [1.0] * leading + [2.0**k] * 2}]}
        for k, path in enumerate(paths)]}


def fill_outputs(
    segmenter: Segmenter,
    image,
    root: zarr.Group,
    params: InstanceParams | None = InstanceParams(),
    *,
    margin: int = 64,
    halo: int = 128,
    tile_size: int = 512,
    diameter: float | None = None,
    flips: int = 1,
    progress: Callable[[str, int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> int:
    """Predict the (C, H, W) `image` into the arrays of `create_outputs`, block after block; returns the
    object count (also stored as the group's `objects` attribute).

    `progress(stage, done, total)` after each block of the "network" and the "objects" pass;
    `should_stop()` is asked between blocks (and tiles): True raises `inference.Stopped`.
    `diameter`: the objects' size in pixels (None: the training images'); each block is
    resampled to the network's object size and back, as `Segmenter.predict` does a whole image.
    `flips`: test-time flips (network passes per tile), as `Segmenter.predict`.
    """
    segmenter.check_input(image)
    check_flips(flips)
    _, height, width = image.shape
    block = int(root.attrs["block"])
    stats = segmenter.normalisation.statistics(image)  # from a strided sample: never the whole image
    stop = should_stop or (lambda: False)
    factor = block_scale(segmenter, diameter)
    starts = block_starts((height, width), block)
    for done, (y, x) in enumerate(starts, start=1):
        if stop():
            raise Stopped
        labels, probabilities = predict_block(segmenter, image, root, y, x, stats, factor, margin=margin,
                                              tile_size=tile_size, flips=flips, should_stop=should_stop)
        if probabilities is not None:
            write_coarser_levels(output_levels(root, "probabilities"), probabilities, y, x)
        write_coarser_levels(output_levels(root, "semantic"), labels, y, x)
        del labels, probabilities
        trim_heap()
        if progress is not None:
            progress("network", done, len(starts))
    objects = 0
    if params is not None and "instances" in root:

        def prediction_of(region) -> Prediction:
            if stop():
                raise Stopped
            trim_heap()  # the last block's arrays are freed by now
            return maps_prediction(root, region)

        objects = block_instances(
            prediction_of, (height, width), root["instances"], params,
            use_instance_heads=segmenter.instance_heads_trained, block=block, halo=halo,
            progress=None if progress is None else (lambda done, total: progress("objects", done, total)))
        levels = output_levels(root, "instances")
        if len(levels) > 1:
            for y, x in starts:
                if stop():
                    raise Stopped
                write_coarser_levels(levels, levels[0][y:y + block, x:x + block], y, x)
    del root[SCRATCH]
    root.attrs["objects"] = int(objects)
    return objects


def block_scale(segmenter: Segmenter, diameter: float | None) -> float:
    """How much blocks are resampled for the network: objects of `diameter` px (None: the training images')
    to the network's object size."""
    return scale_factor(segmenter.object_diameter if diameter is None else diameter, segmenter.canonical_diameter)


def predict_block(segmenter: Segmenter, image, root: zarr.Group, y: int, x: int, stats, factor: float, *,
                  margin: int = 64, tile_size: int = 512, flips: int = 1,
                  should_stop: Callable[[], bool] | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Predict the block of `root` whose corner is (y, x), with `margin` pixels of context, and write its core
    into `semantic`, the scratch maps and `probabilities` (when the store has them); returns the core's
    (semantic, probabilities or None). Blocks are chunks of the store: blocks can be written in any order,
    by different processes."""
    _, height, width = image.shape
    block = int(root.attrs["block"])
    probs = root["probabilities"] if "probabilities" in root else None
    y1, x1 = min(y + block, height), min(x + block, width)
    ry0, rx0 = max(y - margin, 0), max(x - margin, 0)
    ry1, rx1 = min(y1 + margin, height), min(x1 + margin, width)
    region, shape = np.asarray(image[:, ry0:ry1, rx0:rx1]), (ry1 - ry0, rx1 - rx0)
    out_dtype = np.float32 if probs is not None else np.float16
    if factor != 1.0:
        region = resample(region, scaled_shape(shape, factor))
    prediction = predict_tiled(
        segmenter.net, region, stats, device=segmenter.device, tile_size=tile_size,
        overlap=min(margin, tile_size // 4), batch_size=1 if segmenter.device.type == "cpu" else 4,
        amp_dtype=autocast_dtype(segmenter.device), out_dtype=out_dtype, flips=flips,
        should_stop=should_stop)
    del region
    if factor != 1.0:
        prediction = resample_prediction(prediction, shape, factor, out_dtype)
    core = (slice(y - ry0, y1 - ry0), slice(x - rx0, x1 - rx0))
    root[SCRATCH][:, y:y1, x:x1] = np.stack([prediction.probabilities[0][core], prediction.boundary[core],
                                             prediction.distance[core]]).astype(np.float16)
    probabilities = None
    if probs is not None:
        probabilities = np.ascontiguousarray(prediction.probabilities[(slice(None), *core)])
        probs[:, y:y1, x:x1] = probabilities
    labels = np.ascontiguousarray(prediction.semantic()[core])
    root["semantic"][y:y1, x:x1] = labels
    return labels, probabilities


def maps_prediction(root: zarr.Group, region) -> Prediction:
    """The network outputs of a region of the plane, read back from the store's scratch maps."""
    bg, boundary, distance = np.asarray(root[SCRATCH][(slice(None), *region)], np.float32)
    return Prediction(probabilities=np.stack([bg, 1 - bg]), boundary=boundary, distance=distance)


def predict_to_zarr(
    segmenter: Segmenter,
    image,
    store: str | os.PathLike,
    params: InstanceParams | None = InstanceParams(),
    *,
    block: int = 1024,
    margin: int = 64,
    halo: int = 128,
    probabilities: bool = False,
    tile_size: int = 512,
    diameter: float | None = None,
    flips: int = 1,
    progress: Callable[[str, int, int], None] | None = None,
    coarsest: int = COARSEST,
) -> int:
    """Write `semantic`, `instances` (unless `params` is None) and `probabilities` arrays of a (C, H, W)
    image into the zarr store `store`, atomically; returns the object count. `progress(stage, done, total)`."""
    segmenter.check_input(image)
    objects = 0

    def write(temp: Path) -> None:
        nonlocal objects
        root = create_outputs(temp, tuple(image.shape[1:]), segmenter.config.n_classes, instances=params is not None,
                              probabilities=probabilities, block=block, coarsest=coarsest)
        objects = fill_outputs(segmenter, image, root, params, margin=margin, halo=halo, tile_size=tile_size,
                               diameter=diameter, flips=flips, progress=progress)

    atomic.write_file(store, write)
    return objects
