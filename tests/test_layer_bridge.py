"""The napari layer bridge (napari_unet.napari.layers, linked_undo) on a viewer model, without Qt."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")

from napari.components import ViewerModel  # noqa: E402

from napari_unet import conventions as c  # noqa: E402
from napari_unet.errors import UserInputError  # noqa: E402
from napari_unet.napari import layers as lb  # noqa: E402
from napari_unet.napari.linked_undo import LinkedUndo  # noqa: E402


@pytest.fixture
def viewer():
    return ViewerModel()


def test_pairs_are_found_by_metadata_then_by_name_and_metadata_is_merged(viewer):
    image = viewer.add_image(np.zeros((2, 3, 16, 16)), name="cells", scale=(1, 5, 0.5, 0.5))
    by_name = viewer.add_labels(np.zeros((2, 16, 16), np.uint8), name="cells annotations",
                                metadata={"other plugin": 1})
    assert lb.find_paired(viewer, "cells", c.ROLE_ANNOTATIONS) is by_name and lb.role_of(by_name) is None
    lb.set_meta(by_name, role=c.ROLE_ANNOTATIONS, image="cells", channel_axis=1)
    assert by_name.metadata["other plugin"] == 1 and lb.meta(by_name)["channel_axis"] == 1
    layout = lb.layout_in(viewer, image)  # the channel axis stored with the annotations
    assert (layout.channel_axis, layout.labels_shape) == (1, (2, 16, 16))
    assert lb.labels_scale_translate(image, layout) == ([1.0, 0.5, 0.5], [0.0, 0.0, 0.0])
    assert lb.image_plane(image, layout, (1,)).shape == (3, 16, 16)
    semantic = lb.paired_labels(viewer, image, c.ROLE_SEMANTIC, layout, dtype=np.uint8)
    assert (semantic.name, lb.meta(semantic), semantic.data.dtype) == \
        ("cells semantic", {"role": c.ROLE_SEMANTIC, "image": "cells"}, np.uint8)
    assert tuple(semantic.scale) == (1.0, 0.5, 0.5)
    assert lb.paired_labels(viewer, image, c.ROLE_SEMANTIC, layout) is semantic  # found, not added twice
    wrong = viewer.add_labels(np.zeros((4, 4), np.uint32), name="cells instances")
    with pytest.raises(UserInputError, match="has shape"):
        lb.paired_labels(viewer, image, c.ROLE_INSTANCES, layout)
    assert viewer.layers["cells instances"] is wrong


def test_class_colours_round_trip_through_the_colormap(viewer):
    colors = [(0.5, 0.5, 0.5, 1.0), (1.0, 0.0, 0.0, 1.0), (0.0, 0.0, 1.0, 1.0)]
    layer = viewer.add_labels(np.zeros((4, 4), np.uint8), colormap=lb.class_colormap(colors))
    assert lb.class_colors_of(layer, 3) == colors  # read back from the colormap: nothing stored yet
    overlay = lb.class_colormap(colors, background_visible=False)
    assert overlay.color_dict[1][3] == 0 and overlay.color_dict[0][3] == 0
    assert lb.class_names_of(None) == list(c.DEFAULT_CLASS_NAMES)


def test_writes_repaint_a_region_and_undoable_writes_undo(viewer):
    layer = viewer.add_labels(np.zeros((3, 8, 8), np.uint8))
    values = np.full((2, 3), 4, np.uint8)
    lb.write_region(layer, (1,), values, (slice(2, 4), slice(0, 3)))
    assert layer.data[1, 2:4, :3].min() == 4 and np.count_nonzero(layer.data) == 6
    new = lb.read_plane(layer, (2,)).copy()
    new[0, 0] = 9
    assert lb.write_undoable(layer, (2,), new) == 1
    assert lb.write_undoable(layer, (2,), new) == 0  # nothing changed: no history step
    layer.undo()
    assert layer.data[2, 0, 0] == 0 and layer.data[1, 2, 0] == 4  # region writes are not in the history


def test_training_items_of_a_viewer(viewer):
    image = viewer.add_image(np.random.default_rng(0).random((2, 16, 16)), name="stack")
    with pytest.raises(UserInputError, match="no annotations yet"):
        lb.training_items(viewer)
    annotations = viewer.add_labels(np.zeros((2, 16, 16), np.uint8), name="stack annotations")
    with pytest.raises(UserInputError, match="empty"):
        lb.training_items(viewer)
    annotations.data[1, :3] = 1
    annotations.data[1, -3:] = 2
    (item,) = lb.training_items(viewer)
    assert (item.source, item.plane, item.image.shape) == ("stack", (1,), (1, 16, 16))
    np.testing.assert_array_equal(item.image[0], image.data[1])


def test_probability_layers_one_per_class(viewer):
    image = viewer.add_image(np.zeros((2, 8, 8)), name="s")
    layout = lb.layout_in(viewer, image)
    probabilities = np.stack([np.full((8, 8), 0.25), np.full((8, 8), 0.75)]).astype(np.float32)
    lb.paint_probabilities(viewer, image, layout, (1,), probabilities, ["background", "cell"])
    layer = viewer.layers["s probability cell"]
    assert lb.role_of(layer) == c.ROLE_PROBABILITIES and layer not in lb.image_layers(viewer)
    assert layer.data[1].min() == 0.75 and layer.data[0].max() == 0


def test_linked_undo_undoes_and_redoes_the_follower_with_the_leader(viewer):
    leader = viewer.add_labels(np.zeros((8, 8), np.uint8), name="annotations")
    follower = viewer.add_labels(np.zeros((8, 8), np.uint32), name="accepted")
    changes = []
    links = LinkedUndo(on_change=lambda: changes.append(1))
    assert not links.link_last(leader, follower)  # no history yet: nothing to link
    with leader.block_history(), follower.block_history():
        lb.write_undoable(follower, (), np.full((8, 8), 3, np.uint32))
        lb.write_undoable(leader, (), np.full((8, 8), 2, np.uint8))
    assert links.link_last(leader, follower)
    leader.undo()
    assert not leader.data.any() and not follower.data.any() and changes == [1]
    leader.redo()
    assert leader.data.min() == 2 and follower.data.min() == 3 and changes == [1, 1]
    # a later change of the follower is not undone by the leader's older step
    lb.write_undoable(follower, (), np.zeros((8, 8), np.uint32))
    leader.undo()
    assert not leader.data.any() and not follower.data.any()
    follower.undo()
    assert follower.data.min() == 3
