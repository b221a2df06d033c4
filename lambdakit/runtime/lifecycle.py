"""The runtime process's lifecycle, as one transition table.

    init --loaded--> idle --event--> invoking --posted--> after_response --done--> idle
    init --init_failed--> failed

``idle`` is the blocking ``GET next``; ``after_response`` runs the queued tasks before the next
``GET next`` (Lambda keeps the environment thawed until then).
"""

from __future__ import annotations

INIT = "init"
IDLE = "idle"
INVOKING = "invoking"
AFTER_RESPONSE = "after_response"
FAILED = "failed"

TRANSITIONS: dict[tuple[str, str], str] = {
    (INIT, "loaded"): IDLE,
    (INIT, "init_failed"): FAILED,
    (IDLE, "event"): INVOKING,
    (INVOKING, "posted"): AFTER_RESPONSE,
    (AFTER_RESPONSE, "done"): IDLE,
}


class LifecycleError(Exception):
    """An event that is not allowed in the current state."""


class Lifecycle:
    __slots__ = ("state",)

    def __init__(self) -> None:
        self.state = INIT

    def fire(self, event: str) -> str:
        try:
            self.state = TRANSITIONS[self.state, event]
        except KeyError:
            raise LifecycleError(
                f"event {event!r} is not allowed in state {self.state!r}"
            ) from None
        return self.state

    def __repr__(self) -> str:
        return f"Lifecycle(state={self.state!r})"
