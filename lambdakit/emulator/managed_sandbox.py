"""One Lambda Managed Instances environment: several invocations at once in one runtime.

Theory of operation
-------------------
The function's ``max_concurrency`` setting turns its environments into Managed Instances ones
(https://docs.aws.amazon.com/lambda/latest/dg/lambda-managed-instances.html): the runtime sees
``AWS_LAMBDA_MAX_CONCURRENCY`` and ``AWS_LAMBDA_INITIALIZATION_TYPE=lambda-managed-instances``,
runs that many workers, and each worker's ``GET next`` may be given an invocation while others
run.  :class:`ManagedSandbox` is the I/O shell around
:class:`~lambdakit.emulator.managed_machine.ManagedMachine`: it holds the workers' ``next``
calls, delivers an invocation on the longest-waiting one, times each invocation out on its own,
writes START / END / REPORT and the telemetry of each, and tells the pool whenever a worker
waits again (the pool hands out work while :attr:`ManagedSandbox.has_slot`).

As on Lambda, what differs from an on-demand environment:

* nothing is frozen between invocations (others may be running);
* an invocation ends when its result is posted: the Runtime API cannot tell which worker runs
  what afterwards, so there is no after-response part in its duration;
* extensions get no INVOKE events (registering for them is refused), only SHUTDOWN; Telemetry
  API subscriptions need schema 2025-01-29, and there is no Logs API and no
  ``platform.runtimeDone``;
* a timeout fails that invocation alone; a process exiting fails every invocation in flight and
  the environment is replaced, as is one whose every worker is still stuck in an invocation that
  timed out (:data:`STUCK_GRACE` later), so that no caller waits for it forever.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

from lambdakit.emulator import activity as states
from lambdakit.emulator import runtime_api
from lambdakit.emulator.activity import Activity
from lambdakit.emulator.config import FunctionConfig, ServiceConfig
from lambdakit.emulator.containment import UNCONTAINED, Containment
from lambdakit.emulator.invocation import Invocation, InvocationResult, platform_error
from lambdakit.emulator.lifecycle import SandboxEvent, SandboxState
from lambdakit.emulator.logs import LogSink, Report
from lambdakit.emulator.managed_machine import ManagedMachine
from lambdakit.emulator.sandbox_base import SandboxBase, SandboxListener
from lambdakit.emulator.sandbox_machine import (
    GONE,
    Accepted,
    Delivered,
    Held,
    InitEnded,
    NextOutcome,
    ResultOutcome,
)
from lambdakit.emulator.spindown import SPINDOWN_GRACE
from lambdakit.wire import errors

#: Seconds after a timeout before an environment with no free worker and nothing in flight (all
#: its workers stuck in timed-out invocations) is replaced.
STUCK_GRACE = 1.0


class ManagedSandbox(SandboxBase):
    """One execution environment running up to ``function.max_concurrency`` invocations."""

    _machine: ManagedMachine
    managed = True

    def __init__(
        self,
        service: ServiceConfig,
        function: FunctionConfig,
        sink: LogSink,
        listener: SandboxListener,
        host_environ: Mapping[str, str],
        number: int,
        activity: Activity,
        containment: Containment = UNCONTAINED,
    ) -> None:
        limit = function.max_concurrency or 1
        self._machine = ManagedMachine(f"{function.name}#{number}", limit)
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._started: dict[str, float] = {}
        #: The invocation that found the environment cold: its REPORT has the Init Duration.
        self._cold_request = ""
        super().__init__(
            service, function, sink, listener, host_environ, number, activity, containment
        )

    def runtime_target(self) -> runtime_api.RuntimeApiTarget:
        return self

    def freezes(self) -> bool:
        return False  # other invocations may be running

    @property
    def has_slot(self) -> bool:
        return self._machine.free_slots > 0

    @property
    def in_flight(self) -> int:
        return len(self._machine.slots)

    # Phases ---------------------------------------------------------------------------------------
    def _phase_maybe_over(self) -> None:
        if isinstance(self._machine.phase_over(self.extensions.all_waiting()), InitEnded):
            self._deadline.clear()
            self._init_over()
            self.idle_since = time.monotonic()
            self._log.state(states.IDLE)
            self._listener.sandbox_idle(self)

    def invoke(self, invocation: Invocation) -> None:
        """Deliver ``invocation`` to the worker that has waited longest."""
        timeout = self.function.timeout
        deadline_ms = int(time.time() * 1000 + timeout * 1000)
        assigned = self._machine.invoke(invocation, deadline_ms)
        request_id = invocation.request_id
        self.invocations += 1
        if self.invocations == 1:
            self._cold_request = request_id
        self._started[request_id] = time.monotonic()
        self._timers[request_id] = self._loop.call_later(
            timeout, self._guarded(self._invocation_timed_out), request_id
        )
        if len(self._machine.slots) == 1:
            self._log.state(states.BUSY)
        self._log.start_of(invocation)
        waiter = assigned.waiter
        assert isinstance(waiter, runtime_api.HeldNext)
        waiter.deliver(Delivered(invocation, deadline_ms))

    def _invoke_done(self, invocation: Invocation, status: str) -> None:
        """END and REPORT of one invocation (Init Duration on the one that found it cold)."""
        request_id = invocation.request_id
        timer = self._timers.pop(request_id, None)
        if timer is not None:
            timer.cancel()
        started = self._started.pop(request_id, time.monotonic())
        duration = (time.monotonic() - started) * 1000
        self._processes.drain_output()
        init_duration = self._init_duration_ms if request_id == self._cold_request else None
        used = self._processes.max_rss_mb()
        report = Report(request_id, duration, self.function.memory, used, init_duration, status)
        self._log.end_of(invocation, report)

    def _ended(self, request_id: str) -> None:
        if self._machine.end(request_id).idle:
            self._now_idle()

    def _now_idle(self) -> None:
        self.idle_since = time.monotonic()
        self._log.state(states.IDLE)

    # Runtime API (runtime_api.RuntimeApiTarget) ---------------------------------------------------
    def runtime_next(self, waiter: runtime_api.HeldNext) -> NextOutcome:
        outcome = self._machine.runtime_next(waiter)
        if outcome is GONE and self._machine.state is SandboxState.STOPPING:
            return self._hold_until_reaped(waiter)
        if isinstance(outcome, Held):
            if self._machine.state is SandboxState.STARTING:
                self._phase_maybe_over()
            elif self._machine.free_slots > 0:
                self._listener.sandbox_idle(self)
        return outcome

    def runtime_result(self, request_id: str, result: InvocationResult) -> ResultOutcome:
        outcome = self._machine.runtime_result(request_id)
        if isinstance(outcome, Accepted) and outcome.invocation is not None:
            invocation = outcome.invocation
            elapsed = (time.monotonic() - self._started.get(request_id, 0.0)) * 1000
            self._log.responded(request_id, result, elapsed)
            self._log.settle_of(invocation, result)
            self._invoke_done(invocation, "success")  # a function error is no platform status
            self._ended(request_id)
        return outcome

    def stream_started(self, request_id: str) -> ResultOutcome:
        return self._machine.stream_started(request_id)

    # Failures -------------------------------------------------------------------------------------
    def _on_timeout(self) -> None:
        """Init's limit (each invocation has its own timer)."""
        if self._machine.state is SandboxState.STARTING:
            self._init_timed_out()

    def _invocation_timed_out(self, request_id: str) -> None:
        """One invocation ran out of time: it fails; the others and the environment go on."""
        self._timers.pop(request_id, None)
        ended = self._machine.time_out(request_id)
        if ended is None:
            return
        invocation = ended.invocation
        message = f"Task timed out after {self.function.timeout:.2f} seconds"
        self._log.platform_of(invocation, message)
        result = platform_error(errors.SANDBOX_TIMEDOUT, request_id, message)
        self._log.settle_of(invocation, result)
        self._invoke_done(invocation, "timeout")
        if ended.idle:
            self._now_idle()
        self._loop.call_later(STUCK_GRACE, self._guarded(self._check_stuck))

    def _check_stuck(self) -> None:
        """After a timeout: an environment whose every worker is still busy with invocations
        that timed out can never take work again (Lambda would refuse callers with
        ``Runtime.Unavailable``); it is replaced, so that callers waiting for it are served."""
        machine = self._machine
        if machine.over or machine.waiting or machine.slots:
            return
        detail = "every worker is still running an invocation that timed out"
        self._log.platform(f"{detail}: replacing the environment")
        self._reset(errors.SANDBOX_TIMEDOUT, detail)

    def _reset(self, error_type: str, detail: str) -> None:
        """A process failed after Init: every invocation in flight fails; the pool replaces us."""
        for invocation in self._machine.fail(SandboxEvent.EXIT):
            self._cut_off(invocation, error_type, detail, "error")
        self._shutdown("failure", grace=0)

    def _cut_off(self, invocation: Invocation, error_type: str, detail: str, status: str) -> None:
        request_id = invocation.request_id
        self._log.platform_of(invocation, f"RequestId: {request_id} Error: {detail}\n{error_type}")
        if not invocation.done:
            self._log.settle_of(invocation, platform_error(error_type, request_id, detail))
        self._invoke_done(invocation, status)

    def _fail_in_flight(self, error_type: str, detail: str) -> None:
        for slot in list(self._machine.slots.values()):
            invocation = slot.invocation
            if not invocation.done:
                invocation.resolve(platform_error(error_type, invocation.request_id, detail))

    def stop(self, grace: float = SPINDOWN_GRACE) -> None:
        if self._machine.over:
            return
        detail = "the local Lambda service stopped the execution environment"
        for invocation in self._machine.fail(SandboxEvent.STOP):
            self._cut_off(invocation, errors.SANDBOX_FAILURE, detail, "failure")
        self._shutdown("spindown", grace)

    def _stop_timers(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()

    def _drop_waiters(self) -> None:
        for waiter in self._machine.release_waiters():
            assert isinstance(waiter, runtime_api.HeldNext)
            waiter.cancel()
