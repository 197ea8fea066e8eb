import numpy as np, pytest, torch, sys, os, errno, threading
sys.path.insert(0, "tests")
from dock_helpers import tiny_training, load_untrained_model, TIMEOUT, IMAGE
from napari_unet.widgets import UNetWidget
from napari_unet.widgets.export_widget import ExportWidget

@pytest.mark.parametrize("case", ["gone", "file", "remove_during", "cancel", "4d", "nan", "empty", "twice", "removed_before"])
def test_export(case, make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer()
    rng = np.random.default_rng(0)
    data = rng.random((2, 2, 64, 64)).astype(np.float32) if case == "4d" else rng.random((256, 256)).astype(np.float32)
    if case == "nan": data[0, 0] = np.nan
    viewer.add_image(data, name="img")
    viewer.add_image(rng.random((256, 256)).astype(np.float32), name="img2")
    w = ExportWidget(viewer); viewer.window.add_dock_widget(w)
    w.confirm_overwrite = lambda p: True
    folder = tmp_path / "out"; folder.mkdir()
    if case == "gone": folder = tmp_path / "nope" / "deeper"
    if case == "file": folder = tmp_path / "afile"; folder.write_text("x")
    try:
        with qtbot.waitSignal(w.export_finished, timeout=20000, raising=False) as b:
            if case == "empty":
                worker = w.export(folder, images=[])
            elif case == "removed_before":
                worker = w.export(folder, images=["zzz"])
            else:
                worker = w.export(folder)
            if case == "twice": print("second", w.export(folder))
            if case == "remove_during" and worker is not None: viewer.layers.remove("img")
            if case == "cancel" and worker is not None: w.cancel(); w.cancel()
        res = b.args[0] if b.args else None
        print(f"\nPROBE export {case}: worker={worker is not None} result={res and (list(res.written), list(res.failed))} msgs={w.messages[-4:]}")
    except Exception as e:
        print(f"\nPROBE export {case} EXC {type(e).__name__}: {e}")
    print("files", sorted(p.name for p in folder.iterdir()) if folder.is_dir() else None)

def test_correct_ops(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer()
    w = UNetWidget(viewer); viewer.window.add_dock_widget(w); tiny_training(w)
    viewer.add_image(np.random.default_rng(0).random((1, 1)).astype(np.float32), name="tiny")
    load_untrained_model(w, tmp_path)
    with qtbot.waitSignal(w.controller.prediction_finished, timeout=TIMEOUT, raising=False):
        w.predict_step.predict()
    n0 = len(w.controller.messages.log)
    cs = w.correct_step
    for name, f in [("merge", lambda: cs.merge([1, 2])), ("merge empty", lambda: cs.merge([])),
                    ("split", lambda: cs.split_by_line([[0, 0], [10, 10]])),
                    ("split far", lambda: cs.split_by_line([[-100, -100], [-50, -50]])),
                    ("accept plane", lambda: cs.accept("plane")), ("accept view", lambda: cs.accept("view"))]:
        try:
            f()
        except Exception as e:
            print(f"\nPROBE correct {name} EXC {type(e).__name__}: {e}")
        print(f"\nPROBE correct {name}: {w.controller.messages.log[n0:]}"); n0 = len(w.controller.messages.log)
    # user-provided float Labels as annotations
    viewer.add_image(np.random.default_rng(0).random((32, 32)).astype(np.float32), name="u")
    viewer.add_labels(np.zeros((32, 32), np.int64), name="u annotations")
    w.annotate_step.image_picker.set_layer(viewer.layers["u"])
    qtbot.wait(300)
    a = viewer.layers["u annotations"]
    d = np.array(a.data); d[:16] = 1; d[16:] = 300; a.data = d
    with qtbot.waitSignal(w.controller.training_finished, timeout=TIMEOUT, raising=False) as b:
        w.train()
    print(f"\nPROBE train with label 300: {b.args} {w.controller.messages.log[n0:]}")
