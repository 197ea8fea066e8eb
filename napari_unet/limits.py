"""The bounds every number and size is checked against before any work or allocation starts.

One place for them, so the dock, the command line and checkpoint loading refuse the same
inputs with the same words: a NaN time budget would train forever, a stray label value
of 50000 would build a 13 GB network, a tampered checkpoint could ask for 40 levels.
"""

from __future__ import annotations

import math
import numbers

from napari_unet.errors import UserInputError

MAX_CLASSES = 255  # annotation labels 1..255: background plus 254 classes
MAX_IN_CHANNELS = 64
MAX_DEPTH = 6
MAX_BASE_WIDTH = 256
MAX_PARAMETERS = 200_000_000  # 800 MB of float32 weights; the largest preset has about 8 M
MAX_PATCH_SIZE = 4096
MAX_TILE_SIZE = 16384
MAX_BATCH_SIZE = 1024
MAX_SEED_SPACING = 1000  # pixels; the merge disk is (spacing + 1)^2


def whole_number(name: str, value, low: int, high: int | None = None) -> int:
    """`value` as an int in [low, high], or a UserInputError naming `name`."""
    whole_float = isinstance(value, numbers.Real) and math.isfinite(value) and float(value).is_integer()
    if isinstance(value, bool) or not (isinstance(value, numbers.Integral) or whole_float):
        raise UserInputError(f"{name} must be a whole number, got {value!r}")
    value = int(value)
    if value < low or (high is not None and value > high):
        raise UserInputError(f"{name} must be {_range(low, high)}, got {value}")
    return value


def real_number(
    name: str, value, low: float, high: float | None = None, *, low_open: bool = False, high_open: bool = False
) -> float:
    """`value` as a finite float in the range (ends open or closed), or a UserInputError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise UserInputError(f"{name} must be a number, got {value!r}")
    value = float(value)
    too_low = value <= low if low_open else value < low
    too_high = high is not None and (value >= high if high_open else value > high)
    if not math.isfinite(value) or too_low or too_high:
        above = f"greater than {low:g}" if low_open else f"at least {low:g}"
        below = "" if high is None else f" and {'less than' if high_open else 'at most'} {high:g}"
        raise UserInputError(f"{name} must be a finite number {above}{below}, got {value:g}")
    return value


def one_of(name: str, value, choices) -> str:
    """`value` if it is one of `choices` (a preset, a norm), else a UserInputError listing them."""
    if value not in choices:
        raise UserInputError(f"unknown {name} {value!r}: choose one of {', '.join(map(str, choices))}")
    return value


def _range(low: int, high: int | None) -> str:
    return f"at least {low}" if high is None else f"between {low} and {high}"


def check_class_count(n_classes: int, where: str = "the labels") -> int:
    """Annotation label values are classes 1..K; a larger value is a stray pixel, not a class."""
    if n_classes > MAX_CLASSES:
        raise UserInputError(
            f"{where} hold the value {n_classes}, but annotation labels are classes 1..{MAX_CLASSES} "
            "(1 = background): for object ids use instance labels, otherwise fix the stray values"
        )
    return n_classes


def check_architecture(architecture: dict) -> None:
    """Refuse a network that is out of bounds before it is built (checkpoints are user files)."""
    from napari_unet.nn.model import INSTANCE_CHANNELS, NORMS

    in_channels = whole_number("in_channels", architecture.get("in_channels"), 1, MAX_IN_CHANNELS)
    n_classes = whole_number("n_classes", architecture.get("n_classes"), 2, MAX_CLASSES)
    depth = whole_number("depth", architecture.get("depth"), 1, MAX_DEPTH)
    width = whole_number("base_width", architecture.get("base_width"), 1, MAX_BASE_WIDTH)
    one_of("norm", architecture.get("norm"), NORMS)
    count = parameter_count(in_channels, n_classes + INSTANCE_CHANNELS, depth, width)
    if count > MAX_PARAMETERS:
        raise UserInputError(f"the network would have {count:,} parameters, more than the {MAX_PARAMETERS:,} allowed")


def parameter_count(in_channels: int, out_channels: int, depth: int, base_width: int) -> int:
    """Weights of the U-Net in nn/model.py (convolutions only; norms add a few per channel)."""
    widths = [base_width * 2**i for i in range(depth + 1)]
    count, c_in = 0, in_channels
    for w in widths:
        count += 9 * (c_in * w + w * w)
        c_in = w
    for w_skip, w_deep in zip(widths[:-1], widths[1:]):
        count += 4 * w_deep * w_skip + 9 * (2 * w_skip * w_skip + w_skip * w_skip)
    return count + widths[0] * out_channels
