"""npe2 reader and writer in a real napari viewer (run under xvfb-run -a)."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import zarr

from napari_unet.conventions import (
    METADATA_KEY,
    ROLE_ACCEPTED,
    ROLE_ANNOTATIONS,
    ROLE_INSTANCES,
)
from napari_unet.io import ome_zarr_dataset as io
from napari_unet.napari import reader as _reader
from napari_unet.napari import writer as _writer

ANNOTATION_COLORS = {
    None: (0.0, 0.0, 0.0, 0.0),
    0: (0.0, 0.0, 0.0, 0.0),
    1: (0.55, 0.55, 0.55, 1.0),
    2: (1.0, 0.2, 0.2, 1.0),
    3: (0.2, 0.8, 0.2, 0.6),
}


def _colors(layer):
    return {k: tuple(np.round(np.asarray(v, dtype=float), 6)) for k, v in layer.colormap.color_dict.items()}


def _populate(viewer):
    rng = np.random.default_rng(0)
    image = rng.normal(100, 20, (48, 64)).astype(np.float32)
    annotations = np.zeros((48, 64), np.uint8)
    annotations[2:8, 2:30] = 1
    annotations[20:24, 10:40] = 2
    annotations[30:33, 5:9] = 3
    instances = np.zeros((48, 64), np.uint32)
    instances[20:24, 10:20] = 70_000  # ids beyond 16 bits
    instances[20:24, 25:40] = 4_000_000_000
    accepted = np.zeros((48, 64), np.uint8)
    accepted[16:32] = 1
    scale = (0.5, 0.25)
    img = viewer.add_image(
        image, name="cells", scale=scale, translate=(3.0, -1.0), colormap="magma", contrast_limits=(50, 150),
        units=("micrometer", "micrometer"),
        metadata={METADATA_KEY: {"provenance": {"model": {"sha256": "abc123"}}}},
    )
    ann = viewer.add_labels(
        annotations, name="cells annotations", scale=scale, translate=(3.0, -1.0), opacity=0.8,
        units=("micrometer", "micrometer"),
        colormap=dict(ANNOTATION_COLORS),
        metadata={METADATA_KEY: {"role": ROLE_ANNOTATIONS, "image": "cells",
                                 "class_names": ["background", "nucleus", "debris"]}},
    )
    inst = viewer.add_labels(instances, name="cells instances", scale=scale, translate=(3.0, -1.0),
                             metadata={METADATA_KEY: {"role": ROLE_INSTANCES, "image": "cells"}})
    acc = viewer.add_labels(accepted, name="cells accepted", scale=scale, translate=(3.0, -1.0),
                            metadata={METADATA_KEY: {"role": ROLE_ACCEPTED, "image": "cells"}})
    return img, ann, inst, acc


def test_save_and_open_restore_layers(make_napari_viewer, napari_unet_plugin, tmp_path):
    viewer = make_napari_viewer()
    img, ann, inst, acc = _populate(viewer)
    viewer.add_points([[1, 1]], name="not saved")
    viewer.layers.selection = {img, ann, inst, acc}
    path = tmp_path / "cells.zarr"
    written = viewer.layers.save(str(path), selected=True, plugin="napari-unet")
    assert written == [str(path)]
    assert io.is_napari_unet_dataset(path)

    viewer2 = make_napari_viewer()
    viewer2.open(str(path), plugin="napari-unet")
    assert [layer.name for layer in viewer2.layers] == [
        "cells", "cells annotations", "cells instances", "cells accepted"]
    image2, ann2, inst2, acc2 = viewer2.layers

    assert type(image2).__name__ == "Image"
    np.testing.assert_array_equal(np.asarray(image2.data), img.data)
    assert image2.data.dtype == np.float32
    np.testing.assert_allclose(image2.scale, img.scale)
    np.testing.assert_allclose(image2.translate, img.translate)
    assert image2.colormap.name == "magma"
    assert [str(u) for u in image2.units] == ["micrometer", "micrometer"]
    assert [str(u) for u in ann2.units] == ["micrometer", "micrometer"]
    assert tuple(image2.contrast_limits) == (50, 150)
    provenance = image2.metadata[METADATA_KEY]["provenance"]
    assert provenance["model"] == {"sha256": "abc123"} and "created" in provenance

    for old, new in [(ann, ann2), (inst, inst2), (acc, acc2)]:
        assert type(new).__name__ == "Labels"
        assert isinstance(new.data, np.ndarray)  # editable
        assert new.data.dtype == old.data.dtype
        np.testing.assert_array_equal(new.data, old.data)
        np.testing.assert_allclose(new.scale, old.scale)
        np.testing.assert_allclose(new.translate, old.translate)
        assert new.metadata == old.metadata
    assert inst2.data.dtype == np.uint32 and inst2.data.max() == 4_000_000_000
    assert ann2.metadata[METADATA_KEY]["class_names"] == ["background", "nucleus", "debris"]
    assert ann2.metadata[METADATA_KEY]["role"] == ROLE_ANNOTATIONS
    assert type(ann2.colormap).__name__ == "DirectLabelColormap"
    assert _colors(ann2) == _colors(ann)
    assert ann2.opacity == pytest.approx(0.8)
    assert type(inst2.colormap).__name__ == type(inst.colormap).__name__ == "CyclicLabelColormap"
    assert acc2.contour == 1 and ann2.contour == 0  # the accepted layer is an outline, as made

    # the same dataset feeds training from the command line
    ((_, annotations, accepted),) = io.dataset_training_pairs(path)
    np.testing.assert_array_equal(annotations, ann.data)
    np.testing.assert_array_equal(accepted, acc.data)


def test_rgb_image_round_trip(make_napari_viewer, napari_unet_plugin, tmp_path):
    viewer = make_napari_viewer()
    rgb = np.random.default_rng(1).integers(0, 255, (30, 40, 3)).astype(np.uint8)
    img = viewer.add_image(rgb, name="photo", rgb=True)
    lab = viewer.add_labels(np.zeros((30, 40), np.uint64), name="photo labels")
    lab.data[3:5, 3:5] = 2**40
    viewer.layers.selection = {img, lab}
    path = tmp_path / "photo.zarr"
    viewer.layers.save(str(path), selected=True, plugin="napari-unet")

    viewer2 = make_napari_viewer()
    viewer2.open(str(path), plugin="napari-unet")
    image2, lab2 = viewer2.layers
    assert image2.rgb and image2.data.shape == (30, 40, 3)
    np.testing.assert_array_equal(np.asarray(image2.data), rgb)
    assert lab2.data.dtype == np.uint64 and lab2.data.max() == 2**40


def test_saving_again_replaces_the_dataset(make_napari_viewer, napari_unet_plugin, tmp_path):
    viewer = make_napari_viewer()
    img, ann, *_ = _populate(viewer)
    viewer.layers.selection = {img, ann}
    path = tmp_path / "cells.zarr"
    viewer.layers.save(str(path), selected=True, plugin="napari-unet")
    ann.data[0, 0] = 3
    viewer.layers.save(str(path), selected=True, plugin="napari-unet")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cells.zarr"]
    _, labels, _ = io.read_dataset(path)
    assert [e.name for e in labels] == ["cells annotations"]
    assert int(np.asarray(labels[0].data)[0, 0]) == 3


def test_writer_refuses_bad_selections_with_a_message(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    img, ann, *_ = _populate(viewer)
    other = viewer.add_image(np.zeros((48, 64), np.float32), name="other")
    small = viewer.add_labels(np.zeros((10, 10), np.uint8), name="small")
    data = lambda *layers: [layer.as_layer_data_tuple() for layer in layers]  # noqa: E731

    # not a ValueError: napari would take that for "this writer does not apply"
    assert not issubclass(_writer.DatasetSaveError, ValueError)
    with pytest.raises(_writer.DatasetSaveError, match="exactly one image"):
        _writer.write_layers(str(tmp_path / "a.zarr"), data(img, other, ann))
    with pytest.raises(_writer.DatasetSaveError, match="pixel for pixel"):
        _writer.write_layers(str(tmp_path / "a.zarr"), data(img, small))
    assert list(tmp_path.iterdir()) == []


def test_get_reader_claims_only_napari_unet_datasets(tmp_path):
    from ome_zarr.writer import write_image

    assert _reader.get_reader(str(tmp_path / "missing.zarr")) is None
    folder = tmp_path / "folder.zarr"
    folder.mkdir()
    assert _reader.get_reader(str(folder)) is None
    plain = tmp_path / "plain.zarr"
    zarr.open_group(str(plain), mode="w").create_array("x", shape=(3,), dtype="u1")
    assert _reader.get_reader(str(plain)) is None
    foreign = zarr.open_group(str(tmp_path / "foreign.zarr"), mode="w", zarr_format=3)
    write_image(np.zeros((16, 16), np.uint8), foreign, axes="yx", scale_factors=())
    assert io.read_dataset(tmp_path / "foreign.zarr")[0].data.shape == (16, 16)  # an OME-Zarr image
    assert _reader.get_reader(str(tmp_path / "foreign.zarr")) is None  # napari's own readers' job

    path = io.write_dataset(tmp_path / "ok.zarr", io.ImageEntry(np.zeros((8, 8), np.uint8), name="im"))
    reader = _reader.get_reader(str(path))
    assert reader is not None
    ((data, meta, kind),) = reader(str(path))
    assert kind == "image" and meta["name"] == "im" and data.shape == (8, 8)
    assert "model_path" not in meta["metadata"].get(METADATA_KEY, {})
    assert _reader.get_reader([str(path)]) is not None


def test_model_saved_beside_the_dataset_is_offered_in_the_layers_metadata(tmp_path):
    path = io.write_dataset(tmp_path / "cells.zarr", io.ImageEntry(np.zeros((8, 8), np.uint8), name="im"),
                            [io.LabelsEntry(np.zeros((8, 8), np.uint8), "im annotations", role=ROLE_ANNOTATIONS)],
                            provenance={"model": {"sha256": "abc", "file": "model.pt"}})
    (tmp_path / "model.pt").write_bytes(b"weights")
    layers = _reader.read_layers(str(path))
    assert [meta["metadata"][METADATA_KEY]["model_path"] for _, meta, _ in layers] == \
        [str(tmp_path / "model.pt")] * 2


def test_gui_command_opens_a_dataset_with_the_plugin_reader(make_napari_viewer, napari_unet_plugin, tmp_path):
    from napari_unet.widgets.launch import (
        open_paths,  # what `napari-unet gui PATH...` runs
    )

    path = io.write_dataset(
        tmp_path / "cells.zarr", io.ImageEntry(np.zeros((8, 8), np.uint8), name="cells"),
        [io.LabelsEntry(np.zeros((8, 8), np.uint8), "cells accepted", role=ROLE_ACCEPTED)])
    tifffile.imwrite(tmp_path / "other.tif", np.ones((8, 8), np.uint8))
    viewer = make_napari_viewer()
    open_paths(viewer, [str(path), str(tmp_path / "other.tif")])
    assert [layer.name for layer in viewer.layers] == ["cells", "cells accepted", "other"]
    assert [layer.source.reader_plugin for layer in viewer.layers] == ["napari-unet", "napari-unet", "napari"]
    assert viewer.layers["cells accepted"].contour == 1


@pytest.mark.parametrize("what, layers, path, message", [
    ("two images", ("image", "image", "labels"), "a.zarr", "exactly one image"),
    ("a Points layer", ("image", "points"), "a.zarr", "not points layers"),
    ("labels only", ("labels",), "a.zarr", "needs the image its labels belong to"),
    ("a path without .zarr", ("image", "labels"), "a.tif", "as a .zarr folder"),
])
def test_writer_tells_why_it_cannot_save(make_napari_viewer, napari_unet_plugin, tmp_path, what, layers,
                                          path, message):
    viewer = make_napari_viewer()
    added = []
    for i, kind in enumerate(layers):
        if kind == "image":
            added.append(viewer.add_image(np.zeros((8, 8), np.float32), name=f"image {i}"))
        elif kind == "labels":
            added.append(viewer.add_labels(np.zeros((8, 8), np.uint8), name=f"labels {i}"))
        else:
            added.append(viewer.add_points([[1, 1]], name=f"points {i}"))
    viewer.layers.selection = set(added)
    with pytest.raises(_writer.DatasetSaveError, match=message):
        if path.endswith(".zarr"):  # napari picks our writer by itself
            viewer.layers.save(str(tmp_path / path), selected=True)
        else:  # as when "napari-unet OME-Zarr dataset" is chosen in the save dialog
            _writer.write_layers(str(tmp_path / path), [layer.as_layer_data_tuple() for layer in added])
    assert list(tmp_path.iterdir()) == []


def test_manifest_declares_reader_and_writer(napari_unet_plugin):
    manifest = napari_unet_plugin.get_manifest("napari-unet")
    (reader,) = [r for r in manifest.contributions.readers or [] if r.command == "napari-unet.get_reader"]
    assert reader.accepts_directories and "*.zarr" in reader.filename_patterns
    (writer,) = [w for w in manifest.contributions.writers or [] if w.command == "napari-unet.write_layers"]
    assert "image*" in writer.layer_types and "points*" in writer.layer_types
    assert writer.filename_extensions == [".zarr"]
