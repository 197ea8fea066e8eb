"""Running a generator-based core call (training, tuning, progress-yielding jobs) to its end in a test."""

from __future__ import annotations

from collections.abc import Generator
from typing import TypeVar

R = TypeVar("R")
T = TypeVar("T")


def drain(generator: Generator[R, None, T]) -> tuple[list[R], T]:
    """Every record `generator` yields, and the value it returns."""
    records = []
    while True:
        try:
            records.append(next(generator))
        except StopIteration as end:
            return records, end.value
