"""The execution environments of one function: scale out on demand, reuse warm, reap idle.

Theory of operation
-------------------
An invocation goes to the most recently idle environment (a stack, so that a steady load keeps
few environments warm and the rest can be reaped).  With none idle it waits in a bounded FIFO
queue, and the pool starts environments while fewer are starting than invocations wait and the
function's concurrency allows (after :data:`SCALE_OUT_DELAY`, 2 ms, when an environment that
is running an invocation may ask for its next first); whichever environment becomes ready
first takes the queue's head.  A full queue refuses with :class:`Throttled` (the Invoke API's
429).  An environment whose Init fails takes one waiting invocation down with it (Lambda returns
an init error to the invocation that caused the cold start); the others get new environments.

A sandbox reports that it is idle on the stack of its runtime's ``GET next``: the pool never
hands it work there, but schedules the hand-over on the event loop (:meth:`Pool._drain`), so
that no sandbox is re-entered while it is still handling a call.  Sandboxes are made by an
injectable factory, so the pool's decisions can be tested without processes.

A reload (``serve --watch``: the function's code changed, :mod:`lambdakit.emulator.watch`)
makes every environment the pool has *stale*: the idle ones and those still in Init are
stopped at once (the Shutdown phase, politely then firmly), those running an invocation finish
it and are stopped when they ask for the next one, and none of them takes new work, which
waits for, or starts, new environments.  One new environment is started at once (pre-warmed,
if the function had any), so the next invocation does not pay Init; stale environments count
against the function's concurrency until they are reaped, so that ``--concurrency 1`` (and
``--debug``) never runs two environments at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Protocol

from lambdakit.emulator import activity
from lambdakit.emulator.activity import Activity
from lambdakit.emulator.config import FunctionConfig, ServiceConfig
from lambdakit.emulator.containment import UNCONTAINED, Containment
from lambdakit.emulator.invocation import Invocation, platform_error
from lambdakit.emulator.lifecycle import SandboxState
from lambdakit.emulator.logs import LogSink
from lambdakit.emulator.managed_sandbox import ManagedSandbox
from lambdakit.emulator.sandbox import Sandbox
from lambdakit.emulator.sandbox_base import SandboxListener
from lambdakit.emulator.sandbox_machine import InitFailure
from lambdakit.emulator.spindown import SPINDOWN_GRACE
from lambdakit.wire import errors

logger = logging.getLogger("lambdakit.pool")


#: How long an invocation that finds every environment busy waits for one of them to ask for
#: its next event before the pool starts another (seconds).  A caller that invokes again as soon
#: as it has its answer is usually a little ahead of the runtime's ``next``; starting an
#: environment then cost a cold start nobody needed, and blocked the event loop while the
#: process was spawned (several ms).  Lambda, too, keeps a steady sequential caller on one
#: environment.
SCALE_OUT_DELAY = 0.002
#: The states of an environment that runs an invocation (and so may soon ask for its next).
_RUNNING = frozenset({SandboxState.INVOKING, SandboxState.RESPONDED})


class Throttled(Exception):
    """Every environment is busy and the wait queue is full."""


class Environment(Protocol):
    """What the pool needs of a sandbox."""

    name: str
    idle_since: float

    @property
    def state(self) -> SandboxState: ...

    @property
    def has_slot(self) -> bool:
        """Whether it can take an invocation now."""
        ...

    @property
    def in_flight(self) -> int: ...

    @property
    def closed(self) -> asyncio.Future[None]: ...

    async def start(self) -> None: ...

    def invoke(self, invocation: Invocation) -> None: ...

    def stop(self, grace: float = ...) -> None: ...

    def kill(self) -> None: ...


#: Makes the sandbox numbered ``number`` of a pool.
SandboxFactory = Callable[[SandboxListener, int], Environment]


class Pool:
    """All sandboxes of one function."""

    def __init__(
        self,
        service: ServiceConfig,
        function: FunctionConfig,
        sink: LogSink,
        host_environ: Mapping[str, str],
        factory: SandboxFactory | None = None,
        activity: Activity | None = None,
        containment: Containment = UNCONTAINED,
    ) -> None:
        self.function = function
        #: The service's event stream (throttles here; the sandboxes publish the rest).
        self.activity = activity or Activity()

        def sandbox(listener: SandboxListener, number: int) -> Environment:
            kind = Sandbox if function.max_concurrency is None else ManagedSandbox
            return kind(
                service, function, sink, listener, host_environ, number, self.activity, containment
            )

        self._factory = factory or sandbox
        #: Invocations one environment takes at once (Managed Instances: several).
        self._per_environment = function.max_concurrency or 1
        self.sandboxes: set[Environment] = set()
        self._idle: list[Environment] = []
        self._queue: deque[Invocation] = deque()
        #: Sandboxes whose Init has not finished; each will take one queued invocation.
        self._starting: set[Environment] = set()
        #: Environments started before the last reload: they take no new work.
        self._stale: set[Environment] = set()
        #: Start one environment as soon as the concurrency allows (after a reload).
        self._prewarm = False
        self._numbered = 0
        self._stopping = False
        self._drain_scheduled = False
        self._scale_timer: asyncio.TimerHandle | None = None

    # Work -----------------------------------------------------------------------------------------
    def submit(self, invocation: Invocation, *, bounded: bool = True) -> None:
        """Run ``invocation`` now, queue it, or raise :class:`Throttled`.

        ``bounded=False`` is for a door that bounds its own backlog (the AMQP door's prefetch):
        the invocation waits however full the queue is, and is refused only while stopping.
        """
        if self._stopping:
            raise Throttled("the service is shutting down")
        if not self._queue:  # otherwise those waiting go first
            while self._idle:
                sandbox = self._idle[-1]
                if not sandbox.has_slot:
                    self._idle.pop()
                    continue
                sandbox.invoke(invocation)
                if not sandbox.has_slot:  # a Managed Instances one may take more
                    self._idle.pop()
                return
        covered = (len(self._starting) + self._capacity_to_start()) * self._per_environment
        if bounded and len(self._queue) >= self.function.max_queue + covered:
            self.activity.publish(activity.Throttled(self.function.name, time.time()))
            raise Throttled(f"{self.function.name}: all environments busy and queue full")
        self._queue.append(invocation)
        if len(self.sandboxes) >= self.function.concurrency:
            pass  # none may start: it waits for one to ask for its next (no timer to arm)
        elif self._may_come_back():
            self._scale_soon()  # an environment about to ask for its next may take it
        else:
            try:
                self._scale()
            except BaseException:
                self._queue.remove(invocation)
                raise
        self._drain_soon()

    def _may_come_back(self) -> bool:
        """Some environment runs an invocation and will take new work when it asks for next:
        not one that is stopping, dead or stale (waiting for those would be for nothing), nor a
        Managed Instances one on the idle stack (it has a free slot already)."""
        stale, idle = self._stale, self._idle
        return any(s.state in _RUNNING and s not in stale and s not in idle for s in self.sandboxes)

    def _scale_soon(self) -> None:
        if self._scale_timer is None:
            self._scale_timer = asyncio.get_running_loop().call_later(
                SCALE_OUT_DELAY, self._scale_now
            )

    def _scale_now(self) -> None:
        """Start what the queue still needs :data:`SCALE_OUT_DELAY` after it began to wait."""
        self._scale_timer = None
        # An environment that asked for its next in this same loop iteration, before this timer
        # ran, takes the work first: a start now would be the cold start the wait is to avoid.
        self._drain()
        try:
            self._scale()
        except Exception as exc:  # no caller to answer: those waiting learn it
            logger.exception("%s: could not start an environment", self.function.name)
            while self._queue and not self._starting:
                invocation = self._queue.popleft()
                detail = f"could not start an environment: {exc}"
                invocation.resolve(
                    platform_error(errors.SANDBOX_FAILURE, invocation.request_id, detail)
                )

    def _capacity_to_start(self) -> int:
        """Environments that may still be started (each takes one invocation off the queue)."""
        return max(0, self.function.concurrency - len(self.sandboxes))

    def _scale(self) -> None:
        while (
            not self._stopping
            and (self._prewarm or len(self._starting) * self._per_environment < len(self._queue))
            and len(self.sandboxes) < self.function.concurrency
        ):
            self._prewarm = False
            self._numbered += 1
            sandbox = self._factory(self, self._numbered)
            self.sandboxes.add(sandbox)
            self._starting.add(sandbox)
            asyncio.get_running_loop().create_task(sandbox.start(), name=f"start {sandbox.name}")

    # SandboxListener ------------------------------------------------------------------------------
    def sandbox_idle(self, sandbox: Environment) -> None:
        self._starting.discard(sandbox)
        if self._stopping:
            sandbox.stop()
            return
        if sandbox in self._stale:  # its code is old: no new work; stopped once it is done
            if sandbox in self._idle:
                self._idle.remove(sandbox)
            if not sandbox.in_flight:
                sandbox.stop()
            return
        if sandbox in self._idle:  # a Managed Instances one with another free slot
            self._idle.remove(sandbox)
        self._idle.append(sandbox)
        self._drain_soon()

    def _drain_soon(self) -> None:
        if self._queue and self._idle and not self._drain_scheduled:
            self._drain_scheduled = True
            asyncio.get_running_loop().call_soon(self._drain)

    def _drain(self) -> None:
        """Hand queued invocations to idle sandboxes, oldest first, off any sandbox's stack."""
        self._drain_scheduled = False
        while self._queue and self._idle:
            sandbox = self._idle[-1]
            if not sandbox.has_slot:
                self._idle.pop()
                continue
            invocation = self._queue.popleft()
            try:
                sandbox.invoke(invocation)
            except Exception as exc:
                logger.exception("%s: could not hand %s over", sandbox.name, invocation)
                if not invocation.done:
                    invocation.resolve(
                        platform_error(errors.SANDBOX_FAILURE, invocation.request_id, str(exc))
                    )
                sandbox.stop()

    def sandbox_dead(self, sandbox: Environment, failure: InitFailure | None) -> None:
        self.sandboxes.discard(sandbox)
        self._stale.discard(sandbox)
        if sandbox in self._idle:
            self._idle.remove(sandbox)
        if sandbox in self._starting:
            self._starting.discard(sandbox)
            if failure is not None and self._queue:
                invocation = self._queue.popleft()
                invocation.resolve(failure.result_for(invocation.request_id))
        self._scale()

    # Reload ---------------------------------------------------------------------------------------
    def reload(self) -> None:
        """The function's code changed: new environments for new work, old ones stopped.

        Invocations running finish in the environment they started in; the idle environments
        and those still in Init are stopped now; one new environment is started at once if the
        function had any (see the module's docstring).
        """
        if self._stopping:
            return
        had_environments = bool(self.sandboxes)
        self._stale.update(self.sandboxes)
        for sandbox in list(self._starting):  # its Init may have read the old code
            self._starting.discard(sandbox)
            sandbox.stop()
        for sandbox in list(self._idle):
            self._idle.remove(sandbox)
            if not sandbox.in_flight:
                sandbox.stop()
        self._prewarm = had_environments
        self._scale()

    @property
    def stale(self) -> int:
        """Environments left from before the last reload, finishing their invocations."""
        return len(self._stale)

    # Housekeeping ---------------------------------------------------------------------------------
    def reap_idle(self) -> None:
        """Stop environments idle for longer than the function's ``idle_timeout``."""
        limit = time.monotonic() - self.function.idle_timeout
        for sandbox in [s for s in self._idle if not s.in_flight and s.idle_since < limit]:
            self._idle.remove(sandbox)
            logger.debug("%s: idle for %.0f s, stopping", sandbox.name, self.function.idle_timeout)
            sandbox.stop()

    @property
    def busy(self) -> int:
        """Environments running or starting work, plus invocations waiting for one."""
        idle = sum(1 for s in self._idle if s.state is SandboxState.IDLE and not s.in_flight)
        return len(self.sandboxes) - idle + len(self._queue)

    def kill(self) -> None:
        """SIGKILL every environment's processes now (a forced shutdown)."""
        for sandbox in self.sandboxes:
            sandbox.kill()

    async def stop(self, grace: float = SPINDOWN_GRACE) -> None:
        """Stop every environment (SIGTERM, ``grace``, SIGKILL) and wait until all are reaped."""
        self._stopping = True
        if self._scale_timer is not None:
            self._scale_timer.cancel()
            self._scale_timer = None
        while self._queue:
            invocation = self._queue.popleft()
            invocation.resolve(
                platform_error(
                    errors.SANDBOX_FAILURE,
                    invocation.request_id,
                    "the local Lambda service stopped before an environment was ready",
                )
            )
        sandboxes = list(self.sandboxes)
        for sandbox in sandboxes:
            sandbox.stop(grace)
        if sandboxes:
            await asyncio.gather(*(s.closed for s in sandboxes))
