"""Longest stall of napari's event loop while the napari-unet dock trains.

Opens a viewer with the dock and the nuclei sample, starts training for N seconds (live
preview on), and measures the intervals between ticks of a 10 ms QTimer: the longest
interval minus 10 ms is the longest time the GUI could not react. Prints a table and
writes benchmarks/results/event_loop_stall.json.

Run under a (virtual) display:

    xvfb-run -a python3 benchmarks/event_loop_stall.py --seconds 20
    xvfb-run -a python3 benchmarks/event_loop_stall.py --seconds 20 --threads all   # torch on every core

Each thread setting trains twice: 'first' (a new model in a fresh viewer: includes one-time
costs such as torch's first-step initialisation and the first draw of the preview layer) and
'again' (continue training, the usual human-in-the-loop case). The Train click itself (which
builds the training set and adds the preview layer) is timed separately ('click ms').

Target: worst stall < 100 ms on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
TICK_MS = 10


def measure(app, widget, seconds: float, threads: int | None, preview: float, patch: int, batch: int,
            run: str) -> dict:
    """One training run; run = 'first' (new model) or 'again' (continue training, the usual loop)."""
    from qtpy.QtCore import QEventLoop, QTimer

    widget.controller.train_threads = threads
    widget.train_step.budget_spin.setValue(int(seconds))
    widget.train_step.steps_spin.setValue(0)
    widget.train_step.patch_spin.setValue(patch)
    widget.train_step.batch_spin.setValue(batch)
    widget.train_step.preview_spin.setValue(preview)
    widget.train_step.autopredict_check.setChecked(False)
    if run == "first":
        widget.train_step.new_model()

    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(TICK_MS)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    previews = []
    widget.controller.preview_painted.connect(lambda: previews.append(time.perf_counter()))
    loop = QEventLoop()
    widget.controller.training_finished.connect(lambda ok: loop.quit())
    click = time.perf_counter()
    widget.train()  # the click handler itself: builds the training set, adds the preview layer
    click_ms = (time.perf_counter() - click) * 1000
    timer.start()  # from here on training runs in its worker: every stall counts
    start = time.perf_counter()
    QTimer.singleShot(int((seconds + 120) * 1000), loop.quit)  # safety net
    loop.exec_()
    timer.stop()
    elapsed = time.perf_counter() - start
    gaps = np.diff(np.asarray(ticks)) * 1000.0
    stalls = np.maximum(gaps - TICK_MS, 0.0)
    progress = widget.controller.last_progress
    worst = np.argsort(stalls)[::-1][:5]
    return {
        "run": run,
        "train_click_ms": round(click_ms, 1),
        "worst_stalls_at_s": [[round(float(ticks[i] - start), 2), round(float(stalls[i]), 1)] for i in worst],
        "previews_at_s": [round(t - start, 2) for t in previews],
        "torch_threads": threads if threads else os.cpu_count(),
        "seconds": round(elapsed, 2),
        "ticks": int(len(ticks)),
        "worst_stall_ms": round(float(stalls.max()), 1) if len(stalls) else None,
        "p99_stall_ms": round(float(np.percentile(stalls, 99)), 1) if len(stalls) else None,
        "mean_interval_ms": round(float(gaps.mean()), 2) if len(gaps) else None,
        "stalls_over_100ms": int(np.count_nonzero(stalls > 100)),
        "stalls_over_50ms": int(np.count_nonzero(stalls > 50)),
        "steps": int(progress.step) if progress else 0,
        "pixels_per_second": round(float(progress.pixels_per_second)) if progress else 0,
        "previews_painted": len(previews),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0, help="training budget per run")
    parser.add_argument("--threads", default="gui", help="'gui' (cores-1, the dock's default), 'all', or a number; "
                        "'both' runs gui then all")
    parser.add_argument("--preview", type=float, default=2.0, help="live-preview interval in seconds (0 = off)")
    parser.add_argument("--patch", type=int, default=128)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--out", type=Path, default=RESULTS / "event_loop_stall.json")
    args = parser.parse_args(argv)

    import napari
    from qtpy.QtWidgets import QApplication

    from napari_unet.widgets import UNetWidget
    from napari_unet.widgets.workers import gui_friendly_threads

    viewer = napari.Viewer(show=True)
    viewer.open_sample("napari-unet", "nuclei")
    widget = UNetWidget(viewer)
    viewer.window.add_dock_widget(widget, name="napari-unet")
    app = QApplication.instance()
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < 2.0:  # let the window settle
        app.processEvents()
        time.sleep(0.01)

    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    choices = {"gui": [gui_friendly_threads()], "all": [None], "both": [gui_friendly_threads(), None]}
    runs = choices.get(args.threads) or [int(args.threads)]
    results = []
    for threads in runs:
        for run in ("first", "again"):
            results.append(measure(app, widget, args.seconds, threads, args.preview, args.patch, args.batch, run))
        # a fresh model (and preview layer) for the next thread setting
        for layer in [lay for lay in viewer.layers if lay.name.endswith(" semantic")]:
            viewer.layers.remove(layer)
    viewer.close()

    header = f"{'torch threads':>13} {'training':>9} {'run s':>6} {'worst stall ms':>15} {'p99 ms':>7} {'>50ms':>6} {'>100ms':>7} " \
             f"{'steps':>6} {'kpx/s':>7} {'previews':>8} {'click ms':>8}"
    print(f"event-loop stall while training (nuclei sample 512x512, fast preset, patch {args.patch}, "
          f"batch {args.batch}, preview every {args.preview:g} s, {os.cpu_count()} cores, "
          f"load average before {load_before})")
    print(header)
    for r in results:
        print(f"{r['torch_threads']:>13} {r['run']:>9} {r['seconds']:>6.1f} {r['worst_stall_ms']:>15.1f} {r['p99_stall_ms']:>7.1f} "
              f"{r['stalls_over_50ms']:>6} {r['stalls_over_100ms']:>7} {r['steps']:>6} "
              f"{r['pixels_per_second'] / 1e3:>7.0f} {r['previews_painted']:>8} {r['train_click_ms']:>8.0f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "benchmark": "event_loop_stall",
        "command": "xvfb-run -a python3 benchmarks/event_loop_stall.py " + " ".join(argv or sys.argv[1:]),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "load_average_1min_before": load_before,
                    "display": "Xvfb + Mesa llvmpipe (software OpenGL): every canvas redraw costs tens of ms"},
        "settings": {"seconds": args.seconds, "preview_s": args.preview, "patch": args.patch, "batch": args.batch,
                     "preset": "fast", "sample": "nuclei"},
        "target_ms": 100,
        "runs": results,
    }
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
