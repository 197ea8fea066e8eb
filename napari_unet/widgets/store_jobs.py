"""Predicting a plane too big for memory: into a zarr store on disk, shown as lazy layers that fill in.

`StoreJobs` is mixed into `controller.Controller`. A plane above `store_above_pixels` is
not predicted into memory (its float outputs alone would take gigabytes): the controller
creates a zarr store (`nn.chunked.create_outputs`, metadata only), shows its arrays as the
image's semantic, instance and accepted Labels layers (zarr arrays: napari reads only the
slice it draws, and a brush stroke writes only the chunks it touches) and probability
Image layers (dask arrays over the store), then runs the same two passes as `napari-unet
predict --out-zarr` (`nn.chunked.fill_outputs`) in a worker. The worker yields a
`StoreProgress` per block of each pass, with the regions written. The GUI thread redraws, at most
every `REFRESH_SECONDS`, only the layers that pass writes (the network pass: semantic and
probabilities; the objects pass: instances; never accepted) and only when a landed block meets
the tile napari holds for the layer; thumbnails at the end of a pass. Redrawing every store
layer with its thumbnail at every landed block froze the viewer 150-350 ms each time at 16384^2
(napari re-reads, colours and, for the outlined accepted layer, contours the whole tile on the GUI
thread). A block that lands off screen is read when the view moves there. The instances layer is hidden
until the objects pass writes its first block, the accepted one until the first accept: napari reads,
colours and draws every visible layer's tile at every view move, empty ones too. Redraws go through
`lb.refresh_pyramid`: napari keeps a pyramid's coarsest level once read, which would otherwise never fill in.
No whole-array read happens on the GUI thread, and the Predict click does little there: layers that start
hidden are made hidden (napari does not read them when added), pyramids are made without the brush
overlays napari builds vispy visuals for (`napari/cheap_layers.py`), napari does not select each added
layer, and an earlier prediction's outputs are renamed aside for the worker to delete
(`set_aside_outputs`). The click makes the semantic layer; the others follow 50 ms apart, each costing
what napari's own adding of one layer costs here, and the worker starts once they are made; while it
runs, information goes to the dock's message line instead of toasts (each ~100 ms to build). A plane more than `store_multiscale_above`
pixels a side is shown through the store's pyramid (`nn.chunked.output_levels`): napari then
reads only the level and the part of it on screen, so browsing stays memory-bounded however
big the plane (a single-scale layer zoomed out reads, colours and contours the whole plane:
22 s of frozen viewer at 8192^2). napari cannot paint on a pyramid, so the brush is off there;
the correct step's tools (merge, split, delete, accept) write every level (`lb.write_undoable`).

Why a size and not "every lazy image": below it a plane's outputs fit in memory, and the
in-memory path keeps what the store path cannot offer (live instance sliders from cached
network outputs, the uncertainty layer, Suggest next); above it, lazy or not, they do not fit.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from napari.layers import Image, Labels
from psygnal import Signal

from napari_unet import conventions as c
from napari_unet.errors import UserInputError
from napari_unet.functionals.block_instances import block_region, block_starts
from napari_unet.functionals.instances import InstanceParams
from napari_unet.functionals.layout import LazyPlane
from napari_unet.functionals.scale import AUTO
from napari_unet.io.names import safe_name
from napari_unet.napari import layers as lb
from napari_unet.napari.cheap_layers import selection_kept
from napari_unet.napari.rendering import ASYNC_HINT, reads_asynchronously
from napari_unet.nn.chunked import (
    OUTPUTS,
    PYRAMID,
    SCRATCH,
    create_levelled,
    create_outputs,
    fill_outputs,
    output_levels,
)
from napari_unet.nn.inference import Stopped
from napari_unet.progress import relabel, yield_counts
from napari_unet.widgets.workers import WorkerFailure, gui_friendly_threads

STORE_ABOVE_PIXELS = 4096 * 4096  # planes larger than this are predicted into a zarr store
STORE_BLOCK = 1024  # block (and chunk) edge of the store
STORE_MULTISCALE_ABOVE = 2048  # planes more than this a side are shown through the store's pyramid
OBJECTS_HALO = 128  # pixels around a block the objects pass sees (and its objects may reach)
STORE_COARSEST = 256  # the store pyramid's smallest level, pixels a side (napari colours it at every view move)
LAYER_GAP_MS = 50  # between the store layers the Predict click makes (StoreJobs._make_in_turns)
REFRESH_SECONDS = 0.5  # the store layers are redrawn at most this often while blocks land
ACCEPTED = "accepted"  # the store's array of accepted objects (kept across predictions)
_ASIDE_PREFIX = ".old-outputs-of-"  # set_aside_outputs's folders beside a store: hidden, named after it


@dataclass(frozen=True)
class StoreProgress:
    """Blocks done of one pass ("network", then "objects") of a prediction into a store; records are
    coalesced, so one also lists every block written since the last: (pass, plane region) in `regions`,
    and the passes that ended in `ended`."""

    image: str
    stage: str
    done: int
    total: int
    regions: tuple[tuple[str, tuple[slice, slice]], ...] = ()
    ended: tuple[str, ...] = ()


PASS_WRITES = {"network": (c.ROLE_SEMANTIC, c.ROLE_PROBABILITIES), "objects": (c.ROLE_INSTANCES,)}


def landed_region(shape: tuple[int, int], block: int, stage: str, done: int) -> tuple[slice, slice]:
    """The pixels the `done`-th block (1-based, `block_starts` order) of a pass wrote: the block, and for the
    objects pass the halo its objects may reach into."""
    y, x = block_starts(shape, block)[done - 1]
    return block_region(shape, y, x, block, OBJECTS_HALO if stage == "objects" else 0)


def shows_landed(layer, stage: str, region: tuple[slice, slice]) -> bool:
    """Whether a block that the `stage` pass wrote into `region` changes what napari holds of `layer`. The
    objects pass writes the finest level only (the coarser ones after the pass)."""
    if lb.meta(layer).get("role") not in PASS_WRITES.get(stage, ()):
        return False
    if stage == "objects" and layer.multiscale and layer.data_level != 0:
        return False
    return holds(layer, region)


def holds(layer, region: tuple[slice, slice]) -> bool:
    """Whether napari's current tile of `layer` (all of a single-scale plane; for a pyramid the chunks
    around the view at the level shown) meets `region` (plane pixels)."""
    if not layer.multiscale:
        return True
    factor = np.asarray(layer.downsample_factors[layer.data_level])[-2:]
    corners = np.asarray(layer.corner_pixels)[:, -2:] * factor  # inclusive corners, in plane pixels
    return all(s.start <= hi + f - 1 and s.stop > lo for s, lo, hi, f in zip(region, corners[0], corners[1], factor))


def store_path(image: Image, folder: str | os.PathLike | None = None) -> Path:
    """Where an image's prediction store goes: `folder` if given, else beside the file the image
    was opened from (when that folder is writable), else the user's cache folder."""
    name = f"{safe_name(image.name)}_predictions.zarr"
    if folder is not None:
        return Path(folder) / name
    source = getattr(getattr(image, "source", None), "path", None)
    if source:
        parent = Path(source).resolve().parent
        if parent.is_dir() and os.access(parent, os.W_OK):
            return parent / f"{safe_name(Path(source).stem)}_predictions.zarr"
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "napari-unet" / "predictions"
    return cache / name


def _is_prediction_store(path: Path) -> bool:
    """Whether `path` is a store an earlier prediction wrote (so its outputs may be replaced)."""
    try:
        import zarr

        return "block" in zarr.open_group(str(path), mode="r").attrs
    except Exception:  # not a zarr group at all
        return False


def set_aside_outputs(path: Path) -> Path | None:
    """Move the outputs of an earlier prediction out of the store at `path` (one rename per array, nothing
    deleted) into a hidden folder beside it, for the worker to delete (`discard_set_aside`): deleting every
    chunk of every level on the GUI thread took 0.5 s at 16384^2. Other arrays (accepted objects) stay.
    Returns the folder, None when there was nothing to move."""
    names = [name for name in (*OUTPUTS, SCRATCH, *(f"{PYRAMID}/{name}" for name in OUTPUTS)) if (path / name).exists()]
    if not names:
        return None
    aside = Path(tempfile.mkdtemp(prefix=f"{_ASIDE_PREFIX}{path.name}.", dir=path.parent))
    for name in names:
        (aside / name).parent.mkdir(parents=True, exist_ok=True)
        os.replace(path / name, aside / name)
    return aside


def discard_set_aside(path: Path) -> None:
    """Delete the outputs `set_aside_outputs` moved out of the store at `path` (also ones a closed session left)."""
    for aside in path.parent.glob(f"{_ASIDE_PREFIX}{path.name}.*"):
        shutil.rmtree(aside, ignore_errors=True)


def store_generator(segmenter, image_name: str, view: LazyPlane, root, params: InstanceParams,
                    stop: threading.Event, tile_size: int, threads: int | None, diameter: float | None = None,
                    flips: int = 1, set_aside: Path | None = None, ready: threading.Event | None = None):
    """Fill the store block by block; yields StoreProgress records; returns ("done"|"cancelled", objects).
    `set_aside`: the store whose earlier outputs `set_aside_outputs` moved out, deleted here first. `ready`:
    set when the GUI thread has made the store's layers; waited for first, so the worker does not take the
    GIL from napari building them (that doubled each layer's cost)."""
    import torch

    while ready is not None and not ready.wait(0.05) and not stop.is_set():
        pass
    if set_aside is not None:
        discard_set_aside(set_aside)
    if stop.is_set():
        return "cancelled", 0

    torch.set_num_threads(threads or gui_friendly_threads())
    shape, block = tuple(view.shape[-2:]), int(root.attrs["block"])
    reports: deque = deque()  # (pass, done, total) of every block, from the pass's thread, in order
    last = [("network", 0, 0)]

    def run(progress):
        def report(name: str, done: int, total: int) -> None:
            reports.append((name, done, total))
            progress(done, total)

        return fill_outputs(segmenter, view, root, params, halo=OBJECTS_HALO, tile_size=tile_size, diameter=diameter,
                            flips=flips, progress=report, should_stop=stop.is_set)

    def record(count) -> StoreProgress:  # the blocks reported since the last record (counts are coalesced)
        blocks = [reports.popleft() for _ in range(len(reports))]
        last[:] = blocks[-1:] or last
        stage, done, total = last[0]
        return StoreProgress(image_name, stage, done, total,
                             tuple((name, landed_region(shape, block, name, k)) for name, k, _ in blocks),
                             tuple(name for name, k, n in blocks if k == n))

    try:
        objects = yield from relabel(yield_counts(run), record)
        return "done", objects
    except Stopped:
        return "cancelled", 0
    except RuntimeError as error:
        raise WorkerFailure(error) from error


class StoreJobs:
    """Prediction of a big plane into a zarr store (part of Controller)."""

    store_progress = Signal(object)  # a StoreProgress: blocks done of the pass running
    store_above_pixels: int = STORE_ABOVE_PIXELS
    store_block: int = STORE_BLOCK
    store_multiscale_above: int = STORE_MULTISCALE_ABOVE
    store_coarsest: int = STORE_COARSEST
    store_folder: str | os.PathLike | None = None  # None: beside the image's file, else the cache folder

    def predicts_to_store(self, layout) -> bool:
        """Whether a prediction of an image of this layout goes to a zarr store (a plane too big for memory)."""
        return int(np.prod(layout.plane_shape)) > self.store_above_pixels

    def predict_to_store(self, image: Image, layout, params: InstanceParams, *, tile_size: int = 512,
                         probabilities: bool = False, diameter: float | str | None = AUTO, flips: int = 1) -> None:
        """Predict the 2D image into its store in a worker; its layers show the store and fill in.
        `diameter`: the dock's choice; "auto" (a first pass over the whole plane) becomes the model's."""
        if layout.stack_shape:
            h, w = layout.plane_shape
            raise UserInputError(
                f"planes of {h}x{w} pixels are predicted into a zarr store, one 2D image at a time: open one "
                "plane as an image of its own, or use `napari-unet predict --out-zarr` on the command line")
        path = store_path(image, self.store_folder)
        if path.exists() and not _is_prediction_store(path):
            raise UserInputError(f"{path} exists and is not a napari-unet prediction store: move or rename it")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            set_aside_outputs(path)
            root = create_outputs(path, layout.plane_shape, self.session.segmenter.config.n_classes,
                                  probabilities=probabilities, block=self.store_block, coarsest=self.store_coarsest)
            if ACCEPTED not in root:
                create_levelled(root, ACCEPTED, layout.plane_shape, np.uint32, self.store_block, self.store_coarsest)
        except OSError as error:
            raise UserInputError(f"cannot write the prediction store {path}: {error}") from error
        diameter = self.session.diameter_for(image.name, diameter)
        notes = [f"'{image.name}' is big: its outputs are written block by block to {path}"]
        if diameter == AUTO:
            diameter = None
            notes.append("objects of a plane this big are not measured (that needs a pass over all of it): "
                         "predicting for the training images' object size; choose a size in 'Object diameter'")
        layers_made = threading.Event()
        if self._show_store(image, layout, root, path, then=layers_made.set):
            notes.append(f"'{image.name}' is too big to show whole: its results are shown as pyramids; "
                         "napari cannot paint on a pyramid, the Correct step's tools work (not undoable)")
        if not reads_asynchronously():
            notes.append(ASYNC_HINT)
        self._predict_stop.clear()
        self._predict_status = "done"
        self._predicting_image = image.name
        self._store_refreshed = 0.0
        self._store_landed: list[tuple[str, tuple[slice, slice]]] = []  # (pass, region) since the last redraw
        view = LazyPlane(layout, lb.image_data(image))
        self._predict_worker = self.scheduler.start(
            store_generator, self.session.segmenter, image.name, view, root, params, self._predict_stop,
            tile_size, self.train_threads, diameter, flips, path, layers_made,
            stop=self._predict_stop,
            connect={
                "yielded": self._on_store_progress,
                "returned": self._on_store_returned,
                "errored": self._on_predict_error,
                "finished": self._on_predict_finished,
            },
            # no napari activity bar: the dock's bar counts the blocks, and while napari's is shown its animated
            # indicator repaints the window (GL canvas included) many times a second: the GUI thread's 10 ms
            # timer ticked 490 -> 110 times in 5 s (16384^2 input shown, Xvfb's software OpenGL, load 7.5)
        )
        self._filling_store = True  # from here information goes to the dock's message line, not toasts
        for text in notes:
            self.notify("info", text)
        self.busy_changed.emit()

    def _show_store(self, image: Image, layout, root, path: Path, then=lambda: None) -> bool:
        """The image's result layers over the store's arrays (created or re-pointed; nothing is read),
        through their pyramids when the plane is too big to show whole (then True); `then()` once they are."""
        pyramid = max(layout.plane_shape) > self.store_multiscale_above
        self._make_in_turns(image, self._store_layer_steps(image, layout, root, path, pyramid), then)
        self._store_layers = (image.name, path)
        return pyramid

    def _make_in_turns(self, image: Image, steps: list, then) -> None:
        """Run the first of `steps` (each makes or re-points layers) now and each next one `LAYER_GAP_MS` later
        (`call_later`), so the viewer paints and answers input between them: napari builds a new layer's visuals
        and controls in 100-250 ms here, and the three of a store at once held the Predict click 280-350 ms
        (steps a 0 ms timer apart still ran back to back). Steps for an image no longer open are dropped.
        `then()` after the last one."""
        if not steps or self.closed or image not in self.viewer.layers:
            then()
            return
        try:
            with selection_kept(self.viewer):
                steps[0]()
        except BaseException:
            then()
            raise
        self.call_later(LAYER_GAP_MS, lambda: self._make_in_turns(image, steps[1:], then))

    def _store_layer_steps(self, image: Image, layout, root, path: Path, pyramid: bool) -> list:
        """The steps that show the store: semantic layer, instances layer, accepted layer, probability layers.
        The arrays are opened now, before the worker starts: zarr's metadata reads wait on its event-loop
        thread, which competes with the worker for the GIL (~10 ms an output alone, ~100 ms beside the worker
        in a cProfile of the click)."""
        arrays = {name: output_levels(root, name) for name in (*OUTPUTS, ACCEPTED) if name in root}

        def shown(name: str):
            levels = arrays[name]
            return levels if pyramid and len(levels) > 1 else levels[0]

        def tagged(*layers) -> None:
            for layer in layers:
                lb.set_meta(layer, store=str(path))

        def accepted() -> None:
            layer = self.paired(c.ROLE_ACCEPTED, image)
            if layer is None or lb.is_lazy(layer):  # one already in memory keeps its pixels
                tagged(self._accepted_of_store(image, layout, shown(ACCEPTED)))

        def probabilities() -> None:
            import dask.array as da

            levels = [da.from_zarr(level) for level in arrays["probabilities"]]
            tagged(*lb.show_probabilities(self.viewer, image, layout, levels if pyramid and len(levels) > 1
                                          else levels[0], self.session.segmenter.class_names))

        steps = [lambda: tagged(self.semantic_layer(image, layout, data=shown("semantic"))),
                 # empty until the objects pass's first block
                 lambda: tagged(self._hidden_until("objects", c.ROLE_INSTANCES, self.instances_layer, image, layout,
                                                   data=shown("instances"))),
                 accepted]
        return steps + [probabilities] if "probabilities" in root else steps

    def _accepted_of_store(self, image: Image, layout, data) -> Labels:
        """The accepted layer over the store's array. A pyramid is filled, not outlined: napari outlines by a
        dilation and an erosion of the whole tile it holds at every view move (150-300 ms at 2048-3072 px a
        side); while nothing is accepted in it (no chunk written) it is hidden, the first accept shows it."""
        if not isinstance(data, list):
            return self.accepted_layer(image, layout, data=data)
        if data[-1].nchunks_initialized == 0:  # an accept writes every level: the coarsest lists fastest
            layer = self._hidden_until(ACCEPTED, c.ROLE_ACCEPTED, self.accepted_layer, image, layout, data=data)
            self.accepted_changed.connect(self._show_accepted, unique=True)
        else:
            layer = self.accepted_layer(image, layout, data=data)
        layer.contour = 0
        return layer

    def _hidden_until(self, event: str, role: str, make, image: Image, layout, data) -> Labels:
        """The store layer `make(image, layout, data=data)` (the controller's layer for `role`), hidden until
        `event` ("objects": the objects pass's first block; "accepted": the first accept) writes into it:
        napari reads, colours and draws every visible layer's tile at every view move, an empty one too (a
        uint32 tile of 2048-3072 px a side: about a third of a move's cost under Xvfb's software OpenGL). A new
        layer is made hidden, so napari does not read it when it is added either. One the user hid stays hidden."""
        before = self.paired(role, image)
        if before is not None and (before.visible or lb.meta(before).get("shown_when")):
            before.visible = False  # before it is re-pointed: napari reads only a visible layer's new data
            lb.set_meta(before, shown_when=event)
        layer = make(image, layout, data=data, visible=False)  # `visible` applies to a new layer only
        if layer is not before:
            lb.set_meta(layer, shown_when=event)
        return layer

    def _show_written(self, event: str, image: str | None = None) -> None:
        for layer in self.viewer.layers:
            if lb.meta(layer).get("shown_when") == event and image in (None, lb.meta(layer).get("image")):
                lb.meta(layer).pop("shown_when")
                layer.visible = True  # napari reads and draws it now

    def _show_accepted(self) -> None:
        self._show_written(ACCEPTED)

    def _store_layers_of(self, name: str) -> list:
        return [layer for layer in self.viewer.layers
                if lb.meta(layer).get("image") == name and lb.meta(layer).get("store")]

    def _on_store_progress(self, record: StoreProgress) -> None:
        if self.closed:
            return
        self.store_progress.emit(record)
        self._store_landed.extend(record.regions)
        if record.ended or time.monotonic() - self._store_refreshed >= REFRESH_SECONDS:
            self._redraw_landed(self.name_now(record.image), ended=record.ended)
        if any(stage == "objects" for stage, _ in record.regions):
            self._show_written("objects", self.name_now(record.image))

    def _redraw_landed(self, name: str, ended: tuple[str, ...] = ()) -> None:
        """Redraw the store layers of image `name` that a block landed in since the last redraw (when napari
        holds a tile there); `ended`: passes that finished, whose layers are redrawn with their thumbnails."""
        self._store_refreshed = time.monotonic()
        landed, self._store_landed = self._store_landed, []
        for layer in self._store_layers_of(name):
            whole = any(lb.meta(layer).get("role") in PASS_WRITES[stage] for stage in ended)
            if whole or any(shows_landed(layer, stage, region) for stage, region in landed):
                lb.refresh_pyramid(layer, thumbnail=whole, extent=False)

    def _on_store_returned(self, result) -> None:
        status, objects = result
        self._predict_status = status
        self._filling_store = False  # the result's message may pop up again
        if self.closed:
            return
        name, path = self._store_layers
        name = self.name_now(name)
        if status != "done":
            self._redraw_landed(name)  # the blocks that landed before the cancel
            return
        for layer in self._store_layers_of(name):
            lb.set_meta(layer, objects=int(objects))
        self._show_written("objects", name)  # also when a layer was made after the pass's first block
        self._redraw_landed(name, ended=("objects",))  # the instances' coarser levels are written after the pass
        self.instances_updated.emit()
        self.notify("info", f"{objects} objects in '{name}'; outputs saved in {path}")
