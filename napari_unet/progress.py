"""Progress as yielded records for core calls that report it through a callback.

Tiled inference and the OME-Zarr writer report `progress(done, total)` from deep inside a
blocking call (a tile loop, a dask computation). A background job must instead *yield*
its progress, so that the only path from a worker to the GUI is the worker's `yielded`
signal (no shared state polled by a timer). `yield_counts` bridges the two: it runs the
call in a helper thread and yields its counts as `Count` records, coalesced to at most one
per `interval` seconds, then returns the call's result (or raises its exception).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")
ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class Count:
    """`done` of `total` steps (tiles, chunks) of one call."""

    done: int
    total: int

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0


class _Abandoned(BaseException):
    """Raised in the helper thread at its next progress report once nobody iterates any more."""


_END = object()


def yield_counts(call: Callable[[ProgressCallback], T], interval: float = 0.05) -> Generator[Count, None, T]:
    """Run `call(progress)` and yield its progress as `Count` records; return its result.

    The call runs in a helper thread that never outlives this generator: closing the
    generator early stops the call at its next progress report and waits for it. Records
    are coalesced: at most one per `interval` seconds, and the last one is always yielded.
    """
    reports: queue.SimpleQueue = queue.SimpleQueue()
    abandoned = threading.Event()
    outcome: dict = {}

    def progress(done: int, total: int) -> None:
        if abandoned.is_set():
            raise _Abandoned
        reports.put(Count(int(done), int(total)))

    def run() -> None:
        try:
            outcome["value"] = call(progress)
        except BaseException as error:  # handed to the iterating thread
            outcome["error"] = error
        finally:
            reports.put(_END)

    helper = threading.Thread(target=run, name="napari-unet progress helper", daemon=True)
    helper.start()
    try:
        pending: Count | None = None
        last = float("-inf")
        while True:
            wait = None if pending is None else max(0.0, last + interval - time.monotonic())
            try:
                item = reports.get(timeout=wait)
            except queue.Empty:
                item = None
            if item is _END:
                break
            if item is not None:
                pending = item
            if pending is not None and time.monotonic() - last >= interval:
                yield pending
                pending, last = None, time.monotonic()
        if pending is not None:
            yield pending
    finally:
        abandoned.set()
        helper.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def relabel(steps: Generator[Count, None, T], wrap: Callable[[Count], object]) -> Generator[object, None, T]:
    """`steps` with each record passed through `wrap` (to say which plane or file it counts); same result."""
    try:
        while True:
            try:
                record = next(steps)
            except StopIteration as end:
                return end.value
            yield wrap(record)
    finally:
        steps.close()

