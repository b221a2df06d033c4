"""One on-demand execution environment: one invocation at a time, driven by its machine.

Theory of operation
-------------------
A :class:`Sandbox` is the I/O shell around
:class:`~lambdakit.emulator.sandbox_machine.SandboxMachine`
(https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtime-environment.html): every Runtime
API call, timer and process exit is one event of the machine, and the shell does what the
outcome says: hold the runtime's ``GET next`` until the pool assigns work, resolve the
invocation, write START / END / REPORT (:class:`~lambdakit.emulator.phase_log.PhaseLog`), freeze
the idle environment (:class:`~lambdakit.emulator.freezer.Freezer`).  Failures (a timeout, a
process exiting, an ``/init/error``) give the invocation the platform's error and shut the
environment down; what every environment shares (processes, APIs, Shutdown) is
:class:`~lambdakit.emulator.sandbox_base.SandboxBase`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from lambdakit.emulator import activity as states
from lambdakit.emulator import runtime_api
from lambdakit.emulator.activity import Activity
from lambdakit.emulator.config import FunctionConfig, ServiceConfig
from lambdakit.emulator.containment import UNCONTAINED, Containment
from lambdakit.emulator.invocation import Invocation, InvocationResult, platform_error
from lambdakit.emulator.lifecycle import RuntimeState, SandboxEvent, SandboxState
from lambdakit.emulator.logs import LogSink, Report
from lambdakit.emulator.sandbox_base import SandboxBase, SandboxListener
from lambdakit.emulator.sandbox_machine import (
    GONE,
    Accepted,
    Held,
    InitEnded,
    NextOutcome,
    SandboxMachine,
    UnknownRequest,
    WrongState,
)
from lambdakit.emulator.spindown import SPINDOWN_GRACE
from lambdakit.wire import errors

__all__ = ["Sandbox", "SandboxListener"]


class Sandbox(SandboxBase):
    """One execution environment of one function, one invocation at a time."""

    _machine: SandboxMachine

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
        self._machine = SandboxMachine(f"{function.name}#{number}")
        #: The runtime's held ``GET next`` calls: one, or more when it asked again (a client-side
        #: timeout and a retry): each live one gets the event, as AWS's RIE does.
        self._waiters: list[runtime_api.HeldNext] = []
        self._invoke_started = 0.0
        super().__init__(
            service, function, sink, listener, host_environ, number, activity, containment
        )

    def runtime_target(self) -> runtime_api.RuntimeApiTarget:
        return self

    @property
    def has_slot(self) -> bool:
        return self._machine.state is SandboxState.IDLE

    @property
    def in_flight(self) -> int:
        return 0 if self._machine.current is None else 1

    def _extension_next(self, name: str) -> None:
        current = self._machine.current
        if current is not None:
            self._log.next_called(current.request_id, name)

    def _fail_in_flight(self, error_type: str, detail: str) -> None:
        invocation = self._machine.current
        if invocation is not None and not invocation.done:
            invocation.resolve(platform_error(error_type, invocation.request_id, detail))

    def _drop_waiters(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.cancel()

    # Phases ---------------------------------------------------------------------------------------
    def _phase_maybe_over(self) -> None:
        """The runtime or an extension waits in ``next``: end Init or the invoke phase if all do."""
        ended = self._machine.phase_over(self.extensions.all_waiting())
        if ended is None:
            return
        self._deadline.clear()
        if isinstance(ended, InitEnded):
            self._init_over()
            self._log.state(states.IDLE)
        else:
            self._invoke_done(ended.invocation)  # its end tells it is idle again
        self.idle_since = time.monotonic()
        self._freezer.freeze_soon()
        self._listener.sandbox_idle(self)

    def invoke(self, invocation: Invocation) -> None:
        """Hand ``invocation`` to the runtime waiting in ``GET next`` and to INVOKE subscribers."""
        self._freezer.thaw()
        deadline_ms = int(time.time() * 1000 + self.function.timeout * 1000)
        self._machine.invoke(invocation, deadline_ms)
        self.invocations += 1
        self._invoke_started = time.monotonic()
        self._deadline.set(self.function.timeout)
        waiters, self._waiters = self._waiters, []
        delivered = None
        for waiter in waiters:  # on the warm path, one
            if waiter.alive:
                if delivered is None:
                    delivered = self._machine.delivered()
                waiter.deliver(delivered)  # the event goes out first
        self._log.start(invocation)  # its start tells the environment is busy
        request = invocation.request
        self.extensions.invoke(
            invocation.request_id, deadline_ms, request.invoked_arn, request.trace_id
        )

    def _invoke_done(self, invocation: Invocation, status: str = "success") -> None:
        """The invoke phase ended: END and REPORT, and a result held for the log tail."""
        self._deadline.clear()
        duration = (time.monotonic() - self._invoke_started) * 1000
        self._processes.drain_output()  # what they wrote before asking for next comes first
        init_duration = self._init_duration_ms if self.invocations == 1 else None
        memory = self.function.memory
        used = self._processes.max_rss_mb()
        report = Report(invocation.request_id, duration, memory, used, init_duration, status)
        self._log.end(invocation, report)

    # Runtime API (runtime_api.RuntimeApiTarget) ---------------------------------------------------
    def runtime_next(self, waiter: runtime_api.HeldNext) -> NextOutcome:
        current = self._machine.current
        if current is not None and self._machine.runtime_state is RuntimeState.RESPONDED:
            self._log.next_called(current.request_id, "")  # its work after the response is over
        outcome = self._machine.runtime_next()
        if outcome is GONE and self._machine.state is SandboxState.STOPPING:
            return self._hold_until_reaped(waiter)
        if isinstance(outcome, Held):
            # Another next while one is held (a client that timed out and asked again) cancels
            # nothing: the event goes to every one still connected, so none is lost.
            if self._waiters:
                self._waiters = [w for w in self._waiters if w.alive]
            self._waiters.append(waiter)
            self._phase_maybe_over()
        return outcome

    def runtime_result(
        self, request_id: str, result: InvocationResult
    ) -> Accepted | UnknownRequest | WrongState:
        outcome = self._machine.runtime_result(request_id)
        if isinstance(outcome, Accepted) and outcome.invocation is not None:
            self._log.tail.settle(outcome.invocation, result)
            elapsed = (time.monotonic() - self._invoke_started) * 1000
            self._log.responded(request_id, result, elapsed)  # tells: after the response
        return outcome

    def stream_started(self, request_id: str) -> Accepted | UnknownRequest | WrongState:
        return self._machine.stream_started(request_id)

    # Failures -------------------------------------------------------------------------------------
    def _on_timeout(self) -> None:
        if self._machine.over or not self._machine.allows(SandboxEvent.TIMEOUT):
            return
        if self._machine.state is SandboxState.STARTING:
            self._init_timed_out()
            return
        invocation = self._machine.fail(SandboxEvent.TIMEOUT)
        assert invocation is not None
        message = f"Task timed out after {self.function.timeout:.2f} seconds"
        self._log.platform(message, invocation.request_id)
        self._settle_cut_off(invocation, errors.SANDBOX_TIMEDOUT, message)
        self._invoke_done(invocation, "timeout")
        self._shutdown("timeout", grace=0)

    def _reset(self, error_type: str, detail: str) -> None:
        """A process failed after Init: fail the invocation in flight and reset."""
        invocation = self._machine.fail(SandboxEvent.EXIT)
        if invocation is not None:
            self._log.platform(f"RequestId: {invocation.request_id} Error: {detail}\n{error_type}")
            if not invocation.done:
                invocation.resolve(platform_error(error_type, invocation.request_id, detail))
            self._invoke_done(invocation, "error")
        self._shutdown("failure", grace=0)

    def _settle_cut_off(self, invocation: Invocation, error_type: str, detail: str) -> None:
        if not self._log.tail.settled(invocation):
            result = platform_error(error_type, invocation.request_id, detail)
            self._log.tail.settle(invocation, result)

    # Stop -----------------------------------------------------------------------------------------
    def stop(self, grace: float = SPINDOWN_GRACE) -> None:
        """Spin the environment down (idle reap, service stop); idempotent."""
        if self._machine.over:
            return
        invocation = self._machine.fail(SandboxEvent.STOP)
        if invocation is not None:
            detail = "the local Lambda service stopped the execution environment"
            self._settle_cut_off(invocation, errors.SANDBOX_FAILURE, detail)
            self._invoke_done(invocation, "failure")  # END and REPORT, even when cut off
        self._shutdown("spindown", grace)
