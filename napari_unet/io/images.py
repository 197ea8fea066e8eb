"""Read and write images and labels by file extension, for the command line.

Every failure a user can cause (missing file, unreadable file, unsupported
extension, full disk) becomes a one-line `UserInputError`. Writes are atomic:
the data goes to a hidden sibling first and is renamed into place, so a failed
write never leaves a half-written file or damages the file it was replacing.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import dask.array as da
import imageio.v3 as iio
import numpy as np
import tifffile
import zarr

from napari_unet.errors import UserInputError
from napari_unet.io import atomic
from napari_unet.io.chunking import chunk_shape, guess_axes

SUPPORTED_EXTENSIONS = (".tif", ".tiff", ".png", ".npy", ".zarr")

# Exceptions the readers raise for a file that is not what its extension says
# (tifffile, zarr and numpy raise ValueError subclasses, Pillow OSError).
_READ_ERRORS = (OSError, ValueError, EOFError, KeyError)


def _extension(path: Path) -> str:
    ext = path.suffix.lower()
    if ext not in SUPPORTED_EXTENSIONS:
        raise UserInputError(
            f"unsupported file type '{ext or path.name}' for {path}; "
            f"use one of {', '.join(SUPPORTED_EXTENSIONS)}"
        )
    return ext


def _zarr_root(path: Path) -> tuple[Path, str] | None:
    """Split 'data.zarr/labels/0' into the store and the path inside it."""
    for i, part in enumerate(path.parts):
        if part.lower().endswith(".zarr"):
            return Path(*path.parts[: i + 1]), "/".join(path.parts[i + 1 :])
    return None


def _one_line(error: Exception) -> str:
    """The gist of a library error, on one line (OSErrors by their strerror)."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def _multiscale_level0(group: zarr.Group) -> str | None:
    """Path of the full-resolution array of an OME-Zarr image (NGFF 0.5 or 0.4)."""
    attrs = group.attrs.asdict()
    multiscales = attrs.get("ome", {}).get("multiscales") or attrs.get("multiscales")
    try:
        return multiscales[0]["datasets"][0]["path"]
    except (TypeError, KeyError, IndexError):
        return None


def _read_zarr(store: Path, inner: str) -> zarr.Array | da.Array:
    name = store / inner if inner else store
    try:
        node = zarr.open(store=str(store), path=inner, mode="r")
    except zarr.errors.NodeNotFoundError as error:
        raise UserInputError(
            f"could not read {name} as an image: no zarr array or group there"
        ) from error
    if isinstance(node, zarr.Array):
        return node
    # ome-zarr loads slowly: only for zarr inputs, not every command line start
    from napari_unet.io.ome_zarr_read import is_napari_unet_dataset, read_dataset

    if not inner and is_napari_unet_dataset(store):  # in napari's layout: RGB last, channels back
        return read_dataset(store)[0].data
    level0 = _multiscale_level0(node)
    if level0 is not None:
        try:
            return node[level0]
        except KeyError as error:
            raise UserInputError(
                f"could not read {name} as an image: its OME-Zarr metadata names "
                f"array '{level0}', which is missing"
            ) from error
    members = node.members(max_depth=None)
    arrays = sorted(key for key, member in members if isinstance(member, zarr.Array))
    if not arrays:
        raise UserInputError(f"{name} is a zarr group with no arrays in it")
    raise UserInputError(
        f"{name} is a zarr group, not an image; give one of its arrays as "
        f"{name}/<array>, with <array> one of: {', '.join(arrays)}"
    )


def _read_png(path: Path, palette_indices: bool) -> np.ndarray:
    """PNG pixels; palette images give their indices when `palette_indices` (labels)."""
    with iio.imopen(path, "r", plugin="pillow", extension=".png") as file:
        keep = palette_indices and file.metadata().get("mode") == "P"
        return file.read(mode="P" if keep else None)


def _read(path: str | os.PathLike, palette_indices: bool = False) -> np.ndarray | zarr.Array:
    path = Path(path)
    is_file_type = path.suffix.lower() in SUPPORTED_EXTENSIONS and path.suffix.lower() != ".zarr"
    zarr_parts = None if is_file_type else _zarr_root(path)
    if not zarr_parts and path.is_dir():
        raise UserInputError(f"{path} is a folder, not an image: give an image file "
                             f"({', '.join(SUPPORTED_EXTENSIONS)})")
    # Missing: "not found", unless its extension is the problem (a mistyped path has none, or a known one).
    known_type = zarr_parts or not path.suffix or path.suffix.lower() in SUPPORTED_EXTENSIONS
    if known_type and not (zarr_parts[0] if zarr_parts else path).exists():
        raise UserInputError(f"file not found: {path}")
    ext = ".zarr" if zarr_parts else _extension(path)
    try:
        if zarr_parts:
            return _read_zarr(*zarr_parts)
        if ext == ".npy":
            return np.load(path, allow_pickle=False)
        if ext == ".png":
            return _read_png(path, palette_indices)
        return tifffile.imread(path)
    except UserInputError:
        raise
    except _READ_ERRORS as error:
        raise UserInputError(f"could not read {path} as an image: {_one_line(error)}") from error


def read_image(path: str | os.PathLike) -> np.ndarray | da.Array:
    """Image at `path`, chosen by extension.

    A zarr path gives a lazy (dask) array over the stored chunks, so images larger
    than memory are read tile by tile as callers index it; a path inside a store
    (`data.zarr/labels/cells`) opens that node, and an OME-Zarr image group (a
    napari-unet dataset included) gives its full-resolution level. Other formats are
    read into a numpy array. Complex pixels are refused: they would lose their
    imaginary part.
    """
    image = _read(path)
    if isinstance(image, zarr.Array):
        image = da.from_zarr(image)
    if image.dtype.kind == "c":
        raise UserInputError(
            f"{path} holds complex ({image.dtype}) pixels; napari-unet segments real-valued "
            "images: save the magnitude (numpy.abs) or the real part as the image")
    return image


def read_labels(path: str | os.PathLike) -> np.ndarray:
    """Integer label image at `path`, read into memory.

    Integral floats are converted to the smallest unsigned type; colour PNGs are
    accepted only when their colour channels are equal (grey saved as RGB), and
    palette PNGs give their palette indices.
    """
    labels = np.asarray(_read(path, palette_indices=True))
    if Path(path).suffix.lower() == ".png" and labels.ndim == 3:
        colour = labels[..., :-1] if labels.shape[-1] in (2, 4) else labels  # drop alpha
        if np.any(colour != colour[..., :1]):
            raise UserInputError(
                f"{path} is a colour image, but labels need one integer id per pixel; "
                "save them as a single-channel PNG or a TIFF"
            )
        labels = colour[..., 0]
    if labels.dtype.kind == "b":
        return labels.astype(np.uint8)
    if labels.dtype.kind == "f":
        integral = np.all(np.isfinite(labels)) and np.all(labels == np.round(labels))
        if not integral or np.any(labels < 0):
            raise UserInputError(
                f"{path} holds fractional or negative values; labels must be "
                "non-negative integer ids"
            )
        return labels.astype(np.min_scalar_type(int(labels.max(initial=0))))
    if labels.dtype.kind not in "iu":
        raise UserInputError(f"{path} holds {labels.dtype} values; labels must be integer ids")
    if labels.dtype.kind == "i" and labels.size and labels.min() < 0:
        raise UserInputError(f"{path} holds negative values; labels must be non-negative ids")
    return labels


def _png_ready(path: Path, array: np.ndarray) -> np.ndarray:
    """`array` as 8- or 16-bit PNG pixels, or an error saying which format to use."""
    grey = array.ndim == 2
    colour = array.ndim == 3 and array.shape[-1] in (3, 4) and array.dtype == np.uint8
    if not (grey or colour):
        raise UserInputError(
            f"cannot write {path}: PNG holds 2D greyscale or RGB(A) 8-bit images, "
            f"not shape {array.shape} {array.dtype}; use .tif, .npy or .zarr"
        )
    if array.dtype.kind == "b":
        return array.astype(np.uint8)
    if array.dtype.kind not in "iu":
        raise UserInputError(
            f"cannot write {path}: PNG holds only 8- or 16-bit integers, not "
            f"{array.dtype}; use .tif, .npy or .zarr"
        )
    low, high = (int(array.min()), int(array.max())) if array.size else (0, 0)
    if low < 0 or high > 65535:
        raise UserInputError(
            f"cannot write {path}: PNG holds values 0 to 65535, but the array spans "
            f"{low} to {high}; use .tif instead"
        )
    return array.astype(np.uint8 if high <= 255 else np.uint16, copy=False)


def _write_tif(target: Path, array: np.ndarray) -> None:
    # Explicit, so (3, Y, X) stacks are not taken for planar RGB; (Y, X, 3|4) is.
    rgb = array.ndim == 3 and array.shape[-1] in (3, 4)
    tifffile.imwrite(
        target, array, compression="zlib", photometric="rgb" if rgb else "minisblack"
    )


def _write_png(target: Path, array: np.ndarray) -> None:
    iio.imwrite(target, array, plugin="pillow", extension=".png")


def _write_npy(target: Path, array: np.ndarray) -> None:
    with open(target, "wb") as file:  # a file object keeps np.save from renaming it
        np.save(file, array, allow_pickle=False)


def _write_zarr(target: Path, array: np.ndarray) -> None:
    out = zarr.create_array(
        store=str(target), shape=array.shape, dtype=array.dtype, chunks=chunk_shape(array.shape, guess_axes(array.shape))
    )
    out[...] = array


_WRITERS: dict[str, Callable[[Path, np.ndarray], None]] = {
    ".tif": _write_tif,
    ".tiff": _write_tif,
    ".png": _write_png,
    ".npy": _write_npy,
    ".zarr": _write_zarr,
}


def write_array(path: str | os.PathLike, array: np.ndarray, *, overwrite: bool = True,
                shown_as: str | os.PathLike | None = None) -> None:
    """Write `array` to `path` in the format its extension names, atomically.

    TIFF is zlib-compressed and takes any dtype; PNG takes 2D 8/16-bit integers
    (other integer types are narrowed when their values fit) or 8-bit RGB(A);
    zarr writes a v3 array chunked in 1024x1024 tiles. `shown_as`: the file the user
    asked for, named in error messages when `path` is a staged copy of it.
    """
    path = Path(path)
    named = Path(shown_as) if shown_as is not None else path
    ext = _extension(path)
    if path.exists() and not overwrite:
        raise UserInputError(f"{path} already exists; choose another name or allow overwriting")
    if path.is_dir() and ext != ".zarr":  # the swap would replace the folder, and all in it, by the file
        raise UserInputError(f"{named} is a folder: give a file name for the output")
    array = np.asarray(array)
    if ext == ".png":
        array = _png_ready(named, array)
    try:
        atomic.write_file(path, lambda temp: _WRITERS[ext](temp, array))
    except OSError as error:
        raise atomic.disk_error(error, named, "write") or UserInputError(
            f"could not write {named}: {_one_line(error)}") from error
