"""Progress reported by a callback becomes yielded records (progress.yield_counts)."""

from __future__ import annotations

import threading

import pytest
from generators import drain

from napari_unet.errors import UserInputError
from napari_unet.progress import Count, relabel, yield_counts


def _counting(n: int, calls: list | None = None):
    def call(progress):
        for i in range(1, n + 1):
            progress(i, n)
            if calls is not None:
                calls.append(i)
        return "result"

    return call


def test_counts_are_yielded_in_order_and_the_result_returned():
    records, result = drain(yield_counts(_counting(5), interval=0.0))
    assert result == "result"
    assert records and records[-1] == Count(5, 5) and records[-1].fraction == 1.0
    assert [r.done for r in records] == sorted(r.done for r in records)


def test_counts_are_coalesced_but_the_last_one_is_kept():
    records = list(yield_counts(_counting(2000), interval=10.0))
    assert records[-1] == Count(2000, 2000) and len(records) <= 3


def test_an_error_of_the_call_is_raised_by_the_iteration():
    def fails(progress):
        progress(1, 2)
        raise UserInputError("bad input")

    with pytest.raises(UserInputError, match="bad input"):
        list(yield_counts(fails))


def test_closing_early_stops_the_call_and_waits_for_it():
    calls: list = []
    release = threading.Event()

    def slow(progress):
        for i in range(1, 1000):
            progress(i, 1000)
            calls.append(i)
            release.wait(0.01)
        return "never"

    run = yield_counts(slow, interval=0.0)
    assert next(run).done >= 1
    run.close()  # the helper thread ended at its next report: nothing counts any more
    done = len(calls)
    release.wait(0.1)
    assert len(calls) == done < 999
    assert not any(t.name == "napari-unet progress helper" for t in threading.enumerate())


def test_relabel_wraps_records_and_keeps_the_result():
    records, result = drain(relabel(yield_counts(_counting(3), interval=0.0), lambda count: ("file", count.done)))
    assert result == "result"
    assert records[-1] == ("file", 3) and all(r[0] == "file" for r in records)
