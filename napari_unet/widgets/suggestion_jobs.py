"""The "Suggest next" half of the controller: the most uncertain region not yet annotated or accepted.

`SuggestionJobs` is mixed into `controller.Controller`. It ranks the planes already predicted
(their uncertainty is cached with the network outputs, computed in the prediction worker), so
a press costs a few block sums per cached plane and never runs the network; the ranking and
the memory of what was suggested are the core's `functionals.suggestions.SuggestionWalk`.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from napari.layers import Image

from napari_unet import conventions as c
from napari_unet.errors import UserInputError
from napari_unet.functionals.layout import plane_label
from napari_unet.functionals.suggestions import Region
from napari_unet.functionals.uncertainty import uncertainty_map
from napari_unet.napari import guidance
from napari_unet.napari import layers as lb


class SuggestionJobs:
    """Suggest next (part of Controller)."""

    def suggest_next(self) -> Region:
        """Show (camera, plane, outline) the most uncertain region never suggested before; return it."""
        planes = list(self._suggestion_candidates())
        if not planes:
            raise UserInputError("nothing predicted yet: predict (Shift+R) first; 'Suggest next' then shows "
                                 "where the model is least sure")
        region = self.suggestions.next(planes)
        if region is None:
            n = len(self.suggestions.suggested)
            self.suggestions.reset()
            region = self.suggestions.next(planes)
            if region is not None:  # with nothing left open, "starting over" would be a false promise
                self.notify("info", f"all {n} open regions of the predicted planes were suggested once: starting "
                                    "over (predict other planes or images for new ones)")
        if region is None:
            raise UserInputError("every predicted region is already annotated or accepted: predict another "
                                 "plane or image")
        image = lb.get_layer(self.viewer, region.image, Image)
        layout = lb.layout_in(self.viewer, image)
        guidance.show_region(self.viewer, image, layout, region)
        guidance.outline_suggestion(self.viewer, image, layout, region)
        guidance.show_uncertainty(self.viewer, image, layout)  # why here: brightest where the model is unsure
        where = ", ".join(filter(None, [f"'{image.name}'", plane_label(region.plane)]))
        self.notify("info", f"annotate here next: {where}, rows {region.top}-{region.bottom}, columns "
                            f"{region.left}-{region.right} (uncertainty {region.score:.2f})")
        self.suggestion_shown.emit(region)
        return region

    def _suggestion_candidates(self) -> Iterator[tuple[str, tuple, np.ndarray, np.ndarray]]:
        """(image, plane, uncertainty, done) of every predicted plane of every open image."""
        for image in lb.image_layers(self.viewer):
            layout = lb.layout_in(self.viewer, image)
            done_layers = [layer for role in (c.ROLE_ANNOTATIONS, c.ROLE_ACCEPTED)
                           if (layer := self.paired(role, image)) is not None
                           and tuple(layer.data.shape) == layout.labels_shape]
            for plane in self.session.cache.planes(image.name):
                entry = self.session.cache.get(image.name, plane)
                uncertainty = entry.uncertainty if entry.uncertainty is not None else uncertainty_map(entry.prediction)
                if uncertainty.shape != layout.plane_shape:
                    continue
                done = np.zeros(layout.plane_shape, bool)
                for layer in done_layers:
                    done |= lb.read_plane(layer, plane) != 0
                yield image.name, plane, uncertainty, done
