"""Label and layer conventions shared by the core, the widgets and the zarr IO.

Annotation (scribble) labels: 0 = not annotated (ignored by the loss),
1 = background, 2..K = the user's classes. Semantic predictions use the same
values (1..K) so they can be copied into annotations unchanged. Instance labels:
0 = background, every object its own positive id.
"""

from __future__ import annotations

UNANNOTATED = 0
BACKGROUND = 1
FIRST_CLASS = 2

DEFAULT_CLASS_NAMES = ("background", "object")

# Key under which napari_unet stores its own information in layer.metadata.
METADATA_KEY = "napari_unet"

# Roles a Labels layer can play, stored as layer.metadata[METADATA_KEY]["role"].
ROLE_ANNOTATIONS = "annotations"
ROLE_SEMANTIC = "semantic"
ROLE_INSTANCES = "instances"
ROLE_PROBABILITIES = "probabilities"
ROLE_ACCEPTED = "accepted"
ROLE_UNCERTAINTY = "uncertainty"  # an Image layer: where the model is unsure (0..255)
ROLE_SUGGESTIONS = "suggestions"  # a Shapes layer: outlines of the regions "Suggest next" showed

# The model file the export dock saves beside the datasets (the reader offers it back).
MODEL_FILE = "model.pt"

# Accepted-region labels: 0 = not accepted, 1 = accepted background, id + 1 = accepted object `id`.
# One layer thus records both where the user vouched for the prediction and which objects it holds.
ACCEPTED_BACKGROUND = 1

# Default RGBA colours for label values 1..K (background first), then cycled.
DEFAULT_CLASS_COLORS = (
    (0.55, 0.55, 0.55, 1.0),  # background: grey
    (1.0, 0.2, 0.2, 1.0),
    (0.2, 0.8, 0.2, 1.0),
    (0.2, 0.4, 1.0, 1.0),
    (1.0, 0.8, 0.1, 1.0),
    (0.9, 0.3, 0.9, 1.0),
    (0.1, 0.9, 0.9, 1.0),
)


def layer_name(image_name: str, role: str) -> str:
    """Name of the layer paired with `image_name` for a role, e.g. 'cells annotations'."""
    return f"{image_name} {role}"


def class_color(index: int) -> tuple[float, float, float, float]:
    """Default colour of the class at 0-based `index` (0 = background)."""
    return DEFAULT_CLASS_COLORS[index % len(DEFAULT_CLASS_COLORS)]


def label_value(class_index: int) -> int:
    """Label value painted for a 0-based class index (0 = background -> 1)."""
    return class_index + BACKGROUND


def class_index(label: int) -> int:
    """0-based class index of an annotation label value (1 -> 0)."""
    return label - BACKGROUND


TRANSPARENT = (0.0, 0.0, 0.0, 0.0)


def class_color_dict(colors, *, background_visible: bool = True) -> dict:
    """{label value: RGBA} for napari's DirectLabelColormap: 0 (not annotated) transparent,
    1..K the class colours (background optionally transparent, as in prediction overlays)."""
    color_dict: dict = {None: TRANSPARENT, UNANNOTATED: TRANSPARENT}
    for i, color in enumerate(colors):
        color_dict[label_value(i)] = tuple(color) if (i > 0 or background_visible) else TRANSPARENT
    return color_dict
