"""A deadline that is cheap to move: one timer, re-armed lazily.

An environment has one deadline at a time (Init's limit, then each invocation's timeout), set
and cleared on every invocation.  Arming and cancelling a loop timer each time is a measurable
part of a warm invocation's cost; here setting a later deadline only records it, and the timer,
when it fires early, re-arms itself for the recorded time.  Only a deadline earlier than the
armed timer re-arms it at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class Deadline:
    """Calls ``on_expiry`` once the deadline set last passes, unless it is cleared first."""

    __slots__ = ("_at", "_loop", "_on_expiry", "_timer", "_timer_at")

    def __init__(self, loop: asyncio.AbstractEventLoop, on_expiry: Callable[[], None]) -> None:
        self._loop = loop
        self._on_expiry = on_expiry
        self._at: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0

    def set(self, seconds: float) -> None:
        """Expire ``seconds`` from now (replacing any deadline set before)."""
        at = self._loop.time() + seconds
        self._at = at
        if self._timer is None or at < self._timer_at:
            self._arm(at)

    def clear(self) -> None:
        self._at = None

    def cancel(self) -> None:
        """Clear the deadline and drop the timer (the environment is going away)."""
        self._at = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm(self, at: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = at
        self._timer = self._loop.call_at(at, self._fire)

    def _fire(self) -> None:
        self._timer = None
        at = self._at
        if at is None:
            return
        if self._loop.time() < at:
            self._arm(at)
            return
        self._at = None
        self._on_expiry()
