"""Counts the invocations every door has accepted and not yet answered, for a graceful stop."""

from __future__ import annotations

import asyncio
import enum
import logging

from lambdakit.emulator.invocation import Invocation
from lambdakit.emulator.pool import Pool, Throttled

logger = logging.getLogger("lambdakit.doors")


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


class Submitted(enum.Enum):
    """What became of an invocation a door handed to its function's pool."""

    RUNNING = "running"  # running or queued: its ``on_done`` will answer (and count it done)
    THROTTLED = "throttled"  # the function's queue is full, or the service is stopping
    FAILED = "failed"  # a bug or an environment problem; logged


def submit_counted(pool: Pool, in_flight: InFlight, invocation: Invocation) -> Submitted:
    """Hand ``invocation`` to ``pool``, counted in flight until its ``on_done`` calls
    :meth:`InFlight.finished` (counted out at once if it never started)."""
    in_flight.started()
    try:
        pool.submit(invocation)
    except Throttled:
        in_flight.finished()
        return Submitted.THROTTLED
    except Exception:  # a bug or an environment problem: answer, never hang
        logger.exception("could not start invocation %s", invocation.request_id)
        in_flight.finished()
        return Submitted.FAILED
    return Submitted.RUNNING
