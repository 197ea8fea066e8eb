import numpy as np, pytest, torch, sys, os, errno, tifffile, zarr, dask.array as da
sys.path.insert(0, "tests")
from dock_helpers import tiny_training, load_untrained_model, TIMEOUT, IMAGE
from napari_unet.widgets import UNetWidget
from napari_unet.nn.model import ModelConfig
from napari_unet.nn.segmenter import Segmenter

def rep(tag, w, n0):
    print(f"\nPROBE {tag}: {w.controller.messages.log[n0:]}", flush=True)
    return len(w.controller.messages.log)

def big(make_napari_viewer, tmp_path, array):
    viewer = make_napari_viewer(); viewer.add_image(array, name="big")
    w = UNetWidget(viewer); viewer.window.add_dock_widget(w)
    s = Segmenter.create(ModelConfig(in_channels=1, n_classes=2, base_width=4, depth=2), ["background", "cell"])
    w.train_step.load_model(s.save(tmp_path / "m.pt"))
    c = w.controller; c.store_above_pixels, c.store_block, c.store_folder = 1000, 32, tmp_path / "out"
    return viewer, w

@pytest.mark.parametrize("case", ["nan_late", "remove", "rename", "close", "cancel_twice", "folder_is_file", "enospc"])
def test_store(case, make_napari_viewer, qtbot, tmp_path):
    a = np.random.default_rng(0).random((128, 128)).astype(np.float32)
    if case == "nan_late": a[120, 120] = np.nan
    viewer, w = big(make_napari_viewer, tmp_path, da.from_array(a, chunks=32))
    c = w.controller
    if case == "folder_is_file":
        (tmp_path / "f").write_text("x"); c.store_folder = tmp_path / "f"
    if case == "enospc":
        import napari_unet.io.chunked as ch
    n0 = len(c.messages.log)
    with qtbot.waitSignal(c.prediction_finished, timeout=TIMEOUT, raising=False) as b:
        w.predict_step.predict()
        if case in ("remove", "rename", "close", "cancel_twice") and c.is_predicting:
            qtbot.wait(200)
            if case == "remove": viewer.layers.remove("big")
            if case == "rename": viewer.layers["big"].name = "renamed"
            if case == "cancel_twice": w.predict_step.cancel_prediction(); w.predict_step.cancel_prediction()
            if case == "close": viewer.close()
    print("finished", b.args, "alive", w.threads_alive())
    rep("store " + case, w, n0)
    if case != "close": print("layers", [l.name for l in viewer.layers])
    print("files", sorted(p.name for p in (tmp_path / "out").iterdir()) if (tmp_path / "out").is_dir() else None)

@pytest.mark.parametrize("case", ["missing_folder", "out_is_file", "nan_in_folder", "open_images_with_bad"])
def test_batch(case, make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer()
    w = UNetWidget(viewer); viewer.window.add_dock_widget(w)
    load_untrained_model(w, tmp_path)
    folder = tmp_path / "imgs"; folder.mkdir()
    rng = np.random.default_rng(0)
    tifffile.imwrite(folder / "a.tif", rng.random((48, 48)).astype(np.float32))
    b = rng.random((48, 48)).astype(np.float32); b[3, 3] = np.nan
    tifffile.imwrite(folder / "nan.tif", b)
    tifffile.imwrite(folder / "four.tif", rng.random((2, 2, 3, 16, 16)).astype(np.float32))
    n0 = len(w.controller.messages.log)
    with qtbot.waitSignal(w.controller.prediction_finished, timeout=30000, raising=False) as bl:
        if case == "missing_folder": w.predict_step.predict_folder(str(tmp_path / "nope"), str(tmp_path / "o"))
        if case == "out_is_file":
            (tmp_path / "o").write_text("x"); w.predict_step.predict_folder(str(folder), str(tmp_path / "o"))
        if case == "nan_in_folder": w.predict_step.predict_folder(str(folder), str(tmp_path / "o2"))
        if case == "open_images_with_bad":
            viewer.add_image(rng.random((48, 48)).astype(np.float32), name="ok")
            viewer.add_image(b, name="nanimg")
            viewer.add_image(rng.random((2, 2, 3, 16, 16)).astype(np.float32), name="five")
            viewer.add_image((rng.random((48, 48, 3)) * 255).astype(np.uint8), name="rgb", rgb=True)
            w.predict_step.predict_open_images()
    print("finished", bl.args)
    rep("batch " + case, w, n0)

def test_oom_predict(nuclei_dock, qtbot, tmp_path, monkeypatch):
    viewer, w = nuclei_dock
    load_untrained_model(w, tmp_path)
    from napari_unet.nn import segmenter as sg
    def oom(*a, **k): raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    monkeypatch.setattr(sg.Segmenter, "predict", oom)
    n0 = len(w.controller.messages.log)
    with qtbot.waitSignal(w.controller.prediction_finished, timeout=TIMEOUT, raising=False) as b:
        w.predict_step.predict()
    print("finished", b.args); rep("oom predict", w, n0)

def test_reader_writer(make_napari_viewer, tmp_path, qtbot):
    from napari_unet.napari.reader import get_reader
    from napari_unet.napari.writer import write_layers
    (tmp_path / "empty.zarr").mkdir()
    zarr.open_array(str(tmp_path / "plain.zarr"), mode="w", shape=(8, 8), dtype="f4")
    for p in ["empty.zarr", "plain.zarr", "nope.zarr"]:
        try:
            r = get_reader(str(tmp_path / p)); print("PROBE reader", p, "->", r and r(str(tmp_path / p)))
        except Exception as e:
            print(f"PROBE reader {p} EXC {type(e).__name__}: {e}")
    rng = np.random.default_rng(0)
    cases = {
        "4d": [(rng.random((2, 2, 8, 8)).astype(np.float32), {"name": "a"}, "image")],
        "nan": [(np.full((8, 8), np.nan, np.float32), {"name": "a"}, "image")],
        "two images": [(np.zeros((8, 8)), {"name": "a"}, "image"), (np.zeros((8, 8)), {"name": "b"}, "image")],
        "labels only": [(np.zeros((8, 8), np.uint8), {"name": "a"}, "labels")],
        "labels mismatch": [(np.zeros((8, 8)), {"name": "a"}, "image"), (np.zeros((4, 4), np.uint8), {"name": "a annotations"}, "labels")],
        "complex": [(np.zeros((8, 8), np.complex64), {"name": "a"}, "image")],
        "bool": [(np.zeros((8, 8), bool), {"name": "a"}, "image")],
        "gone dir": [(np.zeros((8, 8)), {"name": "a"}, "image")],
    }
    for k, layers in cases.items():
        out = tmp_path / ("gone/x.zarr" if k == "gone dir" else f"{k.replace(' ', '_')}.zarr")
        try:
            print("PROBE writer", k, "->", write_layers(str(out), layers))
        except Exception as e:
            print(f"PROBE writer {k} EXC {type(e).__name__}: {e}")
