"""One execution environment: its runtime process group, its Runtime API, its lifecycle.

Theory of operation
-------------------
A sandbox is started by its pool when an invocation finds no idle environment.  It binds a
loopback port for its Runtime API, then spawns the runtime as the leader of a new process group
with ``AWS_LAMBDA_RUNTIME_API`` pointing at that port (``STARTING``: Lambda's Init phase).  The
runtime's first ``GET next`` ends Init (``IDLE``); the pending request is held open until the
pool hands the sandbox an invocation, which answers it with the event (``INVOKING``).  The
runtime's ``/response`` or ``/error`` resolves the invocation at once, so the caller is answered
while the environment stays busy (``RESPONDED``) until the runtime asks for the next event; only
then does the invoke phase end, END and REPORT are written, and the pool may reuse it.

Failures reset the environment, as Lambda does: a deadline passing (the function timeout over
the whole invoke phase, or the Init limit), the runtime exiting, or an ``/init/error``.  The
process group is killed and reaped (``STOPPING`` then ``DEAD``), the affected invocation gets
the platform's error, and the pool starts a fresh environment for later work.  All moves go
through :data:`lambdakit.emulator.lifecycle.SANDBOX_TRANSITIONS`.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from lambdakit.emulator import runtime_api
from lambdakit.emulator.config import FunctionConfig, ServiceConfig
from lambdakit.emulator.environment import sandbox_environment
from lambdakit.emulator.http import Reply, Response
from lambdakit.emulator.http.server import HttpServer
from lambdakit.emulator.invocation import (
    Invocation,
    InvocationResult,
    function_error,
    platform_error,
)
from lambdakit.emulator.lifecycle import SANDBOX_TRANSITIONS as _TABLE
from lambdakit.emulator.lifecycle import Lifecycle, SandboxEvent, SandboxState
from lambdakit.emulator.logs import LogSink, Report
from lambdakit.emulator.processes import ProcessGroup, describe_exit
from lambdakit.wire import errors, headers, limits

logger = logging.getLogger("lambdakit.sandbox")

#: How long a runtime that reported ``/init/error`` may take to exit on its own.
_INIT_ERROR_EXIT_GRACE = 0.5
#: How long a runtime gets between SIGTERM and SIGKILL when its environment spins down.
SPINDOWN_GRACE = 2.0

# Runtime state names in InvalidStateTransition messages, as AWS's RIE words them.
_RUNTIME_STATE_NAMES = {
    SandboxState.STARTING: "Started",
    SandboxState.IDLE: "Ready",
    SandboxState.INVOKING: "Running",
    SandboxState.RESPONDED: "InvocationResponse",
    SandboxState.STOPPING: "Stopping",
    SandboxState.DEAD: "Dead",
}


@dataclass(frozen=True, slots=True)
class InitFailure:
    """Why an environment never became ready; becomes the waiting invocation's error."""

    error_type: str
    detail: str
    #: The runtime's own ``/init/error`` body, passed through unchanged when present.
    body: bytes = b""

    def result_for(self, request_id: str) -> InvocationResult:
        if self.body:
            return function_error(self.body, self.error_type)
        return platform_error(self.error_type, request_id, self.detail)


class SandboxListener(Protocol):
    """The pool's side: told when a sandbox can take work and when it is gone."""

    def sandbox_idle(self, sandbox: Sandbox) -> None: ...

    def sandbox_dead(self, sandbox: Sandbox, failure: InitFailure | None) -> None: ...


class Sandbox:
    """One execution environment of one function."""

    def __init__(
        self,
        service: ServiceConfig,
        function: FunctionConfig,
        sink: LogSink,
        listener: SandboxListener,
        host_environ: Mapping[str, str],
        number: int,
    ) -> None:
        # Global state
        self._service = service
        self.function = function
        self._sink = sink
        self._listener = listener
        self._host_environ = host_environ
        self._loop = asyncio.get_running_loop()
        self.name = f"{function.name}#{number}"
        self._arn = service.function_arn(function.name)
        # Per-environment state
        self._lifecycle: Lifecycle[SandboxState, SandboxEvent] = Lifecycle(
            f"sandbox {self.name}", _TABLE, SandboxState.STARTING
        )
        self._server = HttpServer(runtime_api.RuntimeApi(self), limits.MAX_SYNC_PAYLOAD)
        self._group: ProcessGroup | None = None
        self._started_at = 0.0
        self._init_duration_ms: float | None = None
        self._init_failure: InitFailure | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._pending_next: asyncio.Future[Response] | None = None
        self.closed: asyncio.Future[None] = self._loop.create_future()
        self.idle_since = 0.0
        # Per-invocation state
        self._current: Invocation | None = None
        self._delivered = False
        self._invoke_started = 0.0
        self._deadline_ms = 0

    @property
    def state(self) -> SandboxState:
        return self._lifecycle.state

    # Start ----------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Bind the Runtime API and spawn the runtime; failures end in ``sandbox_dead``."""
        self._started_at = time.monotonic()
        try:
            host, port = await self._server.start("127.0.0.1", 0)
            env = sandbox_environment(
                self._service, self.function, f"{host}:{port}", self._host_environ
            )
            self._group = await ProcessGroup.spawn(
                self.function.command,
                env=env,
                cwd=str(self.function.code_dir),
                on_line=self._on_output,
            )
        except OSError as exc:
            detail = f"cannot start {self.function.command[0]!r}: {exc.strerror or exc}"
            logger.error("%s: %s", self.name, detail)
            self._fail_init(InitFailure(errors.RUNTIME_INVALID_ENTRYPOINT, detail))
            return
        logger.debug("%s: started %r", self.name, self._group)
        self._group.exited().add_done_callback(self._on_exit)
        self._timer = self._loop.call_later(self.function.init_timeout, self._on_timeout)

    # Runtime API (RuntimeApiTarget) ---------------------------------------------------------------
    def runtime_next(self) -> Reply:
        state = self._lifecycle.state
        if state is SandboxState.INVOKING and not self._delivered:
            # The event went to a next request whose connection dropped; this is its retry.
            return self._event_response()
        if state is SandboxState.IDLE:
            # A fresh next replaces one whose connection is gone (or a duplicate).
            self._replace_pending_next()
            return self._pending_next  # type: ignore[return-value]
        if not self._lifecycle.allows(SandboxEvent.RUNTIME_NEXT):
            return runtime_api.invalid_transition(_RUNTIME_STATE_NAMES[state], "Ready")
        self._lifecycle.fire(SandboxEvent.RUNTIME_NEXT)
        self._replace_pending_next()
        future = self._pending_next
        assert future is not None
        if state is SandboxState.STARTING:
            self._init_done()
        else:
            self._invoke_done()
        self.idle_since = time.monotonic()
        self._listener.sandbox_idle(self)
        return future

    def runtime_result(self, request_id: str, result: InvocationResult) -> Response:
        current = self._current
        if current is None or request_id != current.request_id:
            return runtime_api.invalid_request_id()
        if self._lifecycle.state is not SandboxState.INVOKING:
            state = _RUNTIME_STATE_NAMES[self._lifecycle.state]
            return runtime_api.invalid_transition(state, "InvocationResponse")
        self._lifecycle.fire(SandboxEvent.RESULT)
        current.resolve(result)
        return runtime_api.ACCEPTED

    def runtime_result_too_large(self, request_id: str, size: int) -> Response:
        current = self._current
        if current is None or request_id != current.request_id:
            return runtime_api.invalid_request_id()
        detail = (
            f"Response payload size ({size} bytes) exceeded maximum allowed payload size "
            f"({limits.MAX_SYNC_PAYLOAD} bytes)."
        )
        result = function_error(
            errors.error_body(errors.FUNCTION_RESPONSE_SIZE_TOO_LARGE, detail),
            errors.FUNCTION_RESPONSE_SIZE_TOO_LARGE,
        )
        if self._lifecycle.state is SandboxState.INVOKING:
            self._lifecycle.fire(SandboxEvent.RESULT)
            current.resolve(result)
        return runtime_api.payload_too_large()

    def runtime_init_error(self, result: InvocationResult) -> Response:
        state = self._lifecycle.state
        if state is not SandboxState.STARTING:
            return runtime_api.invalid_transition(_RUNTIME_STATE_NAMES[state], "InitError")
        elapsed = (time.monotonic() - self._started_at) * 1000
        self._sink.platform(
            self.function.name,
            f"INIT_REPORT Init Duration: {elapsed:.2f} ms\tPhase: init\tStatus: error\t"
            f"Error Type: {result.error_type}",
        )
        self._fail_init(InitFailure(result.error_type, "", result.body), _INIT_ERROR_EXIT_GRACE)
        return runtime_api.ACCEPTED

    # Invoke ---------------------------------------------------------------------------------------
    def invoke(self, invocation: Invocation) -> None:
        """Hand ``invocation`` to the runtime waiting in ``GET next``."""
        self._lifecycle.fire(SandboxEvent.INVOKE)
        invocation.dispatched()
        self._current = invocation
        self._invoke_started = time.monotonic()
        self._deadline_ms = int(time.time() * 1000 + self.function.timeout * 1000)
        self._timer = self._loop.call_later(self.function.timeout, self._on_timeout)
        self._sink.start(self.function.name, invocation.request_id, self.function.version)
        pending, self._pending_next = self._pending_next, None
        self._delivered = False
        if pending is not None and not pending.done():
            pending.set_result(self._event_response())

    def _event_response(self) -> Response:
        invocation = self._current
        assert invocation is not None
        self._delivered = True
        request = invocation.request
        fields = [
            ("Content-Type", "application/json"),
            (headers.REQUEST_ID, invocation.request_id),
            (headers.DEADLINE_MS, str(self._deadline_ms)),
            (headers.INVOKED_FUNCTION_ARN, request.invoked_arn),
            (headers.TRACE_ID, request.trace_id),
        ]
        if request.client_context:
            fields.append((headers.CLIENT_CONTEXT, request.client_context))
        if request.cognito_identity:
            fields.append((headers.COGNITO_IDENTITY, request.cognito_identity))
        if request.tenant_id:
            fields.append((headers.TENANT_ID, request.tenant_id))
        return Response(200, fields, request.payload)

    def _replace_pending_next(self) -> None:
        old = self._pending_next
        if old is not None and not old.done():
            old.cancel()
        self._pending_next = self._loop.create_future()

    def _init_done(self) -> None:
        self._cancel_timer()
        self._init_duration_ms = (time.monotonic() - self._started_at) * 1000

    def _invoke_done(self, status: str = "success") -> None:
        """The invoke phase ended: write END and REPORT."""
        self._cancel_timer()
        invocation, self._current = self._current, None
        if invocation is None:
            return
        duration = (time.monotonic() - self._invoke_started) * 1000
        self._sink.end(self.function.name, invocation.request_id)
        report = Report(
            invocation.request_id,
            duration,
            self.function.memory,
            self._group.max_rss_mb() if self._group else 0,
            self._init_duration_ms,
            status,
        )
        self._init_duration_ms = None  # only the first invocation reports Init Duration
        self._sink.report(self.function.name, report)

    # Failures -------------------------------------------------------------------------------------
    def _on_timeout(self) -> None:
        self._timer = None
        state = self._lifecycle.state
        if not self._lifecycle.allows(SandboxEvent.TIMEOUT) or state is SandboxState.STOPPING:
            return
        if state is SandboxState.STARTING:
            seconds = self.function.init_timeout
            self._sink.platform(
                self.function.name,
                f"INIT_REPORT Init Duration: {seconds * 1000:.2f} ms\tPhase: init\tStatus: timeout",
            )
            detail = f"Init timed out after {seconds:.2f} seconds"
            self._fail_init(
                InitFailure(errors.SANDBOX_TIMEDOUT, detail), event=SandboxEvent.TIMEOUT
            )
            return
        invocation = self._current
        assert invocation is not None
        message = f"Task timed out after {self.function.timeout:.2f} seconds"
        self._sink.platform(self.function.name, message, invocation.request_id)
        if not invocation.done:
            invocation.resolve(
                platform_error(errors.SANDBOX_TIMEDOUT, invocation.request_id, message)
            )
        self._lifecycle.fire(SandboxEvent.TIMEOUT)
        self._invoke_done("timeout")
        self._shutdown(grace=0)

    def _on_exit(self, exited: asyncio.Future[int]) -> None:
        state = self._lifecycle.state
        if state in (SandboxState.STOPPING, SandboxState.DEAD):
            return
        detail = f"Runtime exited with error: {describe_exit(exited.result())}"
        logger.debug("%s: %s in state %s", self.name, detail, state.value)
        if state is SandboxState.STARTING:
            self._sink.platform(
                self.function.name,
                f"INIT_REPORT Phase: init\tStatus: error\tError Type: {errors.RUNTIME_EXIT_ERROR}",
            )
            self._fail_init(InitFailure(errors.RUNTIME_EXIT_ERROR, detail), event=SandboxEvent.EXIT)
            return
        invocation = self._current
        self._lifecycle.fire(SandboxEvent.EXIT)
        if invocation is not None:
            self._sink.platform(
                self.function.name,
                f"RequestId: {invocation.request_id} Error: {detail}\n{errors.RUNTIME_EXIT_ERROR}",
            )
            if not invocation.done:
                invocation.resolve(
                    platform_error(errors.RUNTIME_EXIT_ERROR, invocation.request_id, detail)
                )
            self._invoke_done("error")
        self._shutdown(grace=0)

    def _fail_init(
        self,
        failure: InitFailure,
        grace: float = 0.0,
        event: SandboxEvent = SandboxEvent.INIT_ERROR,
    ) -> None:
        """Init failed: the environment is discarded and ``failure`` goes to a waiting caller."""
        self._init_failure = failure
        self._lifecycle.fire(event)
        self._shutdown(grace)

    # Stop -----------------------------------------------------------------------------------------
    def stop(self, grace: float = SPINDOWN_GRACE) -> None:
        """Spin the environment down (idle reap, service stop); idempotent."""
        if self._lifecycle.state in (SandboxState.STOPPING, SandboxState.DEAD):
            return
        invocation = self._current
        self._lifecycle.fire(SandboxEvent.STOP)
        if invocation is not None and not invocation.done:
            invocation.resolve(
                platform_error(
                    errors.SANDBOX_FAILURE,
                    invocation.request_id,
                    "the local Lambda service stopped the execution environment",
                )
            )
        self._shutdown(grace)

    def kill(self) -> None:
        """SIGKILL the process group now; reaping follows through the usual path."""
        if self._group is not None:
            self._group.signal(signal.SIGKILL)

    def _shutdown(self, grace: float) -> None:
        self._cancel_timer()
        if self._pending_next is not None and not self._pending_next.done():
            self._pending_next.cancel()
        self._loop.create_task(self._reap(grace), name=f"reap {self.name}")

    async def _reap(self, grace: float) -> None:
        # Order: stop accepting Runtime API calls, stop the processes, close connections, report.
        self._server.stop_accepting()
        if self._group is not None:
            code = await self._group.stop(grace)
            logger.debug("%s: reaped %r (%s)", self.name, self._group, describe_exit(code))
        self._server.close_connections()
        self._lifecycle.fire(SandboxEvent.REAPED)
        self._sink.flush()
        self._listener.sandbox_dead(self, self._init_failure)
        if not self.closed.done():
            self.closed.set_result(None)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_output(self, line: str) -> None:
        self._sink.function_line(self.function.name, line)

    def __repr__(self) -> str:
        return f"<Sandbox {self.name} {self._lifecycle.state.value} {self._group!r}>"
