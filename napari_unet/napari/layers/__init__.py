"""Translation between napari layers and the compute core's arrays.

Everything here is about *layers*: which Labels layers belong to which image (`roles`: by
metadata, then by name), class names and colours (`class_colours`), which axes of an image are
channels, stack planes or the two spatial axes (`layout`), which plane the viewer shows and
which part of it is in view (`view`), how to read and write a plane of a Labels layer without
repainting all of it (`pixels`), the paired Labels and probability layers (`paired`,
`probabilities`) and the training pairs in the viewer (`training`). No Qt widgets.

Axis roles (channels, stack planes, height and width) come from the core's
`functionals.layout.ImageLayout`; the paired Labels layers have the image's shape without
the channel / RGB axis, so one "plane" is one (H, W) slice of them.

Callers import the package (`from napari_unet.napari import layers as lb`) and use the names
below; each lives in the module that says what it is about.
"""

from napari_unet.napari.layers.class_colours import class_colormap, class_colors_of, class_names_of, set_class_features
from napari_unet.napari.layers.layout import (
    check_pair,
    default_channel_axis,
    image_data,
    image_plane,
    labels_scale_translate,
    layout_in,
    layout_of,
    stack_z_anisotropy,
)
from napari_unet.napari.layers.paired import paired_labels
from napari_unet.napari.layers.pixels import (
    check_planes_finite,
    is_lazy,
    plane_index,
    read_plane,
    refresh_pyramid,
    write_region,
    write_undoable,
)
from napari_unet.napari.layers.probabilities import paint_probabilities, show_probabilities
from napari_unet.napari.layers.roles import (
    channel_layer_names,
    find_paired,
    get_layer,
    image_layers,
    is_channel_stack,
    is_segmentable,
    meta,
    role_of,
    set_meta,
)
from napari_unet.napari.layers.training import training_items
from napari_unet.napari.layers.view import (
    camera_of,
    canvas_size,
    current_plane,
    displays_plane,
    last_shape,
    view_region,
    world_points_to_plane,
)

__all__ = [
    "camera_of", "canvas_size", "channel_layer_names", "check_pair", "check_planes_finite", "class_colormap", "class_colors_of",
    "class_names_of", "current_plane", "default_channel_axis", "displays_plane", "find_paired", "get_layer",
    "image_data", "image_layers", "image_plane", "is_channel_stack", "is_lazy", "is_segmentable",
    "labels_scale_translate", "last_shape", "layout_in", "layout_of", "meta", "paint_probabilities",
    "paired_labels", "plane_index", "read_plane", "refresh_pyramid", "role_of", "set_class_features", "set_meta",
    "show_probabilities", "stack_z_anisotropy", "training_items", "view_region", "world_points_to_plane",
    "write_region", "write_undoable",
]
