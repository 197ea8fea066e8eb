"""Which region to annotate next: rank square regions by how unsure the model is there.

A plane is cut into a fixed grid of regions (about a quarter of the plane's shorter side, 64
to 256 px), so a region is named by (image, plane, top, left) and "never the same region
twice" is a set lookup. A region scores the mean uncertainty of its pixels that are neither
annotated nor accepted (those count as 0: the user already spoke there); regions mostly done
are skipped. `SuggestionWalk` remembers what it suggested and walks every plane it is given,
of every image, best first.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from napari_unet.functionals.uncertainty import UNCERTAINTY_MAX

MIN_REGION, MAX_REGION = 64, 256
MAX_DONE_FRACTION = 0.5  # a region more annotated/accepted than this is never suggested


@dataclass(frozen=True)
class Region:
    """A rectangle of one plane of one image, in pixel indices of the plane (bottom/right exclusive)."""

    image: str
    plane: tuple
    top: int
    left: int
    bottom: int
    right: int
    score: float = 0.0  # mean uncertainty of its not-yet-annotated pixels, 0..1

    @property
    def key(self) -> tuple:
        return (self.image, tuple(self.plane), self.top, self.left)

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.top, self.bottom), slice(self.left, self.right)

    @property
    def centre(self) -> tuple[float, float]:
        return ((self.top + self.bottom - 1) / 2, (self.left + self.right - 1) / 2)


def region_size(plane_shape: tuple[int, int]) -> int:
    """Side of the suggested regions: a quarter of the shorter side, within 64..256 px (never above it)."""
    short = int(min(plane_shape))
    return min(short, max(MIN_REGION, min(MAX_REGION, short // 4)))


def _edges(n: int, size: int) -> np.ndarray:
    """Block edges along an axis of length n: ceil(n/size) blocks of near-equal length."""
    blocks = max(1, int(np.ceil(n / size)))
    return np.round(np.linspace(0, n, blocks + 1)).astype(int)


def _block_sums(values: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    dtype = np.float64 if values.dtype.kind == "f" else np.int64
    return np.add.reduceat(np.add.reduceat(values, rows[:-1], axis=0, dtype=dtype), cols[:-1], axis=1)


def rank_regions(
    uncertainty: np.ndarray, done: np.ndarray | None = None, *, size: int | None = None,
    image: str = "", plane: tuple = (),
) -> list[Region]:
    """The grid regions of one plane, most uncertain first, those mostly annotated or accepted left out.

    uncertainty: (H, W) uint8 (0..255, `uncertainty.uncertainty_map`) or float (0..1).
    done: (H, W) bool, True where the user has annotated or accepted.
    """
    u = np.asarray(uncertainty)
    scale = float(UNCERTAINTY_MAX) if u.dtype == np.uint8 else 1.0
    h, w = u.shape
    size = size or region_size((h, w))
    rows, cols = _edges(h, size), _edges(w, size)
    todo = np.ones((h, w), bool) if done is None else ~np.asarray(done, bool)
    open_sum = _block_sums(np.where(todo, u, 0), rows, cols)
    open_count = _block_sums(todo, rows, cols)
    area = np.outer(np.diff(rows), np.diff(cols))
    scores = open_sum / area / scale
    regions = [
        Region(image, tuple(plane), int(rows[i]), int(cols[j]), int(rows[i + 1]), int(cols[j + 1]), float(scores[i, j]))
        for i in range(len(rows) - 1) for j in range(len(cols) - 1)
        if open_count[i, j] >= (1 - MAX_DONE_FRACTION) * area[i, j]
    ]
    return sorted(regions, key=lambda r: (-r.score, r.top, r.left))


@dataclass
class SuggestionWalk:
    """Suggests regions best first over every plane it is shown, never the same one twice."""

    suggested: list[Region] = field(default_factory=list)
    _seen: set = field(default_factory=set)

    def next(self, planes: Iterable[tuple[str, tuple, np.ndarray, np.ndarray | None]]) -> Region | None:
        """The most uncertain region not suggested yet among `planes` ((image, plane, uncertainty, done) each)."""
        best: Region | None = None
        for image, plane, uncertainty, done in planes:
            for region in rank_regions(uncertainty, done, image=image, plane=plane):
                if region.key not in self._seen:
                    if best is None or region.score > best.score:
                        best = region
                    break  # ranked: the first unseen one is this plane's best
        if best is not None:
            self.remember(best)
        return best

    def remember(self, region: Region) -> None:
        """Count `region` as suggested (another picker chose it)."""
        self._seen.add(region.key)
        self.suggested.append(region)

    def was_suggested(self, region: Region) -> bool:
        return region.key in self._seen

    def forget_image(self, image: str) -> None:
        self.suggested = [r for r in self.suggested if r.image != image]
        self._seen = {r.key for r in self.suggested}

    def reset(self) -> None:
        self.suggested.clear()
        self._seen.clear()
