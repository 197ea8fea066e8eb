"""Batch prediction on dask.distributed: many images, one model load per worker, resumable.

Each input is one task; a worker loads the model once (cached by checkpoint digest) and
predicts the images it is given. By default the work runs on a `LocalCluster` sized to
this machine's cores; give a scheduler address to use a cluster started elsewhere
(`dask scheduler` / `dask worker`, dask-jobqueue, Kubernetes, ...): the model travels
to the workers once, inputs and outputs are paths, so they must be visible to the workers.
Every output is written atomically, so outputs that exist are complete: a killed run
started again skips them (`resume`). An input that fails (unreadable, wrong dims, a
model of other channels) is reported and skipped; the batch goes on.
"""

from __future__ import annotations

import glob
import hashlib
import io
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from napari_unet.errors import UserInputError
from napari_unet.functionals.instances import InstanceParams
from napari_unet.io.images import SUPPORTED_EXTENSIONS
from napari_unet.io.ome_zarr_plate import (
    field_name,
    has_field_labels,
    is_plate,
    plate_fields,
    plate_of,
)

OUTPUT_KINDS = ("instances", "semantic", "probabilities")


@dataclass(frozen=True)
class BatchOptions:
    """What to write and how to predict; the same for every input of a batch."""

    kinds: tuple[str, ...] = ("instances",)
    params: InstanceParams = InstanceParams()
    channel_axis: int | None = None
    frames: bool = False
    z_anisotropy: float = 1.0
    tile_size: int = 512
    overlap: int = 64
    diameter: float | str | None = "auto"  # objects' size: measured per image by default
    flips: int = 1  # test-time flips: network passes per tile (Segmenter.predict)
    device: str = "auto"
    threads: int | None = None  # torch threads per worker process (None: leave torch's default)
    into_zarr: bool = False  # outputs as labels/<kind> of each OME-Zarr input (plate field), not files


@dataclass
class BatchSummary:
    """What happened to each input: written, skipped (outputs already there) or failed (with why)."""

    written: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    objects: int = 0

    def line(self) -> str:
        text = f"{len(self.written)} predicted ({self.objects} objects), {len(self.skipped)} already done"
        return text + f", {len(self.failed)} failed" if self.failed else text


def collect_inputs(specs: list[str]) -> list[Path]:
    """Image paths named by `specs`: files, folders (their supported images), glob patterns or
    OME-Zarr plates (the image group of each of their fields), in order.

    A folder or pattern that names no image is an error; a path that does not exist is
    kept, so it is reported as failed with the rest of the batch.
    """
    found: list[Path] = []
    for spec in specs:
        path = Path(spec)
        if path.suffix.lower() == ".zarr" and is_plate(path):
            found += plate_fields(path)
        elif path.is_dir() and path.suffix.lower() != ".zarr":
            images = sorted(p for p in path.iterdir() if _is_image(p))
            if not images:
                raise UserInputError(f"{spec} holds no images ({', '.join(SUPPORTED_EXTENSIONS)})")
            found += images
        elif glob.has_magic(spec):
            images = sorted(Path(p) for p in glob.glob(spec) if _is_image(Path(p)))
            if not images:
                raise UserInputError(f"no images match {spec}")
            found += images
        else:
            found.append(path)
    unique = list(dict.fromkeys(found))
    stems = [input_name(p) for p in unique]
    clashes = sorted({s for s in stems if stems.count(s) > 1})
    if clashes:
        raise UserInputError(f"several inputs are named {clashes[0]}: their outputs would overwrite each other")
    return unique


def input_name(image: Path) -> str:
    """What an input's outputs are named after: its stem, or a plate field's plate, well and field."""
    return field_name(image) if plate_of(image) is not None else image.stem


def done_outputs(image: Path, out_dir: Path | None, options: BatchOptions) -> int:
    """How many of the input's outputs exist complete (files in `out_dir`, or labels in the input)."""
    if options.into_zarr:
        return sum(has_field_labels(image, kind) for kind in options.kinds)
    return sum(p.exists() for p in output_paths(image, out_dir, options.kinds).values())


def output_paths(image: Path, out_dir: Path, kinds: tuple[str, ...]) -> dict[str, Path]:
    """DIR/<name>_<kind>.tif for each output kind (`input_name`)."""
    return {kind: out_dir / f"{input_name(image)}_{kind}.tif" for kind in kinds}


def run_batch(
    model_path: str | os.PathLike | bytes,
    inputs: list[Path],
    out_dir: str | os.PathLike | None,
    options: BatchOptions = BatchOptions(),
    *,
    client=None,
    scheduler: str | None = None,
    n_workers: int | None = None,
    processes: bool = True,
    overwrite: bool = False,
    resume: bool = False,
    on_done: Callable[[str, str, str], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> BatchSummary:
    """Predict every input into `out_dir` on dask.distributed; returns the summary.

    `client`: an existing dask Client; else `scheduler` (an address) or a new LocalCluster
    of `n_workers` (default: the cores) single-threaded workers, processes or threads.
    Inputs whose outputs all exist are skipped when `resume` (one with some of its outputs
    is predicted again); without `resume` or `overwrite` existing outputs are an error
    before anything runs.
    `on_done(input, status, message)` is called as each input finishes. `model_path` may be
    the checkpoint's bytes (the dock's model). `should_stop()`: True cancels the inputs not done.
    """
    if options.into_zarr:
        if "probabilities" in options.kinds:
            raise UserInputError("probabilities are not labels: write them to files with --out-dir")
        out_dir = None
    else:
        out_dir = Path(out_dir)
        if not out_dir.is_dir():
            raise UserInputError(f"the output folder {out_dir} does not exist: create it first")
    model_bytes = model_path if isinstance(model_path, bytes) else _read_model(model_path)
    summary = BatchSummary()
    todo = []
    for image in inputs:
        existing = done_outputs(image, out_dir, options)
        if resume and not overwrite and existing == len(options.kinds):
            summary.skipped.append(str(image))
            if on_done is not None:
                on_done(str(image), "skipped", "already done")
        elif existing and not (overwrite or resume):
            raise UserInputError(
                f"the outputs of {image} already exist: pass --resume-batch to skip inputs already done "
                "or --overwrite to replace them")
        else:
            todo.append(image)
    if not todo:
        return summary
    with cluster_client(client, scheduler, n_workers, processes, len(todo)) as dask_client:
        # hash=False: a job's own key; a shared one (same model bytes) can be released under the next job
        model = dask_client.scatter(model_bytes, broadcast=True, hash=False)
        digest = hashlib.sha256(model_bytes).hexdigest()
        futures = {
            dask_client.submit(predict_file, model, digest, str(image), out_dir and str(out_dir), options,
                               pure=False): str(image)
            for image in todo
        }
        for name, (status, message, objects) in _completed(dask_client, futures, should_stop):
            if status == "written":
                summary.written.append(name)
                summary.objects += objects
            else:
                summary.failed.append((name, message))
            if on_done is not None:
                on_done(name, status, message)
    return summary


@dataclass(frozen=True)
class ArrayInput:
    """An image already open (the dock's layers): its data (numpy, or lazy) and how to read it."""

    data: object
    layout: object  # functionals.layout.ImageLayout
    frames: bool = False  # a stack that is a time series: objects per frame
    z_anisotropy: float = 1.0
    diameter: float | str | None = "auto"  # the objects' size (as Segmenter.predict takes it)


def predict_arrays(
    model_bytes: bytes,
    images: dict[str, ArrayInput],
    options: BatchOptions = BatchOptions(),
    *,
    client=None,
    n_workers: int | None = 1,
    processes: bool = False,
    should_stop: Callable[[], bool] | None = None,
) -> Iterator[tuple[str, tuple]]:
    """Predict open images on dask.distributed, as `run_batch` predicts files; yields
    (name, (status, message, nn.volume.VolumeResult or None)) as each finishes (a bad image: 'failed')."""
    with cluster_client(client, None, n_workers, processes, len(images)) as dask_client:
        # hash=False: a job's own key; a shared one (same model bytes) can be released under the next job
        model = dask_client.scatter(model_bytes, broadcast=True, hash=False)
        digest = hashlib.sha256(model_bytes).hexdigest()
        futures = {
            dask_client.submit(predict_array, model, digest, item, options, pure=False): name
            for name, item in images.items()
        }
        yield from _completed(dask_client, futures, should_stop, ("failed", "", None))


def predict_array(model_bytes: bytes, digest: str, item: ArrayInput, options: BatchOptions) -> tuple:
    """One open image, on a worker: ('written', '', VolumeResult) or ('failed', why, None)."""
    from napari_unet.nn.volume import predict_image

    try:
        segmenter = cached_segmenter(model_bytes, digest, options)
        result = predict_image(
            segmenter, item.data, item.layout, options.params if "instances" in options.kinds else None,
            frames=item.frames, z_anisotropy=item.z_anisotropy, tile_size=options.tile_size,
            overlap=options.overlap, probabilities="probabilities" in options.kinds, diameter=item.diameter,
            flips=options.flips)
    except UserInputError as error:
        return "failed", str(error), None
    except (RuntimeError, ValueError, MemoryError) as error:
        return "failed", f"{type(error).__name__}: {error}", None
    return "written", "", result


def model_bytes_of(segmenter) -> bytes:
    """A model in memory as checkpoint bytes, as `run_batch` sends a checkpoint file to its workers."""
    import torch

    buffer = io.BytesIO()
    torch.save(segmenter.to_checkpoint(), buffer)
    return buffer.getvalue()


def _completed(dask_client, futures: dict, should_stop: Callable[[], bool] | None,
               failed: tuple = ("failed", "", 0)) -> Iterator[tuple[str, tuple]]:
    """(name, task result) of each future as it finishes; a task that could not run gives `failed` with
    its error as message. `should_stop()` true: the futures not done are cancelled and nothing more comes."""
    from distributed import as_completed

    pending = as_completed(futures)
    while not pending.is_empty():
        if should_stop is not None and should_stop():
            dask_client.cancel(list(futures))
            return
        batch = pending.next_batch(block=should_stop is None)
        if not batch:
            time.sleep(0.1)
        for future in batch:
            try:
                yield futures[future], future.result()
            except Exception as error:  # a worker died or the task could not run: that input failed
                yield futures[future], (failed[0], f"{type(error).__name__}: {error}", *failed[2:])


def predict_file(model_bytes: bytes, digest: str, image_path: str, out_dir: str | None,
                 options: BatchOptions) -> tuple[str, str, int]:
    """One input, on a worker: ('written', '', objects) or ('failed', why, 0); never raises for bad input."""
    from napari_unet.io.images import read_image, write_array
    from napari_unet.io.ome_zarr_plate import read_field, write_field_labels
    from napari_unet.nn.volume import layout_of_file, predict_image

    path = Path(image_path)
    kinds = options.kinds
    try:
        segmenter = cached_segmenter(model_bytes, digest, options)
        field = None
        if options.into_zarr or plate_of(path) is not None:  # named axes: channels where the metadata says
            field = read_field(path)
            image, layout = field.data, field.layout
        else:
            image = read_image(path)
            layout = layout_of_file(tuple(image.shape), options.channel_axis, path.name)
        result = predict_image(
            segmenter, image, layout, options.params if "instances" in kinds else None,
            frames=options.frames, z_anisotropy=options.z_anisotropy, tile_size=options.tile_size,
            overlap=options.overlap, probabilities="probabilities" in kinds,
            diameter=options.diameter, flips=options.flips)
        arrays = {"instances": result.instances, "semantic": result.semantic, "probabilities": result.probabilities}
        if options.into_zarr:
            for kind in kinds:
                write_field_labels(path, kind, arrays[kind], field.labels_shape)
        else:
            for kind, target in output_paths(path, Path(out_dir), kinds).items():
                write_array(target, arrays[kind])
    except UserInputError as error:
        return "failed", str(error), 0
    except (RuntimeError, ValueError, MemoryError) as error:
        return "failed", f"{type(error).__name__}: {error}", 0
    objects = int(result.instances.max()) if result.instances is not None and result.instances.size else 0
    return "written", "", objects


_MODELS: dict[tuple[str, str], object] = {}
_MODELS_LOCK = threading.Lock()


def cached_segmenter(model_bytes: bytes, digest: str, options: BatchOptions):
    """The worker's one copy of the model (loaded at its first task)."""
    import io

    import torch

    from napari_unet.nn.device import pick_device
    from napari_unet.nn.segmenter import Segmenter

    key = (digest, options.device)
    with _MODELS_LOCK:
        if key not in _MODELS:
            if options.threads:
                torch.set_num_threads(options.threads)
            checkpoint = torch.load(io.BytesIO(model_bytes), map_location="cpu", weights_only=True)
            _MODELS.clear()  # one model per worker: a new batch's model replaces the last one
            _MODELS[key] = Segmenter.from_checkpoint(checkpoint).to(pick_device(options.device))
        return _MODELS[key]


def _read_model(path: str | os.PathLike) -> bytes:
    """The checkpoint's bytes, checked here so a wrong path fails before any worker starts."""
    from napari_unet.nn.segmenter import Segmenter

    Segmenter.load(path)  # a clear error for a missing or foreign file
    return Path(path).read_bytes()


class cluster_client:
    """Context manager: the given client, a client of `scheduler`, or a LocalCluster closed on exit."""

    def __init__(self, client, scheduler: str | None, n_workers: int | None, processes: bool, tasks: int):
        self.given, self.scheduler, self.processes = client, scheduler, processes
        self.n_workers = max(1, min(n_workers or os.cpu_count() or 1, tasks))
        self.cluster = self.client = None

    def __enter__(self):
        if self.given is not None:
            return self.given
        from distributed import Client, LocalCluster

        if self.scheduler:
            try:
                self.client = Client(self.scheduler, timeout="10s")
            except (OSError, TimeoutError) as error:
                raise UserInputError(f"could not reach the dask scheduler at {self.scheduler}: {error}") from error
            return self.client
        # no dashboard, and its HTTP server on a free port: the default 8787 is taken whenever another cluster
        # runs (the dock's, a second batch), and distributed then warns on stderr
        self.cluster = LocalCluster(n_workers=self.n_workers, threads_per_worker=1, processes=self.processes,
                                    dashboard_address=":0", scheduler_kwargs={"dashboard": False})
        self.client = Client(self.cluster)
        return self.client

    def __exit__(self, *exc) -> None:
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in SUPPORTED_EXTENSIONS and not path.name.startswith(".")

