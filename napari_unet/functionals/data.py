"""Training data: validated (image, annotation) pairs and a patch sampler that favours rare classes.

Two kinds of annotation feed one format: sparse *scribbles* (0 = not annotated, 1 =
background, 2..K = classes) and dense *instances* (0 = background, one id per object).
Instance heads learn only where `instance_mask` says instance identities are known.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from napari_unet import limits
from napari_unet.conventions import (
    ACCEPTED_BACKGROUND,
    BACKGROUND,
    FIRST_CLASS,
    UNANNOTATED,
)
from napari_unet.errors import UserInputError
from napari_unet.functionals.layout import ImageLayout, plane_label
from napari_unet.functionals.normalisation import Normalisation, sample_stride
from napari_unet.functionals.scale import object_diameter, resample, scaled_shape
from napari_unet.functionals.targets import boundary_target, distance_target

IGNORE = -1  # semantic target value that the loss skips
MAX_CENTRES_PER_CLASS = 200_000
CROP_ABOVE_PIXELS = 2048 * 2048  # planes bigger than this are read only around their annotations
TRAINING_CONTEXT = 512  # pixels of image kept on each side of the annotations of such a plane


@dataclass
class TrainingImage:
    """One 2D image (C, H, W) with its annotations; `instances` only where `instance_mask` is True."""

    image: np.ndarray
    annotations: np.ndarray
    instances: np.ndarray | None = None
    instance_mask: np.ndarray | None = None
    name: str = ""
    source: str = ""  # the image it comes from (its layer or file name)
    plane: tuple = ()  # which plane of that image
    # When `image` is a crop of a big plane: a strided sample of the whole plane, so the crop is
    # normalised with the plane's statistics (as prediction normalises it), not the crop's own.
    stats_sample: np.ndarray | None = None

    @classmethod
    def from_scribbles(cls, image: np.ndarray, scribbles: np.ndarray, name: str = "") -> TrainingImage:
        return cls(image=image, annotations=np.asarray(scribbles), name=name)

    @classmethod
    def from_instances(cls, image: np.ndarray, instances: np.ndarray, name: str = "") -> TrainingImage:
        """Dense instance labels: every pixel is annotated, objects are class 2."""
        instances = np.asarray(instances)
        annotations = np.where(instances > 0, FIRST_CLASS, BACKGROUND).astype(np.uint8)
        mask = np.ones(instances.shape, dtype=bool)
        return cls(image=image, annotations=annotations, instances=instances, instance_mask=mask, name=name)

    @classmethod
    def from_annotations(
        cls, image: np.ndarray, annotations: np.ndarray, accepted: np.ndarray | None = None, name: str = "",
        *, source: str = "", plane: tuple = (),
    ) -> TrainingImage:
        """Scribbles plus accepted regions (see conventions.ACCEPTED_BACKGROUND) whose objects train the instance heads."""
        annotations = np.asarray(annotations)
        if accepted is None or not np.any(accepted):
            return cls(image=image, annotations=annotations, name=name, source=source, plane=plane)
        accepted = np.asarray(accepted)
        if accepted.shape != annotations.shape:
            raise UserInputError(f"{name or 'image'}: accepted regions and annotations differ in shape")
        known = accepted > 0
        instances = np.where(known, accepted.astype(np.int64) - ACCEPTED_BACKGROUND, 0)
        mask = known & ~cut_objects(instances, known)
        instances = np.where(mask, instances, 0)
        return cls(image=image, annotations=annotations, instances=instances, instance_mask=mask, name=name,
                   source=source, plane=plane)

    @property
    def label(self) -> str:
        return self.name or "image"

    def object_diameter(self) -> float | None:
        """Typical diameter of the objects whose outlines are known here (dense or accepted), else None."""
        if self.instances is None:
            return None
        return object_diameter(self.instances, self.instance_mask)

    def check(self) -> None:
        """Raise a UserInputError that says what is wrong with this pair, if anything."""
        if self.image.ndim != 3:
            raise UserInputError(f"{self.label}: expected a (C, H, W) image, got shape {self.image.shape}")
        if self.annotations.shape != self.image.shape[1:]:
            raise UserInputError(
                f"{self.label}: image is {self.image.shape[1]}x{self.image.shape[2]} but its labels are "
                f"{'x'.join(map(str, self.annotations.shape))}; they must have the same height and width"
            )
        if not np.issubdtype(self.annotations.dtype, np.integer):
            raise UserInputError(f"{self.label}: labels must be integers, got {self.annotations.dtype}")
        if self.annotations.min() < 0:
            raise UserInputError(f"{self.label}: labels must not be negative")
        if self.instances is not None and self.instances.shape != self.annotations.shape:
            raise UserInputError(f"{self.label}: instance labels and annotations differ in shape")


def cut_objects(instances: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Pixels of the objects that touch the edge of `known` inside the image (an accepted region's border).

    Such an object was accepted only for its part inside the region: its outline, centre and size
    beyond the edge are unknown, so it must not teach the instance heads that the region's straight
    edge is an object border (nor shrink the measured diameter). Its pixels still teach the classes.
    """
    known = np.asarray(known, bool)
    edge = known & ~ndimage.binary_erosion(known, border_value=1)
    ids = np.unique(instances[edge])
    ids = ids[ids > 0]
    return np.isin(instances, ids) if ids.size else np.zeros(known.shape, bool)


def annotated_planes(
    image,
    annotations,
    accepted=None,
    *,
    rgb: bool = False,
    channel_axis: int | None = None,
    name: str = "",
) -> list[TrainingImage]:
    """One TrainingImage per annotated 2D plane of an image (a layer's, a file's or a dataset's).

    `image` is (..., H, W), (..., H, W, 3|4) when `rgb`, or has channels at `channel_axis` (any axis);
    `annotations` (and `accepted`) are (..., H, W). Unannotated planes are skipped.
    """
    layout = ImageLayout.stored(np.shape(image), rgb=rgb, channel_axis=channel_axis, name=name or "image")
    return training_items(image, layout, annotations, accepted, name=name)


def training_items(image, layout: ImageLayout, annotations, accepted=None, *, name: str = "") -> list[TrainingImage]:
    """Training pairs of every annotated plane of `image` (read plane by plane; arrays are copies).

    Copies, because the user may go on painting while a trainer holds them. A plane above
    CROP_ABOVE_PIXELS (a lazy image bigger than memory, say) is read only inside the annotated
    bounding box plus TRAINING_CONTEXT, and a strided sample for its normalisation statistics.
    """
    annotations = np.asarray(annotations)
    if annotations.shape != layout.labels_shape:
        raise UserInputError(
            f"{name or 'image'}: image {tuple(layout.data_shape)} and annotations {tuple(annotations.shape)} "
            "do not match"
        )
    if accepted is not None and tuple(np.shape(accepted)) != layout.labels_shape:
        accepted = None  # a stale layer of another shape: its regions cannot be placed
    items = []
    big = int(np.prod(layout.plane_shape)) > CROP_ABOVE_PIXELS
    for plane in layout.planes_with_data(annotations):
        region = _annotated_region(annotations[plane], TRAINING_CONTEXT) if big else (slice(None), slice(None))
        plane_accepted = None if accepted is None else np.array(accepted[plane][region], copy=True)
        label = f"{name} {plane_label(plane)}" if plane else name
        item = TrainingImage.from_annotations(
            np.array(layout.image_plane(image, plane, region), copy=True),
            np.array(annotations[plane][region], copy=True),
            plane_accepted,
            name=label,
            source=name,
            plane=plane,
        )
        if big:
            stride = sample_stride(*layout.plane_shape)
            item.stats_sample = layout.image_plane(image, plane, (slice(None, None, stride),) * 2)
        items.append(item)
    return items


def labelled_box(plane: np.ndarray) -> tuple[slice, slice] | None:
    """The bounding box of the non-zero pixels of a 2D plane (None if there are none); columns are
    scanned only within the rows that hold any."""
    rows = np.flatnonzero(plane.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(plane[rows[0]:rows[-1] + 1].any(axis=0))
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def _annotated_region(annotations: np.ndarray, context: int) -> tuple[slice, slice]:
    """The bounding box of the annotated pixels of a (annotated) 2D plane, grown by `context` (clipped to the plane)."""
    rows, cols = labelled_box(annotations)
    h, w = annotations.shape
    return (slice(max(0, rows.start - context), min(h, rows.stop + context)),
            slice(max(0, cols.start - context), min(w, cols.stop + context)))


def label_counts(plane: np.ndarray) -> np.ndarray:
    """Pixels per label value (index = value) of a 2D plane of non-negative labels, counted inside the
    bounding box of its labelled pixels: a sparsely painted 16384^2 plane is counted in ~0.1 s, where
    counting all of it (a 2 GB index copy) froze the dock's status line for over a second."""
    plane = np.asarray(plane)
    box = labelled_box(plane)
    return np.zeros(1, np.intp) if box is None else np.bincount(plane[box].ravel())


def check_training_set(items: list[TrainingImage]) -> int:
    """Validate all pairs together and return the number of classes K (background included)."""
    if not items:
        raise UserInputError("no training images: add an image with annotations first")
    for item in items:
        item.check()
        limits.check_class_count(int(item.annotations.max(initial=0)), f"the labels of {item.label}")
    channels = {item.image.shape[0] for item in items}
    if len(channels) > 1:
        raise UserInputError(f"training images differ in channel count {sorted(channels)}; use images of one kind")
    present = set()
    for item in items:
        present.update(int(v) for v in np.unique(item.annotations))
    present.discard(UNANNOTATED)
    if not present:
        raise UserInputError(
            "the labels contain no annotated pixel: paint background (label 1) and at least one class (label 2+)"
        )
    if len(present) < 2:
        (only,) = present
        what = "background (1)" if only == BACKGROUND else f"class {only}"
        raise UserInputError(
            f"only one class is annotated ({what}): paint at least background (label 1) and one class (label 2+)"
        )
    return max(present)  # labels 1..K -> K classes


@dataclass
class PreparedImage:
    """A training image cropped to its annotations, normalised, with all targets precomputed."""

    image: np.ndarray  # (C, h, w) float32, normalised
    semantic: np.ndarray  # (h, w) int64, class index or IGNORE
    boundary: np.ndarray  # (h, w) float32
    distance: np.ndarray  # (h, w) float32
    instance_valid: np.ndarray  # (h, w) bool


def prepare(item: TrainingImage, normalisation: Normalisation, margin: int, factor: float = 1.0) -> PreparedImage:
    """Crop to the annotated bounding box plus `margin` (context), resample by `factor`, normalise, build targets.

    `margin` is in resampled pixels; targets are computed after resampling so borders stay one pixel wide.
    """
    stats = normalisation.statistics(item.image if item.stats_sample is None else item.stats_sample)
    annotated = item.annotations > 0
    rows = np.flatnonzero(annotated.any(axis=1))
    cols = np.flatnonzero(annotated.any(axis=0))
    if rows.size == 0:
        rows = cols = np.array([0])
    h, w = item.annotations.shape
    pad = int(np.ceil(margin / factor))
    y0, y1 = max(0, rows[0] - pad), min(h, rows[-1] + 1 + pad)
    x0, x1 = max(0, cols[0] - pad), min(w, cols[-1] + 1 + pad)
    crop = (slice(y0, y1), slice(x0, x1))
    shape = scaled_shape((y1 - y0, x1 - x0), factor)
    image = Normalisation.apply(resample(item.image[(slice(None), *crop)], shape), stats)
    annotations = resample(item.annotations[crop], shape, labels=True).astype(np.int64)
    semantic = np.where(annotations > 0, annotations - BACKGROUND, IGNORE)
    if item.instances is not None:
        instances = resample(item.instances[crop], shape, labels=True)
        known = np.ones(instances.shape, bool) if item.instance_mask is None else item.instance_mask[crop]
        valid = resample(known, shape, labels=True)
        instances = np.where(valid, instances, 0)
        boundary, distance = boundary_target(instances), distance_target(instances)
    else:
        valid = np.zeros(annotations.shape, bool)
        boundary = distance = np.zeros(annotations.shape, np.float32)
    return PreparedImage(image, semantic, boundary, distance, valid)


@dataclass
class Batch:
    """A batch of training patches as numpy arrays, ready to become tensors."""

    image: np.ndarray  # (B, C, P, P)
    semantic: np.ndarray  # (B, P, P)
    boundary: np.ndarray
    distance: np.ndarray
    instance_valid: np.ndarray


@dataclass
class PatchSampler:
    """Draws augmented patches centred on annotated pixels: each class, then each image, equally often.

    Sparse scribbles would otherwise be missed by uniform sampling, a rare class would be
    drowned out by background, and one large image would crowd out the small ones.
    Augmentation covers what varies between microscopes: orientation, object size
    (`scale_jitter`: log-uniform zoom up to that fraction), brightness, contrast, gamma,
    blur and noise (`intensity_jitter`).
    """

    images: list[PreparedImage]
    patch_size: int
    rng: np.random.Generator = field(default_factory=np.random.default_rng)
    annotated_fraction: float = 0.9
    scale_jitter: float = 0.25
    intensity_jitter: bool = True

    def __post_init__(self) -> None:
        centres: dict[int, list[np.ndarray]] = {}
        for index, prepared in enumerate(self.images):
            for cls in np.unique(prepared.semantic):
                if cls == IGNORE:
                    continue
                ys, xs = np.nonzero(prepared.semantic == cls)
                keep = self.rng.permutation(ys.size)[:MAX_CENTRES_PER_CLASS]
                coords = np.stack([np.full(keep.size, index), ys[keep], xs[keep]], axis=1)
                centres.setdefault(int(cls), []).append(coords)
        self._centres = [c for _, c in sorted(centres.items())]  # per class, one array per image

    def sample(self, batch_size: int) -> Batch:
        patches = [self._patch(*self._centre()) for _ in range(batch_size)]
        return Batch(*(np.stack(parts) for parts in zip(*patches)))

    def _centre(self) -> tuple[int, int, int]:
        if self.rng.random() < self.annotated_fraction:
            per_image = self._centres[self.rng.integers(len(self._centres))]
            coords = per_image[self.rng.integers(len(per_image))]
            index, y, x = coords[self.rng.integers(len(coords))]
            # jitter so the annotated pixel is not always in the middle
            half = self.patch_size // 2
            y += self.rng.integers(-half // 2, half // 2 + 1)
            x += self.rng.integers(-half // 2, half // 2 + 1)
            return int(index), int(y), int(x)
        index = int(self.rng.integers(len(self.images)))
        h, w = self.images[index].semantic.shape
        return index, int(self.rng.integers(h)), int(self.rng.integers(w))

    def _patch(self, index: int, cy: int, cx: int) -> tuple[np.ndarray, ...]:
        prepared = self.images[index]
        zoom = float(np.exp(self.rng.uniform(-1, 1) * np.log1p(self.scale_jitter))) if self.scale_jitter else 1.0
        p = self.patch_size
        q = max(8, int(round(p / zoom)))  # source window that becomes the patch
        h, w = prepared.semantic.shape
        y0 = int(np.clip(cy - q // 2, 0, max(0, h - q)))
        x0 = int(np.clip(cx - q // 2, 0, max(0, w - q)))
        window = (slice(y0, y0 + q), slice(x0, x0 + q))
        parts = [
            prepared.image[(slice(None), *window)],
            prepared.semantic[window],
            prepared.boundary[window],
            prepared.distance[window],
            prepared.instance_valid[window],
        ]
        if q != p:
            parts = _zoom_parts(parts, p / q)
        parts = _pad_to(parts, p)
        return self._augment([part[..., :p, :p] for part in parts])

    def _augment(self, parts: list[np.ndarray]) -> tuple[np.ndarray, ...]:
        k = int(self.rng.integers(4))
        flip = bool(self.rng.integers(2))
        out = []
        for part in parts:
            part = np.rot90(part, k, axes=(-2, -1))
            if flip:
                part = part[..., ::-1]
            out.append(np.ascontiguousarray(part))
        out[0] = self._intensity(out[0]) if self.intensity_jitter else out[0]
        gain = np.exp(self.rng.normal(0.0, 0.2))
        offset = self.rng.normal(0.0, 0.1)
        out[0] = (out[0] * gain + offset).astype(np.float32)
        return tuple(out)

    def _intensity(self, image: np.ndarray) -> np.ndarray:
        """Gamma, blur and noise, each on a share of the patches, at strengths seen between microscopes."""
        rng = self.rng
        if rng.random() < 0.5:
            image = np.clip(image, 0.0, None) ** np.exp(rng.normal(0.0, 0.3))
        if rng.random() < 0.2:
            image = ndimage.gaussian_filter(image, (0, *(2 * [rng.uniform(0.5, 1.5)])))
        if rng.random() < 0.3:
            image = image + rng.normal(0.0, rng.uniform(0.01, 0.1), image.shape)
        return image


def _zoom_parts(parts: list[np.ndarray], zoom: float) -> list[np.ndarray]:
    """Resample a patch and its targets: linear for the image and soft targets, nearest for labels and masks."""
    image, semantic, boundary, distance, valid = parts
    shape = scaled_shape(semantic.shape, zoom)
    return [
        resample(image, shape),
        resample(semantic, shape, labels=True),
        resample(boundary, shape),
        resample(distance, shape),
        resample(valid, shape, labels=True),
    ]


def _pad_to(parts: list[np.ndarray], size: int) -> list[np.ndarray]:
    """Pad patches of images smaller than the patch size: reflect the image, ignore the targets."""
    h, w = parts[1].shape
    if h >= size and w >= size:
        return parts
    pad = ((0, max(0, size - h)), (0, max(0, size - w)))
    image_mode = "reflect" if h > 1 and w > 1 and size - h < h and size - w < w else "edge"
    image = np.pad(parts[0], ((0, 0), *pad), mode=image_mode)
    semantic = np.pad(parts[1], pad, constant_values=IGNORE)
    rest = [np.pad(part, pad) for part in parts[2:]]
    return [image, semantic, *rest]
