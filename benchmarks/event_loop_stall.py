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

`--store SIZE` measures instead the dock predicting a lazy SIZE^2 uint16 zarr of synthetic
nuclei (bigger than the dock's in-memory limit) into a prediction store with the shipped
`nuclei` model, for `--seconds` (then Cancel), while the view moves to a random place and
zoom every `--browse` seconds, as a user browsing the result as it fills in would:

    xvfb-run -a python3 benchmarks/event_loop_stall.py --store 16384 --seconds 60

The input is drawn before the Predict click (a user sees the image before predicting; the first
draw of a dask array also imports dask.distributed, 0.7 s, which is not the dock's). `--window W H`
sizes the viewer's window. Without it napari restores the window geometry it saved when a viewer
last closed (in its settings), so the canvas differs between runs (600x75 px to 1005x1121 px
were seen; the record has it): a small canvas reads little at a view move. For comparable runs
with a canvas a user would have:

    xvfb-run -a -s "-screen 0 1920x1080x24" python3 benchmarks/event_loop_stall.py --store 16384 \
        --seconds 60 --window 1900 1060

`--profile-click` adds a cProfile of the Predict click (the GUI thread's Python calls and the costliest
functions) to the record, and one of the first second after it (the turns that finish its work); with a short
run it measures the click alone:

    xvfb-run -a -s "-screen 0 1920x1080x24" python3 benchmarks/event_loop_stall.py --store 16384 \
        --seconds 5 --window 1900 1060 --profile-click --out /tmp/click.json

`--package DIR` runs another commit's napari_unet under this benchmark (`git archive COMMIT | tar -x -C DIR`),
for before/after pairs run back to back.

The record lists, per layer, napari's redraws (`Layer.refresh`: re-read and colour the tile napari
holds) with their count, total and longest time, by cause: "dock" (the dock redrawing a layer as
blocks land) or "view" (napari, at a view move); and for each stall over 100 ms, the redraws inside it
by layer, what is left (Qt's event handling and repaint of the window), and how long after a view move.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import platform
import pstats
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


def timed_refreshes(controller, spans: list | None = None) -> dict[str, dict[str, list[float]]]:
    """Time napari's redraws (`Layer.refresh`, ms) by layer name and cause: "dock" (the controller's handler of
    a landed block) or "view" (napari, at view moves and draws). Returns the live record; `spans` gets
    (start, end, layer name, cause) of each, in perf_counter seconds."""
    from napari.layers import Layer

    record: dict[str, dict[str, list[float]]] = {}
    refresh = Layer.refresh
    in_dock = [False]

    def timed(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return refresh(self, *args, **kwargs)
        finally:
            cause = "dock" if in_dock[0] else "view"
            end = time.perf_counter()
            record.setdefault(self.name, {}).setdefault(cause, []).append((end - start) * 1000)
            if spans is not None:
                spans.append((start, end, self.name, cause))

    def dock_handler(handler):
        def handle(*args, **kwargs):
            in_dock[0] = True
            try:
                return handler(*args, **kwargs)
            finally:
                in_dock[0] = False
        return handle

    Layer.refresh = timed
    for name in ("_on_store_progress", "_on_store_returned"):  # bound at the click: wrap them before it
        setattr(controller, name, dock_handler(getattr(controller, name)))
    return record


def stall_causes(ticks: list[float], stalls: np.ndarray, spans: list, moves: list, start: float,
                 over_ms: float = 100.0) -> list[dict]:
    """Where each stall over `over_ms` went: napari's redraws inside it (ms by layer and cause), the rest
    (Qt's event handling and repaint of the window, the camera's own events: not napari-unet's), and how long
    after the last view move it began (a move costs napari's draw, then a second paint of the new tiles)."""
    causes = []
    for i in np.flatnonzero(stalls > over_ms):
        lo, hi = ticks[i], ticks[i + 1]
        redraws: dict[str, float] = {}
        for begin, end, name, cause in spans:
            overlap = min(end, hi) - max(begin, lo)
            if overlap > 0:
                key = f"{name} ({cause})"
                redraws[key] = round(redraws.get(key, 0.0) + overlap * 1000, 1)
        before = [tick for tick, _ in moves if tick < hi]
        causes.append({"at_s": round(lo - start, 2), "stall_ms": round(float(stalls[i]), 1),
                       "ms_after_view_move": round(max(0.0, lo - before[-1]) * 1000) if before else None,
                       "redraws_ms": redraws, "other_ms": round(float(stalls[i]) - sum(redraws.values()), 1)})
    return causes


def settle(app, seconds: float) -> None:
    """Let the viewer process its events (draw) for `seconds`."""
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        app.processEvents()
        time.sleep(0.01)


def click_profile(profiler, top: int = 25) -> dict:
    """The Predict click's work on the GUI thread from cProfile: Python calls, seconds, and the `top` functions
    by cumulative time (calls, cumulative ms). Call counts hardly change with the machine's load."""
    stats = pstats.Stats(profiler)
    rows = sorted(stats.stats.items(), key=lambda item: item[1][3], reverse=True)[:top]
    return {"calls": stats.total_calls, "seconds": round(stats.total_tt, 3),
            "top_cumulative": [[f"{Path(file).name}:{line}({name})", calls, round(cumulative * 1000, 1)]
                               for (file, line, name), (_, calls, _, cumulative, _) in rows]}


def measure_store(app, viewer, widget, size: int, seconds: float, browse: float, folder: Path,
                  data_folder: Path | None = None, profile: bool = False, predict: bool = True) -> dict:
    """Ticks of a 10 ms QTimer while the dock predicts a lazy size^2 plane into a store, the view moving.
    `data_folder`: where the input is written, or reused when there already (default `folder`); `profile`:
    record the click's cProfile (`click_profile`); `predict` False: the same view moves with no prediction
    (napari's and the display's own floor)."""
    import dask.array as da
    import zarr
    from qtpy.QtCore import QEventLoop, QTimer
    from volumes import tiled_nuclei_store

    from napari_unet.io.pretrained import resolve

    levels = max(0, int(np.ceil(np.log2(size / 1024))))  # the input as a pyramid too, as an OME-Zarr would be
    first = (data_folder or folder) / f"nuclei_{size}.zarr"
    paths = [first] + [first.with_name(f"{first.stem}_level{k}.zarr") for k in range(1, levels + 1)]
    if not all(path.exists() for path in paths):
        paths = tiled_nuclei_store(first, size, levels=levels)
    data = [da.from_zarr(zarr.open_array(str(path), mode="r")) for path in paths]
    viewer.add_image(data if levels else data[0], name="big", contrast_limits=(0, 4000))
    settle(app, 2.0)  # the image on screen before the click, as a user sees it
    widget.train_step.load_model(resolve("nuclei"))
    controller = widget.controller
    controller.store_folder = folder
    widget.annotate_step.image_picker.set_layer(viewer.layers["big"])
    widget.predict_step.prob_check.setChecked(False)
    records, moves = [], []
    controller.store_progress.connect(lambda record: records.append((time.perf_counter(), record.stage, record.done)))
    rng = np.random.default_rng(0)

    def move() -> None:
        tick = time.perf_counter()
        viewer.camera.center = tuple(rng.uniform(0, size, 2))
        viewer.camera.zoom = float(rng.choice([0.02, 0.1, 0.5, 2.0]))
        moves.append((tick, (time.perf_counter() - tick) * 1000))

    ticks: list[float] = []
    timer, mover = QTimer(), QTimer()
    timer.setInterval(TICK_MS)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    mover.setInterval(int(browse * 1000))
    mover.timeout.connect(move)
    loop = QEventLoop()
    controller.prediction_finished.connect(lambda status: loop.quit())
    spans: list = []
    refreshes = timed_refreshes(controller, spans)
    profiler = cProfile.Profile() if profile else None
    click = time.perf_counter()
    if profiler:
        profiler.enable()
    if predict:
        widget.predict_step.predict()
    if profiler:
        profiler.disable()
    click_ms = (time.perf_counter() - click) * 1000
    refreshes.clear()  # from here on
    spans.clear()
    timer.start()
    mover.start()
    start = time.perf_counter()
    after = cProfile.Profile() if profile else None  # the event-loop turns that follow the click, for 1 s
    if after:
        after.enable()
        QTimer.singleShot(1000, after.disable)
    QTimer.singleShot(int(seconds * 1000), widget.predict_step.cancel_prediction if predict else loop.quit)
    QTimer.singleShot(int((seconds + 300) * 1000), loop.quit)  # safety net
    loop.exec_()
    timer.stop()
    mover.stop()
    gaps = np.diff(np.asarray(ticks)) * 1000.0
    stalls = np.maximum(gaps - TICK_MS, 0.0)
    worst = np.argsort(stalls)[::-1][:5]
    names = [name for name in ("big instances", "big semantic", "big") if name in viewer.layers]
    return {
        "run": f"store {size}^2" if predict else f"no prediction (view moves only), {size}^2",
        "predict_click_ms": round(click_ms, 1) if predict else None,
        **({"predict_click_profile": click_profile(profiler),
            "first_second_after_click_profile": click_profile(after)} if profiler else {}),
        "multiscale_layers": bool(viewer.layers[names[0]].multiscale),
        "seconds": round(time.perf_counter() - start, 2),
        "blocks_done": [r[1:] for r in records][-1:] ,
        "worst_stalls_at_s": [[round(float(ticks[i] - start), 2), round(float(stalls[i]), 1)] for i in worst],
        "worst_stall_ms": round(float(stalls.max()), 1) if len(stalls) else None,
        "p99_stall_ms": round(float(np.percentile(stalls, 99)), 1) if len(stalls) else None,
        "stalls_over_100ms": int(np.count_nonzero(stalls > 100)),
        "stalls_over_50ms": int(np.count_nonzero(stalls > 50)),
        "view_moves": len(moves),
        "ticks": int(len(ticks)),
        "canvas_px": list(viewer.window._qt_viewer.canvas.size),
        "stalls_over_100ms_by_cause": stall_causes(ticks, stalls, spans, moves, start),
        "refreshes": {f"{name} ({cause})": {"count": len(ms), "total_ms": round(sum(ms)),
                                             "longest_ms": round(max(ms), 1)}
                      for name, causes in refreshes.items() for cause, ms in causes.items()},
    }


def use_package(checkout: Path) -> None:
    """Import napari_unet from `checkout` (a source tree with napari_unet/ and resources/), not the installed one:
    an editable install's import hook comes before sys.path, so it is taken out."""
    if "napari_unet" in sys.modules:
        raise RuntimeError("napari_unet is already imported")
    sys.meta_path[:] = [finder for finder in sys.meta_path if "editable" not in repr(finder).lower()]
    sys.path.insert(0, str(checkout.resolve()))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0, help="training budget per run")
    parser.add_argument("--threads", default="gui", help="'gui' (cores-1, the dock's default), 'all', or a number; "
                        "'both' runs gui then all")
    parser.add_argument("--preview", type=float, default=2.0, help="live-preview interval in seconds (0 = off)")
    parser.add_argument("--patch", type=int, default=128)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--out", type=Path, default=None, help="default: results/event_loop_stall[_store].json")
    parser.add_argument("--store", type=int, default=0, help="measure a prediction into a store of a SIZE^2 plane")
    parser.add_argument("--browse", type=float, default=2.0, help="with --store: move the view every so many s")
    parser.add_argument("--window", type=int, nargs=2, metavar=("W", "H"), default=None,
                        help="with --store: resize the viewer's window (the screen must be as big: xvfb-run -s)")
    parser.add_argument("--data", type=Path, default=None,
                        help="with --store: keep the generated input in this folder and reuse it (default: temporary)")
    parser.add_argument("--no-predict", action="store_true",
                        help="with --store: the same input and view moves, no prediction: the floor that napari and "
                             "the display set on their own")
    parser.add_argument("--profile-click", action="store_true",
                        help="with --store: cProfile the Predict click (GUI thread) into the record; with a short "
                             "--seconds for the click alone")
    parser.add_argument("--package", type=Path, default=None,
                        help="import napari_unet from this checkout instead (e.g. `git archive COMMIT | tar -x -C DIR`): "
                             "before/after pairs with this benchmark")
    args = parser.parse_args(argv)
    if args.package:
        use_package(args.package)
    if args.store:
        return store_main(args, argv)
    args.out = args.out or RESULTS / "event_loop_stall.json"

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


def store_main(args, argv) -> int:
    """--store: one prediction into a store, the view moving; prints and saves the stalls."""
    import tempfile

    import napari
    from qtpy.QtWidgets import QApplication

    from napari_unet.widgets import UNetWidget

    viewer = napari.Viewer(show=True)
    widget = UNetWidget(viewer)
    viewer.window.add_dock_widget(widget, name="napari-unet")
    if args.window:
        viewer.window._qt_window.resize(*args.window)
    app = QApplication.instance()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        result = measure_store(app, viewer, widget, args.store, args.seconds, args.browse, Path(tmp), args.data,
                               args.profile_click, predict=not args.no_predict)
        viewer.close()
    doing = "with no prediction, the view moving over" if args.no_predict else "while the dock predicts into a store"
    print(f"event-loop stall {doing} a {args.store}^2 lazy plane "
          f"({os.cpu_count()} cores, load average before {load_before:.1f})")
    print(json.dumps(result, indent=1))
    out = args.out or RESULTS / "event_loop_stall_store.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"benchmark": "event_loop_stall --store", "command": "xvfb-run -a python3 "
                               "benchmarks/event_loop_stall.py " + " ".join(argv or sys.argv[1:]),
                               "load_average_1min_before": load_before, "target_ms": 100, "runs": [result]},
                              indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
