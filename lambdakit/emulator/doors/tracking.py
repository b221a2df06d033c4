"""Counts the invocations every door has accepted and not yet answered, for a graceful stop."""

from __future__ import annotations

import asyncio


class InFlight:
    """Invocations accepted by the doors whose caller is still waiting."""

    def __init__(self) -> None:
        self.count = 0
        self._drained = asyncio.Event()
        self._drained.set()
        self.accepting = True

    def started(self) -> None:
        self.count += 1
        self._drained.clear()

    def finished(self) -> None:
        self.count -= 1
        if not self.count:
            self._drained.set()

    async def drained(self) -> None:
        """Wait until every accepted invocation has been answered."""
        await self._drained.wait()
