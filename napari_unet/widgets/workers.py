"""Background work for the docks: one scheduler that every job (train, predict, instance
update, export) starts through.

Jobs are generators run by napari's `create_worker` (a `GeneratorWorker` in Qt's thread
pool): they yield records the GUI thread consumes through the `yielded` signal and stop at
the next step when their stop flag is set. `TrackedWorker` adds a `threading.Event` that is
set when the thread really ends; the `Scheduler` keeps every worker it started until then,
so closing the viewer stops and joins all of them.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from napari.qt.threading import GeneratorWorker, create_worker

from napari_unet.functionals.instances import InstanceParams, instances_from_prediction
from napari_unet.functionals.instances3d import instances_3d
from napari_unet.functionals.prediction import Prediction
from napari_unet.functionals.uncertainty import uncertainty_map
from napari_unet.nn.inference import Stopped
from napari_unet.nn.segmenter import Segmenter
from napari_unet.nn.training import Trainer
from napari_unet.progress import Count, relabel, yield_counts


class WorkerFailure(Exception):
    """A RuntimeError from the core, re-raised under another type.

    superqt's GeneratorWorker takes a RuntimeError for "the worker was deleted" and then
    ends silently (no `errored`, no `finished`), which would leave the dock waiting forever.
    """

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.original = error


class TrackedWorker(GeneratorWorker):
    """A GeneratorWorker whose `done` event is set when its thread has finished (any way)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.done = threading.Event()

    def work(self):
        try:
            return super().work()
        finally:
            self.done.set()


_warm_up_started = False


def warm_up_torch() -> None:
    """Import what torch loads lazily at the first optimiser step, in a background thread, once.

    The first training step of a session imports torch._dynamo (and with it sympy, mpmath:
    ~800 modules, about a second). Imports hold the interpreter lock for long stretches, so
    done inside the training worker they froze the viewer for ~200 ms; done when the dock
    opens, nobody is waiting for the viewer yet.
    """
    global _warm_up_started
    if _warm_up_started:
        return
    _warm_up_started = True

    def run() -> None:
        try:
            import torch._dynamo  # noqa: F401
        except Exception:  # only an optimisation
            pass

    threading.Thread(target=run, name="napari-unet torch warm-up", daemon=True).start()


def gui_friendly_threads() -> int:
    """Torch threads for work beside the GUI: all cores but one, so the event loop keeps a core."""
    return max(1, (os.cpu_count() or 1) - 1)


def train_generator(trainer: Trainer, stop: threading.Event):
    """Run `trainer` and return its Segmenter (also when stopped by the flag)."""
    run = trainer.run(should_stop=stop.is_set)
    while True:
        try:
            record = next(run)
        except StopIteration as done:
            return done.value
        except RuntimeError as error:
            raise WorkerFailure(error) from error
        yield record


@dataclass(frozen=True)
class TileProgress:
    """Tiles done in the plane being predicted (plane `index` of `planes`)."""

    image: str
    index: int
    planes: int
    tiles: Count


@dataclass
class PlaneResult:
    """One predicted plane, with the post-processed outputs the GUI thread only has to paint."""

    image: str
    plane: tuple
    prediction: Prediction
    semantic: np.ndarray
    instances: np.ndarray
    uncertainty: np.ndarray  # (H, W) uint8, functionals.uncertainty
    use_instance_heads: bool
    params: InstanceParams
    model_version: int
    done: int
    total: int


@dataclass
class StackObjects:
    """A stack's 3D objects, joined across its planes after the last plane: (Z, Y, X) labels."""

    image: str
    instances: np.ndarray


def predict_generator(
    segmenter: Segmenter,
    image_name: str,
    read_plane: Callable[[tuple], np.ndarray],
    planes: list[tuple],
    params: InstanceParams,
    model_version: int,
    stop: threading.Event,
    tile_size: int = 512,
    threads: int | None = None,
    z_anisotropy: float | None = None,
    diameter: float | str | None = None,
    flips: int = 1,
):
    """Predict planes one by one; yields TileProgress records while a plane runs, a
    PlaneResult per plane and, for a stack, its StackObjects; returns "done" or "cancelled".

    threads: torch threads (default: all cores but one, so the viewer keeps a core).
    z_anisotropy: the planes are a whole (Z, Y, X) stack: after them, yield its StackObjects.
    diameter: the objects' size in pixels, AUTO or None (the model's), as Segmenter.predict takes it.
    flips: test-time flips (network passes per tile), as Segmenter.predict takes them.
    """
    import torch

    torch.set_num_threads(threads or gui_friendly_threads())
    use_heads = segmenter.instance_heads_trained
    total = len(planes)
    predictions = []
    for i, plane in enumerate(planes):
        if stop.is_set():
            return "cancelled"
        image = read_plane(plane)
        try:
            counts = yield_counts(lambda progress, image=image: segmenter.predict(
                image, diameter=diameter, tile_size=tile_size, flips=flips, progress=progress,
                should_stop=stop.is_set))
            prediction = yield from relabel(counts, lambda count, i=i: TileProgress(image_name, i, total, count))
            semantic = prediction.semantic()
            instances = instances_from_prediction(prediction, params, use_instance_heads=use_heads)
            uncertainty = uncertainty_map(prediction)
        except Stopped:
            return "cancelled"
        except RuntimeError as error:
            raise WorkerFailure(error) from error
        if z_anisotropy is not None:
            predictions.append(prediction)
        yield PlaneResult(
            image_name, tuple(plane), prediction, semantic, instances, uncertainty, use_heads, params, model_version,
            i + 1, total,
        )
    if z_anisotropy is not None and len(predictions) > 1:
        yield StackObjects(image_name, instances_3d(predictions, params, use_instance_heads=use_heads,
                                                    z_anisotropy=z_anisotropy))
    return "done"


def call_once(func: Callable, *args):
    """A job that is one function call: a generator that yields nothing and returns its result."""
    return func(*args)
    yield  # unreachable: makes this a generator, so every job runs as a TrackedWorker


class Scheduler:
    """Starts every background job of a viewer and remembers it until its thread has ended."""

    def __init__(self) -> None:
        self._running: dict[TrackedWorker, threading.Event | None] = {}

    def start(
        self, func, *args, connect: dict, stop: threading.Event | None = None, progress: dict | None = None
    ) -> TrackedWorker:
        """Create and start a TrackedWorker for the generator `func(*args)`.

        connect: signal name -> slot; errors go to `connect['errored']`, never re-raised.
        stop: the job's stop flag, set by `join`. progress: napari progress bar options.
        """
        worker = create_worker(
            func,
            *args,
            _worker_class=TrackedWorker,
            _progress=progress or False,
            _ignore_errors=True,
            _connect=None,
            _start_thread=False,
        )
        for signal, slot in connect.items():
            getattr(worker, signal).connect(slot)
        worker.finished.connect(lambda: self._running.pop(worker, None))
        self._running[worker] = stop
        worker.start()
        return worker

    def running(self) -> list[TrackedWorker]:
        """Workers whose threads have not ended yet."""
        return [worker for worker in list(self._running) if not worker.done.is_set()]

    def join(self, timeout: float = 15.0, only: list[TrackedWorker] | None = None) -> bool:
        """Ask every job (or those in `only`) to stop and wait up to `timeout` s for their threads;
        True if they all ended."""
        workers = [(w, stop) for w, stop in self._running.items() if only is None or w in only]
        for worker, stop in workers:
            if stop is not None:
                stop.set()
            worker.quit()
        deadline = time.monotonic() + timeout
        for worker, _ in workers:
            worker.done.wait(max(0.0, deadline - time.monotonic()))
        return all(worker.done.is_set() for worker, _ in workers)
