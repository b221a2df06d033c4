"""Freeze and thaw an idle environment's processes, as Lambda does between invocations.

Lambda freezes the execution environment when an invoke phase ends and thaws it for the next event
(https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtime-environment.html): code that runs after
the response without an extension keeping the phase open simply stops. Here the environment's cgroup
is frozen (``cgroup.freeze``: every process, those that left their process group too, without a
signal), or, without a cgroup, its process groups get SIGSTOP and SIGCONT. The freeze waits
:data:`FREEZE_DELAY` so that back-to-back invocations skip the pair (signals cost two SIGCHLDs and
their ``waitpid`` calls in the event loop), and it waits for telemetry still buffered: a frozen
subscriber cannot take its records. Under back-to-back load the timer is not re-armed per
invocation: it fires at most every :data:`FREEZE_DELAY`, and re-arms itself until the environment
has been idle that long.
"""

from __future__ import annotations

import asyncio
import logging
import signal as signals
from collections.abc import Callable

from lambdakit.emulator.telemetry import TelemetryHub

logger = logging.getLogger("lambdakit.sandbox")

#: An idle environment is frozen this long after its phase ends, unless work arrives first.
FREEZE_DELAY = 0.02


class Freezer:
    """Stops an idle environment's process groups and continues them for the next phase."""

    __slots__ = (
        "_enabled",
        "_idle",
        "_idle_at",
        "_loop",
        "_name",
        "_on_frozen",
        "_signal",
        "_telemetry",
        "_timer",
        "frozen",
    )

    def __init__(
        self,
        name: str,
        enabled: bool,
        signal: Callable[[int], None],
        idle: Callable[[], bool],
        telemetry: TelemetryHub,
        on_frozen: Callable[[], None] | None = None,
    ) -> None:
        self._on_frozen = on_frozen
        self._name = name
        self._enabled = enabled
        self._signal = signal
        self._idle = idle
        self._telemetry = telemetry
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._idle_at = 0.0
        self.frozen = False

    def freeze_soon(self) -> None:
        """Freeze after :data:`FREEZE_DELAY` of idleness."""
        if not self._enabled or self.frozen:
            return
        self._idle_at = self._loop.time()
        if self._timer is None:
            self._timer = self._loop.call_at(self._idle_at + FREEZE_DELAY, self._freeze)

    def _freeze(self) -> None:
        self._timer = None
        if not self._idle():
            return  # busy again: the end of that phase calls freeze_soon
        due = self._idle_at + FREEZE_DELAY
        if self._loop.time() < due:
            self._timer = self._loop.call_at(due, self._freeze)
            return
        if self._telemetry.busy:
            self._telemetry.flush()  # deliver first, freeze after
            self._timer = self._loop.call_later(FREEZE_DELAY, self._freeze)
            return
        self._signal(signals.SIGSTOP)
        self.frozen = True
        logger.debug("%s: frozen", self._name)
        if self._on_frozen is not None:
            self._on_frozen()

    def thaw(self) -> None:
        if not self.frozen:
            return
        self._signal(signals.SIGCONT)
        self.frozen = False
        logger.debug("%s: thawed", self._name)
