"""Make the sample data in this folder: images, ground truth and sparse scribbles.

The scribbles imitate what a person paints to start napari-unet: a few short,
slightly curved strokes inside some objects and in the background, well
inside each region. They are drawn deterministically from the ground truth, so
running this script again gives the same files bit for bit.

Label convention (napari_unet.conventions): 0 = not annotated, 1 = background,
2 = the object class ("nucleus" for the nuclei image, "cell" for EM, where the
membranes are the background: cells are the objects that instance segmentation
separates).

Usage (from the repository root)::

    # (re)import the source images, then draw the scribbles
    pip download --no-deps stardist==0.9.2 -d /tmp/sd
    python3 resources/make_scribbles.py \
        --stardist-wheel /tmp/sd/stardist-0.9.2-*.whl \
        --isbi-dir shared/data/isbi2012-membranes

    # only redraw the scribbles from the ground truth already here
    python3 resources/make_scribbles.py

Sources and licences: see LICENSES.md beside this file.
"""

from __future__ import annotations

import argparse
import io
import zipfile
from pathlib import Path

import numpy as np
import tifffile
from scipy import ndimage as ndi

from napari_unet.io.resources import (
    EM_IMAGE,
    EM_LABELS,
    EM_SCRIBBLES,
    NUCLEI_IMAGE,
    NUCLEI_INSTANCES,
    NUCLEI_SCRIBBLES,
)

HERE = Path(__file__).resolve().parent


EM_SOURCE_INDEX = 0  # shared/data/isbi2012-membranes/0_image.png

NOT_ANNOTATED, BACKGROUND, OBJECT = 0, 1, 2


def write_tif(name: str, data: np.ndarray) -> None:
    # deflate (zlib) needs no extra codec package to read back
    tifffile.imwrite(HERE / name, data, compression="zlib", metadata=None)


# --- importing the sources ---------------------------------------------------


def import_stardist(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        img = tifffile.imread(io.BytesIO(z.read("stardist/data/images/img2d.tif")))
        mask = tifffile.imread(io.BytesIO(z.read("stardist/data/images/mask2d.tif")))
    write_tif(NUCLEI_IMAGE, img)
    write_tif(NUCLEI_INSTANCES, mask)


def import_isbi(folder: Path) -> None:
    from skimage.io import imread

    img = imread(folder / f"{EM_SOURCE_INDEX}_image.png")
    lab = imread(folder / f"{EM_SOURCE_INDEX}_labels.png")
    assert img.dtype == np.uint8 and lab.dtype == np.uint8, (img.dtype, lab.dtype)
    write_tif(EM_IMAGE, img)
    write_tif(EM_LABELS, lab)


# --- drawing strokes -----------------------------------------------------------


def _curve(p0, p1, bend: float, n: int) -> np.ndarray:
    """Points of a quadratic Bezier from p0 to p1, bent sideways by `bend` px."""
    p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
    mid = (p0 + p1) / 2
    d = p1 - p0
    normal = np.array([-d[1], d[0]]) / (np.hypot(*d) + 1e-9)
    ctrl = mid + bend * normal
    t = np.linspace(0, 1, n)[:, None]
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * ctrl + t**2 * p1


def _stroke_pixels(points: np.ndarray, ok: np.ndarray, start: int) -> np.ndarray:
    """Rounded points of a curve, as the contiguous run through `start` where `ok`."""
    pts = np.round(points).astype(int)
    h, w = ok.shape
    inside = (pts[:, 0] >= 0) & (pts[:, 0] < h) & (pts[:, 1] >= 0) & (pts[:, 1] < w)
    good = np.zeros(len(pts), bool)
    good[inside] = ok[pts[inside, 0], pts[inside, 1]]
    if not good[start]:
        return pts[:0]
    lo = start
    while lo > 0 and good[lo - 1]:
        lo -= 1
    hi = start
    while hi < len(pts) - 1 and good[hi + 1]:
        hi += 1
    return pts[lo : hi + 1]


def _paint(canvas: np.ndarray, pts: np.ndarray, radius: int, value: int, allowed) -> int:
    """Paint a stroke of width 2*radius+1 along pts, only where `allowed`."""
    if len(pts) == 0:
        return 0
    line = np.zeros(canvas.shape, bool)
    line[pts[:, 0], pts[:, 1]] = True
    if radius > 0:
        yy, xx = np.mgrid[-radius : radius + 1, -radius : radius + 1]
        line = ndi.binary_dilation(line, structure=(yy**2 + xx**2) <= radius**2 + 0.5)
    line &= allowed & (canvas == NOT_ANNOTATED)
    canvas[line] = value
    return int(line.sum())


def _spread_choice(rng, centres: np.ndarray, k: int) -> list[int]:
    """Pick k indices of `centres`, spread over the image (farthest-point)."""
    if len(centres) <= k:
        return list(range(len(centres)))
    chosen = [int(rng.integers(len(centres)))]
    d = np.linalg.norm(centres - centres[chosen[0]], axis=1)
    for _ in range(k - 1):
        # farthest point, with a little jitter so it is not a perfect grid
        score = d * rng.uniform(0.8, 1.0, len(d))
        nxt = int(np.argmax(score))
        chosen.append(nxt)
        d = np.minimum(d, np.linalg.norm(centres - centres[nxt], axis=1))
    return chosen


def _away_from_border(points: np.ndarray, shape, border: int = 16) -> np.ndarray:
    keep = np.all((points >= border) & (points < np.array(shape) - border), axis=1)
    return points[keep]


def strokes_in_objects(
    canvas, instances, value, rng, count, radius, margin, min_area, length_frac=0.7
) -> None:
    """One short stroke along the long axis of `count` objects, inside each."""
    ids = np.unique(instances)
    ids = ids[ids > 0]
    objs = ndi.find_objects(instances)
    cand, centres = [], []
    for i in ids:
        sl = objs[i - 1]
        m = instances[sl] == i
        if m.sum() < min_area:
            continue
        # skip objects cut by the image border
        if (sl[0].start == 0 or sl[1].start == 0 or sl[0].stop == instances.shape[0]
                or sl[1].stop == instances.shape[1]):
            continue
        cand.append(i)
        yx = np.argwhere(m).mean(0) + [sl[0].start, sl[1].start]
        centres.append(yx)
    centres = np.array(centres)
    for j in _spread_choice(rng, centres, count):
        i = cand[j]
        sl = objs[i - 1]
        pad = radius + margin + 2
        sl = tuple(slice(max(s.start - pad, 0), s.stop + pad) for s in sl)
        m = instances[sl] == i
        dist = ndi.distance_transform_edt(m)
        ok = dist > radius + margin
        if not ok.any():
            continue
        centre = np.unravel_index(np.argmax(dist), m.shape)
        yx = np.argwhere(m).astype(float)
        cov = np.cov((yx - yx.mean(0)).T)
        evals, evecs = np.linalg.eigh(cov)
        axis = evecs[:, -1]
        half = length_frac * 2 * np.sqrt(evals[-1])  # ~ 0.7 * semi-major axis * 2
        axis = axis * half * rng.uniform(0.8, 1.2)
        p0, p1 = np.array(centre) - axis, np.array(centre) + axis
        n = int(4 * half) + 3
        pts = _curve(p0, p1, bend=rng.uniform(-0.25, 0.25) * half, n=n)
        pts = _stroke_pixels(pts, ok, start=n // 2)
        sub = canvas[sl]
        _paint(sub, pts, radius, value, allowed=m)


def strokes_in_region(
    canvas, region, value, rng, count, radius, margin, length=(30, 60)
) -> None:
    """`count` curved strokes in a large region (e.g. background), well inside it."""
    dist = ndi.distance_transform_edt(region)
    ok = dist > radius + margin
    seeds = _away_from_border(np.argwhere(dist > radius + margin + 4), region.shape)
    if len(seeds) == 0:
        return
    # candidate seeds on a coarse grid, then spread over the image
    seeds = seeds[rng.permutation(len(seeds))[:4000]]
    for j in _spread_choice(rng, seeds.astype(float), count):
        s = seeds[j].astype(float)
        theta = rng.uniform(0, np.pi)
        half = rng.uniform(*length) / 2
        d = half * np.array([np.sin(theta), np.cos(theta)])
        n = int(4 * half) + 3
        pts = _curve(s - d, s + d, bend=rng.uniform(-0.3, 0.3) * half, n=n)
        pts = _stroke_pixels(pts, ok, start=n // 2)
        _paint(canvas, pts, radius, value, allowed=region)


def strokes_along_thin(canvas, mask, value, rng, count, radius, reach=18) -> None:
    """`count` strokes that follow thin structures (membranes) along their middle."""
    from skimage.morphology import skeletonize

    dist = ndi.distance_transform_edt(mask)
    skel = skeletonize(mask) & (dist >= 2)  # the thicker, clearly visible parts
    pts_all = _away_from_border(np.argwhere(skel), mask.shape)
    if len(pts_all) == 0:
        return
    sub = pts_all[rng.permutation(len(pts_all))[:4000]]
    for j in _spread_choice(rng, sub.astype(float), count):
        seed = tuple(sub[j])
        # walk the skeleton from the seed up to `reach` steps (8-connected BFS)
        seen = {seed: 0}
        frontier = [seed]
        while frontier:
            nxt = []
            for y, x in frontier:
                for dy in (-1, 0, 1):
                    for dx in (-1, 0, 1):
                        q = (y + dy, x + dx)
                        if (q not in seen and 0 <= q[0] < mask.shape[0]
                                and 0 <= q[1] < mask.shape[1] and skel[q]
                                and seen[(y, x)] < reach):
                            seen[q] = seen[(y, x)] + 1
                            nxt.append(q)
            frontier = nxt
        pts = np.array(list(seen))
        _paint(canvas, pts, radius, value, allowed=mask)


# --- the two samples ----------------------------------------------------------


def nuclei_scribbles(instances: np.ndarray, seed: int = 2018) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.zeros(instances.shape, np.uint8)
    strokes_in_objects(out, instances, OBJECT, rng, count=8, radius=1, margin=2,
                       min_area=250)
    background = ndi.binary_erosion(instances == 0, iterations=2)
    strokes_in_region(out, background, BACKGROUND, rng, count=8, radius=2, margin=5,
                      length=(30, 60))
    return out


def em_scribbles(labels: np.ndarray, seed: int = 2012) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.zeros(labels.shape, np.uint8)
    interior = labels > 0
    cells, _ = ndi.label(interior)
    strokes_in_objects(out, cells, OBJECT, rng, count=8, radius=2, margin=3,
                       min_area=800, length_frac=0.6)
    strokes_along_thin(out, ~interior, BACKGROUND, rng, count=8, radius=1, reach=22)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stardist-wheel", type=Path, help="stardist-0.9.2 wheel to import from")
    p.add_argument("--isbi-dir", type=Path, help="folder with N_image.png / N_labels.png")
    args = p.parse_args(argv)
    if args.stardist_wheel:
        import_stardist(args.stardist_wheel)
    if args.isbi_dir:
        import_isbi(args.isbi_dir)

    inst = tifffile.imread(HERE / NUCLEI_INSTANCES)
    s = nuclei_scribbles(inst)
    write_tif(NUCLEI_SCRIBBLES, s)
    lab = tifffile.imread(HERE / EM_LABELS)
    e = em_scribbles(lab)
    write_tif(EM_SCRIBBLES, e)
    for name, a in ((NUCLEI_SCRIBBLES, s), (EM_SCRIBBLES, e)):
        frac = (a > 0).mean()
        print(f"{name}: {frac:.2%} annotated, "
              f"{(a == BACKGROUND).sum()} background px, {(a == OBJECT).sum()} object px")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
