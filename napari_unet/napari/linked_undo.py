"""Undo two Labels layers' changes together: Ctrl+Z in one also undoes what was written with it in another.

"Accept" writes the annotations layer (what the user undoes with Ctrl+Z) and the accepted
layer (read-only to the user) in one action; undoing only the first would leave accepted
training data behind. napari keeps one history per layer, so the link watches the leader's
history (napari emits `set_data` after an undo or redo) and replays the follower's matching
step. Uses napari's private `_undo_history` / `_redo_history`; where they are missing, the
link does nothing (Ctrl+Z then undoes the leader only, as before).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass

from napari.layers import Labels


def _holds(history, atom) -> bool:
    return any(any(a is atom for a in item) for item in history)


def _last_step(layer: Labels, which: str):
    history = getattr(layer, which, None)
    return history[-1] if history else None


@dataclass
class _Link:
    leader: weakref.ref
    follower: weakref.ref
    leader_atom: object
    follower_atom: object
    applied: bool = True


class LinkedUndo:
    """Pairs of (leader step, follower step) that undo and redo together."""

    def __init__(self, on_change: Callable[[], None] | None = None) -> None:
        self._links: list[_Link] = []
        self._watched: weakref.WeakSet = weakref.WeakSet()
        self._on_change = on_change or (lambda: None)

    def link_last(self, leader: Labels, follower: Labels) -> bool:
        """Link the newest undo step of `leader` with the newest of `follower`; False if either has none."""
        lead, follow = _last_step(leader, "_undo_history"), _last_step(follower, "_undo_history")
        if not lead or not follow:
            return False
        self._links = [link for link in self._links if link.leader() is not None and link.follower() is not None]
        self._links.append(_Link(weakref.ref(leader), weakref.ref(follower), lead[0], follow[0]))
        if leader not in self._watched:
            self._watched.add(leader)
            leader.events.set_data.connect(self._sync)
        return True

    def _sync(self, event=None) -> None:
        leader = getattr(event, "source", None)
        changed = False
        for link in self._links:
            follower = link.follower()
            if link.leader() is not leader or follower is None:
                continue
            if link.applied and _holds(getattr(leader, "_redo_history", ()), link.leader_atom):
                step = _last_step(follower, "_undo_history")
                if step and any(a is link.follower_atom for a in step):
                    follower.undo()
                    changed = True
                link.applied = False
            elif not link.applied and _holds(getattr(leader, "_undo_history", ()), link.leader_atom):
                step = _last_step(follower, "_redo_history")
                if step and any(a is link.follower_atom for a in step):
                    follower.redo()
                    changed = True
                link.applied = True
        if changed:
            self._on_change()
