"""Follow a viewer's layer list: one callback when layers are added, removed or reordered, or
when an event of any layer fires (its name, its metadata, ...)."""

from __future__ import annotations

from collections.abc import Callable


class LayerListWatch:
    """Calls `callback()` on every change of `viewer.layers` and on `layer_events` of each layer."""

    LIST_EVENTS = ("inserted", "removed", "moved", "reordered")

    def __init__(self, viewer, callback: Callable[[], None], layer_events: tuple[str, ...] = ("name",)) -> None:
        self.viewer = viewer
        self.callback = callback
        self.layer_events = layer_events
        for name in self.LIST_EVENTS:
            getattr(viewer.layers.events, name).connect(self._on_list_changed)
        for layer in viewer.layers:
            self._watch(layer)

    def _watch(self, layer) -> None:
        for name in self.layer_events:
            getattr(layer.events, name).connect(self._on_layer_event)

    def _on_list_changed(self, event=None) -> None:
        layer = getattr(event, "value", None)
        if layer is not None and getattr(event, "type", None) == "inserted":
            self._watch(layer)
        self.callback()

    def _on_layer_event(self, event=None) -> None:
        self.callback()

    def disconnect(self) -> None:
        """Stop following the viewer (its dock goes away); a viewer already gone is fine."""
        connections = [getattr(self.viewer.layers.events, name) for name in self.LIST_EVENTS]
        disconnects = [(event, self._on_list_changed) for event in connections]
        for layer in list(self.viewer.layers):
            disconnects += [(getattr(layer.events, name), self._on_layer_event) for name in self.layer_events]
        for event, slot in disconnects:
            try:
                event.disconnect(slot)
            except (TypeError, ValueError, RuntimeError):
                pass
