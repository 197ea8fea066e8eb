import errno
import os

import dask.array as da
import numpy as np
import pytest
import tifffile
import zarr
from PIL import Image

from napari_unet.errors import UserInputError
from napari_unet.io import atomic
from napari_unet.io.images import (
    SUPPORTED_EXTENSIONS,
    read_image,
    read_labels,
    write_array,
)

RNG = np.random.default_rng(0)
ARRAYS = {
    "uint8": RNG.integers(0, 256, (37, 53), dtype=np.uint8),
    "uint16": RNG.integers(0, 65536, (37, 53), dtype=np.uint16),
    "float32": RNG.normal(size=(37, 53)).astype(np.float32),
    "labels_uint32": RNG.integers(0, 3, (37, 53), dtype=np.uint32) * 100_000,
    "rgb_uint8": RNG.integers(0, 256, (37, 53, 3), dtype=np.uint8),
    "stack_uint16": RNG.integers(0, 65536, (3, 37, 53), dtype=np.uint16),
}
FORMATS = {
    ".tif": list(ARRAYS),
    ".npy": list(ARRAYS),
    ".zarr": list(ARRAYS),
    ".png": ["uint8", "uint16", "rgb_uint8"],
}


def hidden_leftovers(directory) -> list[str]:
    return [name for name in os.listdir(directory) if name.startswith(".")]


@pytest.mark.parametrize(
    "ext, name", [(ext, name) for ext, names in FORMATS.items() for name in names]
)
def test_round_trip(tmp_path, ext, name):
    array = ARRAYS[name]
    path = tmp_path / f"image{ext}"
    write_array(path, array)
    back = np.asarray(read_image(path))
    assert back.dtype == array.dtype
    np.testing.assert_array_equal(back, array)
    assert hidden_leftovers(tmp_path) == []


def test_zarr_is_read_lazily_in_1024_tiles(tmp_path):
    path = tmp_path / "big.zarr"
    write_array(path, np.zeros((1500, 2100), dtype=np.uint8))
    image = read_image(path)
    assert isinstance(image, da.Array)  # nothing read yet
    assert image.chunksize == (1024, 1024)
    write_array(path, np.zeros((2, 3, 1500, 20, 3), dtype=np.uint8))
    assert read_image(path).chunksize == (2, 3, 1024, 20, 3)


@pytest.mark.parametrize("name", ["c.npy", "c.tif", "c.zarr"])
def test_complex_images_are_refused_not_truncated(tmp_path, name):
    path = tmp_path / name
    write_array(path, np.full((20, 30), 1 + 2j, np.complex64))
    with pytest.raises(UserInputError, match="complex"):
        read_image(path)


def test_labels_above_16_bits_keep_their_ids(tmp_path):
    labels = ARRAYS["labels_uint32"]
    for ext in (".tif", ".npy", ".zarr"):
        write_array(tmp_path / f"labels{ext}", labels)
        back = read_labels(tmp_path / f"labels{ext}")
        assert back.max() == 200_000
        np.testing.assert_array_equal(back, labels)


def test_png_narrows_small_integer_labels_and_rejects_big_ids(tmp_path):
    write_array(tmp_path / "small.png", np.array([[0, 7], [300, 2]], dtype=np.int64))
    assert read_labels(tmp_path / "small.png").dtype == np.uint16
    with pytest.raises(UserInputError, match=r"0 to 65535.*\.tif"):
        write_array(tmp_path / "big.png", ARRAYS["labels_uint32"])
    with pytest.raises(UserInputError, match="8- or 16-bit"):
        write_array(tmp_path / "float.png", ARRAYS["float32"])
    with pytest.raises(UserInputError, match="2D greyscale or RGB"):
        write_array(tmp_path / "stack.png", ARRAYS["stack_uint16"])
    assert sorted(os.listdir(tmp_path)) == ["small.png"]


def test_read_labels_accepts_grey_rgb_and_palette_pngs(tmp_path):
    ids = np.array([[0, 1, 2], [3, 4, 5]], dtype=np.uint8)
    write_array(tmp_path / "grey_rgb.png", np.stack([ids] * 3, axis=-1))
    np.testing.assert_array_equal(read_labels(tmp_path / "grey_rgb.png"), ids)
    palette = Image.fromarray(ids).convert("P")
    palette.putpalette(list(range(256)) * 3)  # indices differ from the colours
    palette.save(tmp_path / "palette.png")
    np.testing.assert_array_equal(read_labels(tmp_path / "palette.png"), ids)


def test_read_labels_rejects_colour_and_fractional_values(tmp_path):
    write_array(tmp_path / "colour.png", ARRAYS["rgb_uint8"])
    with pytest.raises(UserInputError, match="colour image"):
        read_labels(tmp_path / "colour.png")
    write_array(tmp_path / "fraction.tif", ARRAYS["float32"])
    with pytest.raises(UserInputError, match="fractional"):
        read_labels(tmp_path / "fraction.tif")
    write_array(tmp_path / "integral.npy", np.array([[0.0, 3.0], [70000.0, 1.0]]))
    labels = read_labels(tmp_path / "integral.npy")
    assert labels.dtype == np.uint32 and labels[1, 0] == 70000


def test_missing_unreadable_and_unsupported_files(tmp_path):
    for missing in ("nope.tif", "nope", "nope.zarr/0"):  # a known type, no extension, inside a store
        with pytest.raises(UserInputError, match=f"^file not found: .*{missing}$"):
            read_image(tmp_path / missing)
    (tmp_path / "junk.tif").write_bytes(b"not a tiff at all")
    with pytest.raises(UserInputError, match="^could not read .*junk.tif as an image: "):
        read_image(tmp_path / "junk.tif")
    (tmp_path / "junk.png").write_bytes(b"not a png at all")
    with pytest.raises(UserInputError, match="^could not read .*junk.png as an image: [^\n]*$"):
        read_image(tmp_path / "junk.png")
    (tmp_path / "empty.zarr").mkdir()
    with pytest.raises(UserInputError, match="no zarr array or group"):
        read_image(tmp_path / "empty.zarr")
    for call in (lambda p: read_image(p), lambda p: write_array(p, ARRAYS["uint8"])):
        with pytest.raises(UserInputError, match=".jpg.*" + ", ".join(SUPPORTED_EXTENSIONS)):
            call(tmp_path / "photo.jpg")


def test_ome_zarr_groups_give_level_0_v05_and_v04(tmp_path):
    image = ARRAYS["uint16"]
    v05 = zarr.open_group(tmp_path / "v05.zarr", mode="w")
    datasets = [{"path": "s0"}, {"path": "s1"}]
    v05.attrs["ome"] = {"version": "0.5", "multiscales": [{"datasets": datasets}]}
    v05.create_array("s0", data=image)
    v05.create_array("s1", data=image[::2, ::2])
    v04 = zarr.open_group(tmp_path / "v04.zarr", mode="w", zarr_format=2)
    v04.attrs["multiscales"] = [{"version": "0.4", "datasets": [{"path": "0"}]}]
    v04.create_array("0", data=image)
    for name in ("v05.zarr", "v04.zarr"):
        np.testing.assert_array_equal(read_image(tmp_path / name)[...], image)
    v04.attrs["multiscales"] = [{"version": "0.4", "datasets": [{"path": "missing"}]}]
    with pytest.raises(UserInputError, match="names array 'missing'"):
        read_image(tmp_path / "v04.zarr")


def test_plain_zarr_group_lists_its_arrays_and_inner_paths_open(tmp_path):
    group = zarr.open_group(tmp_path / "data.zarr", mode="w")
    group.create_array("raw", data=ARRAYS["uint8"])
    group.create_group("labels").create_array("cells", data=ARRAYS["labels_uint32"])
    with pytest.raises(UserInputError, match="zarr group, not an image.*labels/cells, raw"):
        read_image(tmp_path / "data.zarr")
    cells = read_labels(tmp_path / "data.zarr" / "labels" / "cells")
    np.testing.assert_array_equal(cells, ARRAYS["labels_uint32"])


def test_overwrite_false_refuses_existing_file(tmp_path):
    path = tmp_path / "a.npy"
    write_array(path, ARRAYS["uint8"])
    with pytest.raises(UserInputError, match="already exists"):
        write_array(path, ARRAYS["uint16"], overwrite=False)
    np.testing.assert_array_equal(read_image(path), ARRAYS["uint8"])


def test_zarr_overwrite_replaces_the_whole_store(tmp_path):
    path = tmp_path / "out.zarr"
    write_array(path, ARRAYS["stack_uint16"])
    write_array(path, ARRAYS["uint8"])
    np.testing.assert_array_equal(read_image(path)[...], ARRAYS["uint8"])
    assert hidden_leftovers(tmp_path) == []


def disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_failed_tif_write_keeps_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "out.tif"
    write_array(path, ARRAYS["uint8"])
    real_imwrite = tifffile.imwrite

    def write_then_fail(target, *args, **kwargs):
        real_imwrite(target, *args, **kwargs)  # the temp file exists, then the disk fills
        disk_full()

    monkeypatch.setattr(tifffile, "imwrite", write_then_fail)
    with pytest.raises(UserInputError, match="^Not enough disk space to write out.tif"):
        write_array(path, ARRAYS["uint16"])
    np.testing.assert_array_equal(read_image(path), ARRAYS["uint8"])
    assert os.listdir(tmp_path) == ["out.tif"]


def test_failed_zarr_write_keeps_old_store_and_leaves_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "out.zarr"
    write_array(path, ARRAYS["uint8"])
    monkeypatch.setattr(zarr.Array, "__setitem__", disk_full)  # after the temp store is created
    with pytest.raises(UserInputError, match="Not enough disk space"):
        write_array(path, ARRAYS["uint16"])
    np.testing.assert_array_equal(read_image(path)[...], ARRAYS["uint8"])
    assert os.listdir(tmp_path) == ["out.zarr"]


def test_failed_swap_restores_the_old_store(tmp_path, monkeypatch):
    path = tmp_path / "out.zarr"
    write_array(path, ARRAYS["uint8"])
    real_replace = os.replace

    def refuse_new_store(src, dst):
        if ".writing-" in os.fspath(src):
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", refuse_new_store)
    with pytest.raises(UserInputError, match="could not write .*Input/output error"):
        write_array(path, ARRAYS["uint16"])
    np.testing.assert_array_equal(read_image(path)[...], ARRAYS["uint8"])
    assert os.listdir(tmp_path) == ["out.zarr"]


def test_missing_directory_is_a_user_error(tmp_path):
    with pytest.raises(UserInputError, match="could not write .*: No such file or directory"):
        write_array(tmp_path / "missing" / "out.tif", ARRAYS["uint8"])


def test_a_napari_unet_dataset_reads_in_naparis_layout(tmp_path):
    from napari_unet.io.ome_zarr_dataset import ImageEntry, write_dataset

    rgb = np.random.default_rng(0).integers(0, 255, (30, 40, 3)).astype(np.uint8)
    path = write_dataset(tmp_path / "photo.zarr", ImageEntry(rgb, rgb=True))
    image = read_image(path)
    assert isinstance(image, da.Array) and image.shape == (30, 40, 3)  # stored as (c, y, x)
    np.testing.assert_array_equal(np.asarray(image), rgb)
