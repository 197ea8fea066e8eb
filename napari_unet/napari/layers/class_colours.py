"""Class names and colours of an annotations layer, as napari colormaps and features."""

from __future__ import annotations

from napari.layers import Labels
from napari.utils.colormaps import DirectLabelColormap

from napari_unet import conventions as c
from napari_unet.napari.layers.roles import meta


def class_names_of(layer: Labels | None) -> list[str]:
    names = list(meta(layer).get("class_names") or []) if layer is not None else []
    return names or list(c.DEFAULT_CLASS_NAMES)


def class_colors_of(layer: Labels | None, n: int) -> list[tuple]:
    """RGBA colours of classes 0..n-1 (label values 1..n): stored ones, else the colormap's, else defaults."""
    stored = list(meta(layer).get("class_colors") or []) if layer is not None else []
    colors = []
    for i in range(n):
        if i < len(stored):
            colors.append(tuple(float(v) for v in stored[i]))
        elif layer is not None and isinstance(layer.colormap, DirectLabelColormap) and c.label_value(i) in layer.colormap.color_dict:
            colors.append(tuple(float(v) for v in layer.colormap.color_dict[c.label_value(i)]))
        else:
            colors.append(c.class_color(i))
    return colors


def class_colormap(colors: list[tuple], *, background_visible: bool = True) -> DirectLabelColormap:
    """0 (not annotated) transparent, 1..K the class colours; background optionally transparent."""
    return DirectLabelColormap(color_dict=c.class_color_dict(colors, background_visible=background_visible))


def set_class_features(layer: Labels, names: list[str]) -> None:
    """Name each label value in the layer's features, so napari's status bar names the class under the cursor."""
    values = range(c.label_value(len(names)))
    layer.features = {"index": list(values),
                      "class": ["not annotated"] + [str(name) for name in names]}
