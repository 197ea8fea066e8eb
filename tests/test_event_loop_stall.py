"""benchmarks/event_loop_stall.py: each long stall is split into napari's redraws inside it and the rest."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from event_loop_stall import TICK_MS, stall_causes  # noqa: E402


def test_a_stall_is_split_into_the_redraws_inside_it_and_the_rest():
    ticks = [0.0, 0.01, 0.31, 0.32, 0.33, 0.58]  # two long gaps: 290 ms (a view move's draw) and 240 ms
    stalls = np.maximum(np.diff(ticks) * 1000 - TICK_MS, 0)
    spans = [(0.02, 0.12, "big", "view"), (0.12, 0.15, "big semantic", "view"),
             (0.30, 0.40, "big semantic", "dock")]  # the last one straddles two gaps: only its overlap counts
    moves = [(0.015, 1.0)]
    causes = stall_causes(ticks, stalls, spans, moves, start=0.0)
    assert [c["at_s"] for c in causes] == [0.01, 0.33] and [c["stall_ms"] for c in causes] == [290.0, 240.0]
    first, second = causes
    assert first["redraws_ms"] == {"big (view)": 100.0, "big semantic (view)": 30.0, "big semantic (dock)": 10.0}
    assert first["other_ms"] == 150.0 and first["ms_after_view_move"] == 0  # the move began inside it
    assert second["redraws_ms"] == {"big semantic (dock)": 70.0} and second["ms_after_view_move"] == 315
    assert stall_causes(ticks, stalls, spans, [], start=0.0)[0]["ms_after_view_move"] is None
