"""napari's own cost of adding one multiscale Labels layer over a zarr pyramid: the floor of a store layer.

    xvfb-run -a -s "-screen 0 1300x820x24" python3 benchmarks/napari_add_layer_floor.py --data DIR [--size 32768]

No plugin code runs: a bare viewer (1280x800) shows the input pyramid `event_loop_stall.py --store SIZE --data DIR`
wrote, then three empty uint32 pyramids like a prediction store's are added as Labels layers, visible, hidden,
visible, each timed from the layer's creation to the end of the events its adding posts. Prints a table and
writes results/napari_add_layer_floor.json.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import dask.array as da
import napari
import numpy as np
import zarr
from common import save
from event_loop_stall import settle
from qtpy.QtWidgets import QApplication

from napari_unet.nn.chunked import create_levelled, output_levels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="event_loop_stall.py's --data folder")
    parser.add_argument("--size", type=int, default=32768)
    args = parser.parse_args()
    levels = sorted(args.data.glob(f"nuclei_{args.size}*.zarr"))
    if not levels:
        raise SystemExit(f"no nuclei_{args.size}*.zarr in {args.data}: run event_loop_stall.py --store {args.size} first")
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1280, 800)
    viewer.add_image([da.from_zarr(zarr.open_array(str(p), mode="r")) for p in levels], name="big",
                     contrast_limits=(0, 4000))
    app = QApplication.instance()
    settle(app, 2.0)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        root = zarr.open_group(folder, mode="w")
        for k, visible in enumerate((True, False, True)):
            create_levelled(root, f"labels{k}", (args.size, args.size), np.uint32, 1024, 256)
            pyramid = output_levels(root, f"labels{k}")
            start = time.perf_counter()
            layer = napari.layers.Labels(pyramid, name=f"labels{k}", visible=visible)
            made = time.perf_counter()
            viewer.add_layer(layer)
            added = time.perf_counter()
            app.processEvents()
            done = time.perf_counter()
            rows.append({"visible": visible, "layer_ms": round(1000 * (made - start), 1),
                         "add_layer_ms": round(1000 * (added - made), 1),
                         "events_after_ms": round(1000 * (done - added), 1),
                         "total_ms": round(1000 * (done - start), 1)})
            print(rows[-1], flush=True)
            settle(app, 1.0)
    viewer.close()
    path = save("napari_add_layer_floor", {"size": args.size, "rows": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
