"""OME-Zarr export/import core: round trips, and other NGFF readers and writers, on real zarr stores under
tmp_path (no viewer). Failed or stopped writes and corrupt stores: test_ome_zarr_atomic.py."""

from __future__ import annotations

import json

import dask.array as da
import numpy as np
import pytest
import zarr
from ome_zarr_samples import listing, random_annotations, simple_dataset

import napari_unet
from napari_unet.conventions import (
    ROLE_ACCEPTED,
    ROLE_ANNOTATIONS,
    ROLE_INSTANCES,
    ROLE_SEMANTIC,
)
from napari_unet.errors import UserInputError
from napari_unet.io import ome_zarr_dataset as io
from napari_unet.io.ome_zarr_dataset import ImageEntry, LabelsEntry

CLASS_COLORS = {
    None: (0.0, 0.0, 0.0, 0.0),
    0: (0.0, 0.0, 0.0, 0.0),
    1: (0.55, 0.55, 0.55, 1.0),
    2: (1.0, 0.2, 0.2, 1.0),
    3: (0.2, 0.4, 1.0, 0.5),
}


def _image(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        return rng.normal(100, 30, shape).astype(dtype)
    return rng.integers(0, np.iinfo(dtype).max, shape, endpoint=True).astype(dtype)


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize(
    "shape, dtype, axes",
    [
        ((60, 70), np.uint8, "yx"),
        ((60, 70), np.uint16, "yx"),
        ((60, 70), np.float32, "yx"),
        ((5, 33, 47), np.uint16, "zyx"),
        ((4, 33, 47), np.float32, "tyx"),
    ],
)
def test_round_trip_image_and_labels(tmp_path, shape, dtype, axes):
    image = _image(shape, dtype)
    ann = random_annotations(shape)
    instances = np.zeros(shape, np.uint32)
    instances[..., 3:9, 3:9] = 70_000  # needs more than 16 bits
    instances[..., 20:30, 10:40] = 4_000_000_000
    big = np.zeros(shape, np.uint64)
    big[..., :5, :5] = 2**40 + 3
    scale = tuple(0.5 + i for i in range(len(shape)))
    translate = tuple(float(-i) for i in range(len(shape)))

    out = io.write_dataset(
        tmp_path / "ds.zarr",
        ImageEntry(image, name="cells", axes=axes, scale=scale, translate=translate,
                   contrast_limits=(1, 200), display={"colormap": "magma", "gamma": 0.7},
                   metadata={"napari_unet": {"note": "x"}}),
        [
            LabelsEntry(ann, "cells annotations", role=ROLE_ANNOTATIONS,
                        class_names=["background", "nucleus", "debris"], colors=CLASS_COLORS,
                        display={"opacity": 0.8}, metadata={"napari_unet": {"image": "cells"}}),
            LabelsEntry(instances, "cells instances", role=ROLE_INSTANCES),
            LabelsEntry(big, "huge ids"),
        ],
        provenance={"model": {"sha256": "deadbeef"}, "training": {"steps": 300}},
    )
    assert out == (tmp_path / "ds.zarr").absolute()
    assert listing(tmp_path) == ["ds.zarr"]

    got, labels, provenance = io.read_dataset(out)
    assert got.name == "cells"
    assert got.axes == axes
    assert got.data.dtype == dtype
    np.testing.assert_array_equal(np.asarray(got.data), image)
    assert got.scale == pytest.approx(scale)
    assert got.translate == pytest.approx(translate)
    assert got.contrast_limits == [1.0, 200.0]
    assert got.display == {"colormap": "magma", "gamma": 0.7}
    assert got.metadata == {"napari_unet": {"note": "x"}}
    assert not got.rgb and got.channel_axis is None

    assert [e.name for e in labels] == ["cells annotations", "cells instances", "huge ids"]
    ann_entry, inst_entry, big_entry = labels
    np.testing.assert_array_equal(np.asarray(ann_entry.data), ann)
    assert ann_entry.data.dtype == np.uint8
    assert ann_entry.role == ROLE_ANNOTATIONS
    assert ann_entry.class_names == ["background", "nucleus", "debris"]
    assert ann_entry.colors == CLASS_COLORS  # exact floats, default colour (None) included
    assert ann_entry.scale == pytest.approx(scale)
    assert ann_entry.translate == pytest.approx(translate)
    assert ann_entry.display == {"opacity": 0.8}
    assert ann_entry.metadata == {"napari_unet": {"image": "cells"}}

    assert inst_entry.data.dtype == np.uint32
    np.testing.assert_array_equal(np.asarray(inst_entry.data), instances)
    assert inst_entry.role == ROLE_INSTANCES and inst_entry.colors is None and inst_entry.class_names is None
    assert big_entry.data.dtype == np.uint64
    np.testing.assert_array_equal(np.asarray(big_entry.data), big)

    assert provenance["plugin_version"] == napari_unet.__version__
    assert provenance["created"].startswith("20")
    assert provenance["model"] == {"sha256": "deadbeef"}
    assert provenance["training"] == {"steps": 300}
    assert io.is_napari_unet_dataset(out)


def test_rgb_round_trip_is_stored_as_channels(tmp_path):
    image = _image((50, 60, 3), np.uint8)
    ann = random_annotations((50, 60))
    out = io.write_dataset(tmp_path / "rgb.zarr", ImageEntry(image, name="photo", rgb=True),
                           [LabelsEntry(ann, "photo annotations", role=ROLE_ANNOTATIONS)])
    root = zarr.open_group(out, mode="r")
    axes = [a["name"] for a in root.attrs["ome"]["multiscales"][0]["axes"]]
    assert axes == ["c", "y", "x"] and root["s0"].shape == (3, 50, 60)
    # NGFF: labels have the image's dimensions (a size-1 channel axis)
    assert root["labels/photo_annotations/s0"].shape == (1, 50, 60)

    got, labels, _ = io.read_dataset(out)
    assert got.rgb and got.channel_axis is None
    np.testing.assert_array_equal(np.asarray(got.data), image)
    np.testing.assert_array_equal(np.asarray(labels[0].data), ann)


def test_multichannel_round_trip_keeps_channel_axis(tmp_path):
    image = _image((30, 2, 40), np.uint16)  # channels in the middle
    out = io.write_dataset(tmp_path / "mc.zarr", ImageEntry(image, name="mc", channel_axis=1),
                           [LabelsEntry(np.ones((30, 40), np.int32), "lab")])
    assert zarr.open_group(out, mode="r")["s0"].shape == (2, 30, 40)
    got, labels, _ = io.read_dataset(out)
    assert got.channel_axis == 1
    np.testing.assert_array_equal(np.asarray(got.data), image)
    assert labels[0].data.dtype == np.int32


@pytest.mark.parametrize("shape, channel_axis, axes, disk_axes", [
    ((30, 2, 40), 1, "yx", "cyx"),  # channels between y and x
    ((3, 30, 40), 0, "yx", "cyx"),  # channels first
    ((30, 40, 2), 2, "yx", "cyx"),  # channels last
    ((5, 30, 2, 40), 2, "zyx", "czyx"),  # a z stack with channels between y and x
    ((4, 30, 40, 2), 3, "tyx", "tcyx"),  # a time series with channels last
])
def test_channels_anywhere_round_trip_with_their_planes(tmp_path, shape, channel_axis, axes, disk_axes):
    image = _image(shape, np.uint16)
    plane = tuple(n for i, n in enumerate(shape) if i != channel_axis)
    ann = np.zeros(plane, np.uint8)
    ann[(-1,) * (len(plane) - 2) + (slice(0, 4),)] = 1
    ann[(-1,) * (len(plane) - 2) + (slice(-4, None),)] = 2
    scale = [float(i + 2) for i in range(len(axes))]
    out = io.write_dataset(tmp_path / "c.zarr", ImageEntry(image, name="mc", axes=axes, channel_axis=channel_axis,
                                                            scale=scale),
                           [LabelsEntry(ann, "mc annotations", role=ROLE_ANNOTATIONS)])
    root = zarr.open_group(out, mode="r")
    multiscale = root.attrs["ome"]["multiscales"][0]
    assert "".join(a["name"] for a in multiscale["axes"]) == disk_axes
    assert root["s0"].shape[disk_axes.index("c")] == shape[channel_axis]
    assert root["labels/mc_annotations/s0"].shape[disk_axes.index("c")] == 1
    assert multiscale["datasets"][0]["coordinateTransformations"][0]["scale"] == \
        [1.0 if a == "c" else scale[axes.index(a)] for a in disk_axes]

    got, (labels,), _ = io.read_dataset(out)
    assert (got.channel_axis, got.axes, got.scale) == (channel_axis, axes, scale)
    np.testing.assert_array_equal(np.asarray(got.data), image)
    np.testing.assert_array_equal(np.asarray(labels.data), ann)
    assert labels.scale == scale
    # the CLI's training reads the dataset's annotated plane with its channels first
    from napari_unet.functionals.data import annotated_planes
    ((pixels, annotations, _),) = io.dataset_training_pairs(out)
    (item,) = annotated_planes(pixels, annotations, channel_axis=got.channel_axis, name="mc")
    expected = np.moveaxis(image, channel_axis, 0)[(slice(None),) + (-1,) * (len(plane) - 2)]
    np.testing.assert_array_equal(item.image, expected)


def test_lazy_input_and_pyramid(tmp_path):
    image = da.from_array(_image((2100, 1100), np.uint16), chunks=(700, 300))
    ann = np.zeros((2100, 1100), np.uint8)
    ann[::7, ::5] = 2
    seen = []
    out = io.write_dataset(tmp_path / "big.zarr", ImageEntry(image, name="big", scale=(2.0, 3.0)),
                           [LabelsEntry(ann, "big annotations")], progress=lambda d, t: seen.append((d, t)))
    root = zarr.open_group(out, mode="r")
    assert [root[f"s{i}"].shape for i in range(3)] == [(2100, 1100), (1050, 550), (525, 275)]
    assert root["s0"].chunks == (1024, 1024)
    assert root["labels/big_annotations/s1"].shape == (1050, 550)
    datasets = root.attrs["ome"]["multiscales"][0]["datasets"]
    assert datasets[2]["coordinateTransformations"][0]["scale"] == [8.0, 12.0]
    # nearest downsampling keeps label values exact (one pixel of each 2x2 block)
    np.testing.assert_array_equal(root["labels/big_annotations/s1"][:], ann[1::2, 1::2])
    # 2x2 local mean for the image (the library truncates integer means)
    full = np.asarray(image).astype(np.float64)
    expected = np.floor((full[0::2, 0::2] + full[1::2, 0::2] + full[0::2, 1::2] + full[1::2, 1::2]) / 4)
    np.testing.assert_array_equal(root["s1"][:], expected.astype(np.uint16))
    multiscale = root.attrs["ome"]["multiscales"][0]
    assert multiscale["type"] == "local_mean"
    assert root["labels/big_annotations"].attrs["ome"]["multiscales"][0]["type"] == "nearest"

    dones = [d for d, _ in seen]
    assert dones == sorted(dones) and seen[-1][0] == seen[-1][1] > 0
    got, labels, _ = io.read_dataset(out)
    assert len(got.levels) == 3 and len(labels[0].levels) == 3


@pytest.mark.parametrize("shape", [(2049, 300), (300, 2049), (4100, 40)])
def test_labels_have_as_many_levels_as_the_image(tmp_path, shape):
    out = io.write_dataset(tmp_path / "odd.zarr", ImageEntry(np.zeros(shape, np.uint8)),
                           [LabelsEntry(np.zeros(shape, np.uint8), "lab")], ngff="0.5")
    root = zarr.open_group(out, mode="r")
    image_levels = [d["path"] for d in root.attrs["ome"]["multiscales"][0]["datasets"]]
    label_levels = [d["path"] for d in root["labels/lab"].attrs["ome"]["multiscales"][0]["datasets"]]
    assert len(image_levels) >= 2 and image_levels == label_levels
    for level in image_levels:
        assert root[level].shape == root[f"labels/lab/{level}"].shape
    got, labels, _ = io.read_dataset(out)
    assert [lv.shape for lv in got.levels] == [lv.shape for lv in labels[0].levels]


def test_unserialisable_metadata_is_left_out(tmp_path, caplog):
    out = io.write_dataset(
        tmp_path / "m.zarr",
        ImageEntry(np.zeros((8, 8), np.uint8), metadata={"ok": np.float32(1.5), "arr": np.arange(3),
                                                         "obj": object()}),
    )
    got, labels, _ = io.read_dataset(out)
    assert got.metadata == {"ok": 1.5, "arr": [0, 1, 2]}
    assert labels == []
    assert "obj" in caplog.text


def test_training_pairs(tmp_path):
    image = _image((32, 32), np.float32)
    ann = random_annotations((32, 32))
    accepted = np.zeros((32, 32), np.uint32)  # 0 not accepted, 1 background, id + 1 objects
    accepted[:16] = 1
    accepted[2:6, 2:6] = 70_001
    instances = np.zeros((32, 32), np.uint32)
    instances[2:6, 2:6] = 70_000
    out = io.write_dataset(
        tmp_path / "t.zarr", ImageEntry(image, name="im"),
        [
            LabelsEntry(ann, "im annotations", role=ROLE_ANNOTATIONS, class_names=["background", "a", "b"]),
            LabelsEntry(np.zeros((32, 32), np.uint8), "im semantic", role=ROLE_SEMANTIC),
            LabelsEntry(accepted, "im accepted", role=ROLE_ACCEPTED),
            LabelsEntry(instances, "im instances", role=ROLE_INSTANCES),
        ],
    )
    ((got_image, got_ann, got_accepted),) = io.dataset_training_pairs(out)
    assert isinstance(got_image, np.ndarray) and isinstance(got_ann, np.ndarray)
    np.testing.assert_array_equal(got_image, image)
    np.testing.assert_array_equal(got_ann, ann)
    assert got_accepted.dtype == np.uint32
    np.testing.assert_array_equal(got_accepted, accepted)

    without_accepted = io.write_dataset(
        tmp_path / "w.zarr", ImageEntry(image), [LabelsEntry(ann, "a", role=ROLE_ANNOTATIONS)])
    ((_, _, none),) = io.dataset_training_pairs(without_accepted)
    assert none is None

    no_ann = io.write_dataset(tmp_path / "n.zarr", ImageEntry(image))
    with pytest.raises(UserInputError, match="annotations"):
        io.dataset_training_pairs(no_ann)


def test_invalid_inputs_are_user_errors(tmp_path):
    image = ImageEntry(np.zeros((10, 12), np.uint8), name="im")
    with pytest.raises(UserInputError, match="pixel for pixel"):
        io.write_dataset(tmp_path / "a.zarr", image, [LabelsEntry(np.zeros((10, 11), np.uint8), "lab")])
    with pytest.raises(UserInputError, match="integers"):
        io.write_dataset(tmp_path / "a.zarr", image, [LabelsEntry(np.zeros((10, 12), np.float32), "lab")])
    with pytest.raises(UserInputError, match="named"):
        io.write_dataset(tmp_path / "a.zarr", image, [LabelsEntry(np.zeros((10, 12), np.uint8), "im")])
    with pytest.raises(UserInputError, match="RGB"):
        io.write_dataset(tmp_path / "a.zarr", ImageEntry(np.zeros((10, 12, 5), np.uint8), rgb=True))
    assert listing(tmp_path) == []


# --------------------------------------------------------------------------- interop


def test_reference_reader_sees_image_with_labels(tmp_path):
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Label, Multiscales, Reader

    ann = random_annotations((40, 50))
    out = io.write_dataset(
        tmp_path / "ref.zarr", ImageEntry(_image((40, 50), np.uint16), name="img", scale=(0.3, 0.3)),
        [LabelsEntry(ann, "img annotations", role=ROLE_ANNOTATIONS,
                     class_names=["background", "cell", "other"], colors=CLASS_COLORS),
         LabelsEntry(np.zeros((40, 50), np.uint32), "img instances", role=ROLE_INSTANCES)],
    )
    meta = json.loads((out / "zarr.json").read_text())
    assert meta["zarr_format"] == 3 and meta["attributes"]["ome"]["version"] == "0.5"
    assert json.loads((out / "s0" / "zarr.json").read_text())["dimension_names"] == ["y", "x"]

    nodes = list(Reader(parse_url(str(out)))())
    image_node = nodes[0]
    assert image_node.load(Multiscales) is not None and image_node.load(Label) is None
    assert image_node.data[0].shape == (40, 50)
    label_nodes = [n for n in nodes if n.load(Label) is not None]
    # the multiscales name carries the layer name
    assert [n.metadata["name"] for n in label_nodes] == ["img annotations", "img instances"]
    ann_node = label_nodes[0]
    np.testing.assert_array_equal(np.asarray(ann_node.data[0]), ann)
    assert ann_node.metadata["properties"][2] == {"class": "cell"}
    assert ann_node.metadata["color"][2] == pytest.approx([1.0, 0.2, 0.2, 1.0], abs=1 / 255)
    assert ann_node.metadata["coordinateTransformations"][0][0]["scale"] == [0.3, 0.3]


@pytest.mark.parametrize("ngff", io.NGFF_VERSIONS)
@pytest.mark.parametrize("shape, axes, rgb, channel_axis", [
    ((1300, 40, 3), "yx", True, None),
    ((3, 2, 30, 40), "zyx", False, 1),
    ((4, 30, 40), "tyx", False, None),
])
def test_written_datasets_validate_against_the_ngff_spec(tmp_path, ngff, shape, axes, rgb, channel_axis):
    """ome-zarr-models (maintained by the NGFF community) validates every group we write."""
    validators = pytest.importorskip("ome_zarr_models")
    from ome_zarr_models.v04.image import Image as Image04
    from ome_zarr_models.v05.image import Image as Image05

    image = _image(shape, np.uint16)
    plane = tuple(s for i, s in enumerate(shape) if i != (len(shape) - 1 if rgb else channel_axis))
    if rgb:
        image = image.astype(np.uint8)
    out = io.write_dataset(
        tmp_path / "spec.zarr",
        ImageEntry(image, name="img", axes=axes, rgb=rgb, channel_axis=channel_axis,
                   units=["micrometer"] * len(axes), translate=[1.5] * len(axes), contrast_limits=(0, 90)),
        [LabelsEntry(random_annotations(plane), "img annotations", role=ROLE_ANNOTATIONS,
                     class_names=["background", "cell", "debris"], colors=CLASS_COLORS),
         LabelsEntry(np.zeros(plane, np.uint32), "img instances", role=ROLE_INSTANCES)],
        ngff=ngff,
    )
    root = zarr.open_group(out, mode="r")
    assert root.metadata.zarr_format == (3 if ngff == "0.5" else 2)
    model = (Image05 if ngff == "0.5" else Image04).from_zarr(root)  # raises on any violation
    assert model.labels is not None and validators.__version__
    multiscale = (root.attrs["ome"] if ngff == "0.5" else root.attrs)["multiscales"][0]
    assert multiscale["type"] == "local_mean" and multiscale["metadata"]["method"]

    got, labels, _ = io.read_dataset(out)  # and we read both back the same way
    np.testing.assert_array_equal(np.asarray(got.data), image)
    assert got.rgb == rgb and got.channel_axis == channel_axis and got.translate == [1.5] * len(axes)
    assert [e.name for e in labels] == ["img annotations", "img instances"]
    assert labels[0].class_names == ["background", "cell", "debris"] and labels[0].colors == CLASS_COLORS


def test_unknown_ngff_version_is_refused(tmp_path):
    with pytest.raises(UserInputError, match="0.5, 0.4"):
        simple_dataset(tmp_path, ngff="0.6")
    assert listing(tmp_path) == []


def test_reads_ome_zarr_written_by_ome_zarr_library(tmp_path):
    from ome_zarr.writer import write_image, write_labels

    image = _image((3, 64, 64), np.uint8)  # c, y, x
    labels = np.zeros((64, 64), np.uint16)
    labels[10:20, 10:20] = 9
    root = zarr.open_group(str(tmp_path / "foreign.zarr"), mode="w", zarr_format=3)
    write_image(image, root, axes="cyx", scale_factors=(2,))
    write_labels(labels[np.newaxis], root, name="cells", axes="cyx", scaler=None, scale_factors=(2,),
                 label_metadata={"colors": [{"label-value": 9, "rgba": [255, 0, 0, 255]}],
                                 "properties": [{"label-value": 1, "class": "bg"}]})
    assert not io.is_napari_unet_dataset(tmp_path / "foreign.zarr")
    got, entries, provenance = io.read_dataset(tmp_path / "foreign.zarr")
    assert provenance == {}
    assert got.channel_axis == 0 and got.data.shape == (3, 64, 64)
    np.testing.assert_array_equal(np.asarray(got.data), image)
    (entry,) = entries
    assert entry.name == "cells" and entry.data.shape == (64, 64)
    np.testing.assert_array_equal(np.asarray(entry.data), labels)
    assert entry.colors == {9: (1.0, 0.0, 0.0, 1.0)}
    assert entry.class_names == ["bg"]
