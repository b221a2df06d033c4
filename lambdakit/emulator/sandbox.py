"""One execution environment: its processes, its Runtime/Extensions/Telemetry API, its lifecycle.

Theory of operation
-------------------
A sandbox is started by its pool when an invocation finds no idle environment.  It binds a
loopback port for its APIs, launches every executable of the function's extensions directory
(the local stand-in for ``/opt/extensions``) and waits for them to register, then spawns the
runtime; each process leads its own process group and sees ``AWS_LAMBDA_RUNTIME_API`` pointing at
that port (``STARTING``: Lambda's Init phase).  Init ends when the runtime and every extension
wait in ``next`` (``IDLE``); the pending requests are held open until the pool hands the sandbox
an invocation, which answers the runtime with the event and each INVOKE subscriber with an
INVOKE event (``INVOKING``).  The runtime's ``/response`` or ``/error`` resolves the invocation
at once, so the caller is answered while the environment stays busy (``RESPONDED``) until the
runtime and every extension ask for the next event.  Then the invoke phase ends: END and REPORT
are written (Duration covers the work after the response, as Lambda bills it), the processes are
frozen with SIGSTOP until the next invocation thaws them with SIGCONT (after 20 ms of idleness,
so that back-to-back invocations skip the pair), and the pool may reuse the environment.  (https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtime-environment.html)

Failures reset the environment, as Lambda does: the function timeout passing over the whole
invoke phase (extensions included) or Init's limit, a process exiting, an ``/init/error``.  The
shutdown runs Lambda's sequence: the runtime gets SIGTERM (SIGKILL at once for a reset without
extensions), buffered telemetry is delivered, external extensions get SHUTDOWN with the reason
(``spindown``, ``timeout``, ``failure``) and a deadline, and whatever is left is killed when the
2 s budget ends.  Every process is reaped (``STOPPING`` then ``DEAD``), the affected invocation
gets the platform's error, and the pool starts a fresh environment for later work.  All moves go
through :data:`lambdakit.emulator.lifecycle.SANDBOX_TRANSITIONS`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import functools
import logging
import os
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from lambdakit.emulator import runtime_api
from lambdakit.emulator.config import FunctionConfig, ServiceConfig
from lambdakit.emulator.environment import extension_environment, sandbox_environment
from lambdakit.emulator.extensions import (
    INVOKE,
    SHUTDOWN,
    Extension,
    ExtensionRegistry,
    FunctionIdentity,
)
from lambdakit.emulator.http import Reply, Request, Response
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
from lambdakit.emulator.response_stream import DISCARD, StreamRelay
from lambdakit.emulator.telemetry import TelemetryHub
from lambdakit.wire import errors, headers, limits

logger = logging.getLogger("lambdakit.sandbox")

#: An idle environment is frozen this long after its phase ends, unless work arrives first:
#: back-to-back invocations then skip the SIGSTOP/SIGCONT pair (and the SIGCHLDs it causes).
FREEZE_DELAY = 0.02
#: Lines kept for a log tail (each at least one byte plus its newline: 4 KB is within).
_TAIL_LINES = limits.LOG_TAIL_BYTES // 2
#: How long a runtime that reported ``/init/error`` may take to exit on its own.
_INIT_ERROR_EXIT_GRACE = 0.5
#: Shutdown budget, and the runtime's share of it when external extensions are registered.
SPINDOWN_GRACE = limits.SHUTDOWN_BUDGET_MS / 1000
_RUNTIME_SHARE = limits.SHUTDOWN_RUNTIME_SHARE_MS / 1000

# Runtime state names in InvalidStateTransition messages, as AWS's RIE words them.
_RUNTIME_STATE_NAMES = {
    SandboxState.STARTING: "Started",
    SandboxState.IDLE: "Ready",
    SandboxState.INVOKING: "Running",
    SandboxState.RESPONDED: "InvocationResponse",
    SandboxState.STOPPING: "Stopping",
    SandboxState.DEAD: "Dead",
}
_NON_RECOVERABLE = Response(
    500,
    (("Content-Type", "application/json"),),
    errors.error_body("Runtime.Unknown", "Non-recoverable state. Runtime should exit promptly."),
)


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


def external_extensions(directory: Path | None) -> list[Path]:
    """The executables of an extensions directory, in name order, as Lambda launches them."""
    if directory is None:
        return []
    found = []
    for path in sorted(directory.iterdir()):
        if path.is_file() and os.access(path, os.X_OK):
            found.append(path)
        else:
            logger.warning("extensions directory: %s is not an executable file, skipped", path)
    return found


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
        # Per-environment state
        self._lifecycle: Lifecycle[SandboxState, SandboxEvent] = Lifecycle(
            f"sandbox {self.name}", _TABLE, SandboxState.STARTING
        )
        self._server = HttpServer(
            runtime_api.RuntimeApi(self), limits.MAX_SYNC_PAYLOAD, runtime_api.streams
        )
        self._extension_paths: list[Path] = []  # read at start: the directory may change
        self._registry = ExtensionRegistry(
            FunctionIdentity(function.name, function.version, function.handler, service.account_id),
            frozenset(),
            self._check_ready,
            self._on_extension_failed,
        )
        self._telemetry = TelemetryHub()
        self._runtime: ProcessGroup | None = None
        self._extension_groups: dict[str, ProcessGroup] = {}
        self._started_at = 0.0
        self._init_duration_ms: float | None = None
        self._init_failure: InitFailure | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._pending_next: asyncio.Future[Response] | None = None
        self._runtime_waiting = False
        self._frozen = False
        self._freeze_timer: asyncio.TimerHandle | None = None
        self._stopping: asyncio.Future[None] = self._loop.create_future()
        self.closed: asyncio.Future[None] = self._loop.create_future()
        self.idle_since = 0.0
        # Per-invocation state
        self._current: Invocation | None = None
        self._delivered = False
        self._invoke_started = 0.0
        self._responded_at = 0.0
        self._deadline_ms = 0
        #: The invocation's log lines, when its caller asked for the tail.
        self._tail: list[str] | None = None
        #: A result held back until END and REPORT are written (for the log tail).
        self._held: InvocationResult | None = None

    @property
    def state(self) -> SandboxState:
        return self._lifecycle.state

    def _groups(self) -> list[ProcessGroup]:
        groups = list(self._extension_groups.values())
        if self._runtime is not None:
            groups.append(self._runtime)
        return groups

    # Init -----------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Bind the APIs, launch extensions, then the runtime; failures end in ``sandbox_dead``."""
        self._started_at = time.monotonic()
        try:
            self._extension_paths = external_extensions(self.function.extensions_dir)
        except OSError as exc:
            detail = f"cannot read the extensions directory: {exc.strerror or exc}"
            logger.error("%s: %s", self.name, detail)
            self._fail_init(InitFailure(errors.EXTENSION_LAUNCH_ERROR, detail))
            return
        self._registry.expect_external(frozenset(p.name for p in self._extension_paths))
        self._timer = self._loop.call_later(self.function.init_timeout, self._on_timeout)
        self._telemetry.init_start(self.function.name, self.function.version)
        try:
            host, port = await self._server.start("127.0.0.1", 0)
            if self._lifecycle.state is not SandboxState.STARTING:  # stopped meanwhile
                self._server.stop_accepting()
                return
            env = sandbox_environment(
                self._service, self.function, f"{host}:{port}", self._host_environ
            )
            for path in self._extension_paths:
                await self._launch_extension(path, extension_environment(env))
            if self._extension_paths and not await self._extensions_registered():
                return
            self._runtime = await ProcessGroup.spawn(
                self.function.command,
                env=env,
                cwd=str(self.function.code_dir),
                on_line=self._on_output,
            )
        except OSError as exc:
            detail = (
                f"cannot start {exc.filename or self.function.command[0]!r}: {exc.strerror or exc}"
            )
            logger.error("%s: %s", self.name, detail)
            if self._lifecycle.state is SandboxState.STARTING:
                self._fail_init(InitFailure(errors.RUNTIME_INVALID_ENTRYPOINT, detail))
            return
        if self._lifecycle.state in (SandboxState.STOPPING, SandboxState.DEAD):
            # Init failed while we were spawning (the runtime may even have called next and
            # been given work already, which is fine): this process must not outlive it.
            self._runtime.signal(signal.SIGKILL)
        logger.debug("%s: started %r", self.name, self._runtime)
        self._runtime.exited().add_done_callback(self._on_exit)

    async def _launch_extension(self, path: Path, env: Mapping[str, str]) -> None:
        name = path.name

        def output(line: str) -> None:
            self._log(self._sink.function_line(self.function.name, line))
            self._telemetry.line("extension", line)

        group = await ProcessGroup.spawn(
            (str(path),), env=env, cwd=str(self.function.code_dir), on_line=output
        )
        self._extension_groups[name] = group
        group.exited().add_done_callback(functools.partial(self._on_extension_exit, name))
        logger.debug("%s: launched extension %s %r", self.name, name, group)

    async def _extensions_registered(self) -> bool:
        """Wait for every launched extension to register; False if Init failed meanwhile."""
        registered = asyncio.ensure_future(self._registry.external_registered())
        await asyncio.wait((registered, self._stopping), return_when=asyncio.FIRST_COMPLETED)
        registered.cancel()
        return self._lifecycle.state is SandboxState.STARTING

    def _check_ready(self) -> None:
        """End the phase when the runtime and every extension wait in ``next``."""
        state = self._lifecycle.state
        if (
            state not in (SandboxState.STARTING, SandboxState.RESPONDED)
            or not self._runtime_waiting
            or not self._registry.all_waiting()
        ):
            return
        self._lifecycle.fire(SandboxEvent.READY)
        if state is SandboxState.STARTING:
            self._init_done()
        else:
            self._invoke_done()
        self.idle_since = time.monotonic()
        self._freeze()
        self._listener.sandbox_idle(self)

    def _init_done(self) -> None:
        self._cancel_timer()
        self._registry.open = False
        self._telemetry.open = False
        self._init_duration_ms = (time.monotonic() - self._started_at) * 1000
        self._telemetry.init_done(self._init_duration_ms)

    # Runtime API (RuntimeApiTarget) ---------------------------------------------------------------
    def runtime_next(self) -> Reply:
        state = self._lifecycle.state
        if state is SandboxState.INVOKING and not self._delivered:
            # The event went to a next request whose connection dropped; this is its retry.
            return self._event_response()
        if state is SandboxState.IDLE or (
            state in (SandboxState.STARTING, SandboxState.RESPONDED) and self._runtime_waiting
        ):
            # A fresh next replaces one whose connection is gone (or a duplicate).
            return self._replace_pending_next()
        if state in (SandboxState.STARTING, SandboxState.RESPONDED):
            self._runtime_waiting = True
            future = self._replace_pending_next()
            self._check_ready()
            return future
        if state is SandboxState.INVOKING:
            return runtime_api.invalid_transition(_RUNTIME_STATE_NAMES[state], "Ready")
        return _NON_RECOVERABLE

    def runtime_result(self, request_id: str, result: InvocationResult) -> Response:
        current = self._current
        if current is None or request_id != current.request_id:
            return runtime_api.invalid_request_id()
        if self._lifecycle.state is not SandboxState.INVOKING:
            state = _RUNTIME_STATE_NAMES[self._lifecycle.state]
            return runtime_api.invalid_transition(state, "InvocationResponse")
        self._lifecycle.fire(SandboxEvent.RESULT)
        self._responded_at = time.monotonic()
        self._settle(current, result)
        self._telemetry.runtime_done(
            request_id,
            result.ok,
            (self._responded_at - self._invoke_started) * 1000,
            len(result.body),
        )
        return runtime_api.ACCEPTED

    def runtime_result_too_large(self, request_id: str, size: int, limit: int) -> Response:
        current = self._current
        if current is None or request_id != current.request_id:
            return runtime_api.invalid_request_id()
        detail = (
            f"Response payload size ({size} bytes) exceeded maximum allowed payload size "
            f"({limit} bytes)."
        )
        result = function_error(
            errors.error_body(errors.FUNCTION_RESPONSE_SIZE_TOO_LARGE, detail),
            errors.FUNCTION_RESPONSE_SIZE_TOO_LARGE,
        )
        if self._lifecycle.state is SandboxState.INVOKING:
            self.runtime_result(request_id, result)
        return runtime_api.payload_too_large(limit)

    def runtime_stream(self, request_id: str, request: Request) -> Reply:
        """A streamed ``/response``: chunks go to the caller as they arrive."""
        stream = request.stream
        assert stream is not None
        current = self._current
        refusal: Response | None = None
        if current is None or request_id != current.request_id:
            refusal = runtime_api.invalid_request_id()
        elif self._lifecycle.state is not SandboxState.INVOKING:
            state = _RUNTIME_STATE_NAMES[self._lifecycle.state]
            refusal = runtime_api.invalid_transition(state, "InvocationResponse")
        if refusal is not None or current is None:
            stream.consume(DISCARD)
            return refusal or runtime_api.invalid_request_id()
        content_type = request.headers.get("content-type") or "application/octet-stream"
        reply: asyncio.Future[Response] = self._loop.create_future()
        stream.consume(StreamRelay(self, current, content_type, stream, reply))
        return reply

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

    # Extensions and Telemetry APIs (RuntimeApiTarget) ---------------------------------------------
    def extension_register(self, request: Request) -> Response:
        return self._registry.register(request)

    def extension_next(self, request: Request) -> Reply:
        if self._lifecycle.state is SandboxState.DEAD:
            return _NON_RECOVERABLE
        return self._registry.next(request)

    def extension_error(self, request: Request, phase: str) -> Response:
        return self._registry.report_error(request, phase)

    def telemetry_subscribe(self, request: Request, api: str) -> Response:
        extension = self._registry.lookup(request)
        if isinstance(extension, Response):
            return extension
        return self._telemetry.subscribe(request, extension.name, api)

    def _on_extension_failed(
        self, extension: Extension, error_type: str, body: bytes, during_init: bool
    ) -> None:
        detail = f"Extension {extension.name} reported {error_type}"
        self._sink.platform(self.function.name, detail)
        if self._lifecycle.state is SandboxState.STARTING:
            self._fail_init(InitFailure(error_type, detail, body))
        elif self._lifecycle.allows(SandboxEvent.EXIT):
            self._reset(error_type, detail)

    # Invoke ---------------------------------------------------------------------------------------
    def invoke(self, invocation: Invocation) -> None:
        """Hand ``invocation`` to the runtime waiting in ``GET next`` and to INVOKE subscribers."""
        self._thaw()
        self._lifecycle.fire(SandboxEvent.INVOKE)
        invocation.dispatched()
        self._current = invocation
        self._runtime_waiting = False
        self._invoke_started = time.monotonic()
        self._deadline_ms = int(time.time() * 1000 + self.function.timeout * 1000)
        self._timer = self._loop.call_later(self.function.timeout, self._on_timeout)
        self._held = None
        self._tail = [] if invocation.request.log_tail else None
        self._log(
            self._sink.start(self.function.name, invocation.request_id, self.function.version)
        )
        self._telemetry.start(invocation.request_id, self.function.version)
        pending, self._pending_next = self._pending_next, None
        self._delivered = False
        if pending is not None and not pending.done():
            pending.set_result(self._event_response())
        if self._registry.any:
            request = invocation.request
            self._registry.deliver(
                INVOKE,
                {
                    "eventType": INVOKE,
                    "deadlineMs": self._deadline_ms,
                    "requestId": invocation.request_id,
                    "invokedFunctionArn": request.invoked_arn,
                    "tracing": {"type": "X-Amzn-Trace-Id", "value": request.trace_id},
                },
            )

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

    def _replace_pending_next(self) -> asyncio.Future[Response]:
        old = self._pending_next
        if old is not None and not old.done():
            old.cancel()
        future: asyncio.Future[Response] = self._loop.create_future()
        self._pending_next = future
        return future

    def _invoke_done(self, status: str = "success") -> None:
        """The invoke phase ended: write END and REPORT."""
        self._cancel_timer()
        invocation, self._current = self._current, None
        if invocation is None:
            return
        duration = (time.monotonic() - self._invoke_started) * 1000
        for group in self._groups():
            group.drain_output()  # what the processes wrote before asking for next comes first
        self._log(self._sink.end(self.function.name, invocation.request_id))
        report = Report(
            invocation.request_id,
            duration,
            self.function.memory,
            sum(group.max_rss_mb() for group in self._groups()),
            self._init_duration_ms,
            status,
        )
        self._init_duration_ms = None  # only the first invocation reports Init Duration
        self._log(self._sink.report(self.function.name, report))
        self._release(invocation)
        self._telemetry.report(report)

    # Results and the log tail -------------------------------------------------------------------
    def _settle(self, invocation: Invocation, result: InvocationResult) -> None:
        """The invocation's outcome is known: deliver it, or hold it for the log tail."""
        if self._tail is None:
            invocation.resolve(result)
        else:
            self._held = result

    def _settled(self, invocation: Invocation) -> bool:
        return invocation.done or self._held is not None

    def _release(self, invocation: Invocation) -> None:
        """Deliver a held result with the base64 of the invocation's last 4 KB of log."""
        held, self._held = self._held, None
        tail, self._tail = self._tail, None
        if held is None or tail is None or invocation.done:
            return
        log = ("\n".join(tail) + "\n").encode("utf-8", "replace")[-limits.LOG_TAIL_BYTES :]
        invocation.resolve(dataclasses.replace(held, log_result=base64.b64encode(log).decode()))

    def _log(self, line: str) -> None:
        tail = self._tail
        if tail is not None:
            tail.append(line)
            if len(tail) > _TAIL_LINES:  # only the last 4 KB is returned: keep what it needs
                del tail[: len(tail) - _TAIL_LINES]

    # Freeze ---------------------------------------------------------------------------------------
    def _freeze(self) -> None:
        """Freeze the idle environment after :data:`FREEZE_DELAY`, unless work arrives first."""
        if self.function.freeze and not self._frozen and self._freeze_timer is None:
            self._freeze_timer = self._loop.call_later(FREEZE_DELAY, self._freeze_now)

    def _freeze_now(self) -> None:
        self._freeze_timer = None
        if self._lifecycle.state is not SandboxState.IDLE:
            return
        if self._telemetry.busy:
            # A frozen subscriber cannot take its records: deliver them first, freeze after.
            self._telemetry.flush()
            self._freeze_timer = self._loop.call_later(FREEZE_DELAY, self._freeze_now)
            return
        for group in self._groups():
            group.signal(signal.SIGSTOP)
        self._frozen = True
        logger.debug("%s: frozen", self.name)

    def _thaw(self) -> None:
        if self._freeze_timer is not None:
            self._freeze_timer.cancel()
            self._freeze_timer = None
        if not self._frozen:
            return
        for group in self._groups():
            group.signal(signal.SIGCONT)
        self._frozen = False
        logger.debug("%s: thawed", self.name)

    # Failures -------------------------------------------------------------------------------------
    def _on_timeout(self) -> None:
        self._timer = None
        state = self._lifecycle.state
        if state is SandboxState.STOPPING or not self._lifecycle.allows(SandboxEvent.TIMEOUT):
            return
        if state is SandboxState.STARTING:
            seconds = self.function.init_timeout
            self._sink.platform(
                self.function.name,
                f"INIT_REPORT Init Duration: {seconds * 1000:.2f} ms\tPhase: init\tStatus: timeout",
            )
            detail = f"Init timed out after {seconds:.2f} seconds"
            failure = InitFailure(errors.SANDBOX_TIMEDOUT, detail)
            self._fail_init(failure, event=SandboxEvent.TIMEOUT)
            return
        invocation = self._current
        assert invocation is not None
        message = f"Task timed out after {self.function.timeout:.2f} seconds"
        self._log(self._sink.platform(self.function.name, message, invocation.request_id))
        if not self._settled(invocation):
            self._settle(
                invocation, platform_error(errors.SANDBOX_TIMEDOUT, invocation.request_id, message)
            )
        self._lifecycle.fire(SandboxEvent.TIMEOUT)
        self._invoke_done("timeout")
        self._shutdown("timeout", grace=0)

    def _on_exit(self, exited: asyncio.Future[int]) -> None:
        state = self._lifecycle.state
        if state in (SandboxState.STOPPING, SandboxState.DEAD) or exited.cancelled():
            return
        detail = f"Runtime exited with error: {describe_exit(exited.result())}"
        logger.debug("%s: %s in state %s", self.name, detail, state.value)
        if state is SandboxState.STARTING:
            self._sink.platform(
                self.function.name,
                f"INIT_REPORT Phase: init\tStatus: error\tError Type: {errors.RUNTIME_EXIT_ERROR}",
            )
            failure = InitFailure(errors.RUNTIME_EXIT_ERROR, detail)
            self._fail_init(failure, event=SandboxEvent.EXIT)
            return
        self._reset(errors.RUNTIME_EXIT_ERROR, detail)

    def _on_extension_exit(self, name: str, exited: asyncio.Future[int]) -> None:
        state = self._lifecycle.state
        if state in (SandboxState.STOPPING, SandboxState.DEAD) or exited.cancelled():
            return
        detail = f"Extension {name} exited: {describe_exit(exited.result())}"
        logger.debug("%s: %s in state %s", self.name, detail, state.value)
        if state is SandboxState.STARTING:
            self._fail_init(InitFailure(errors.EXTENSION_CRASH, detail), event=SandboxEvent.EXIT)
            return
        self._reset(errors.EXTENSION_CRASH, detail)

    def _reset(self, error_type: str, detail: str) -> None:
        """A process failed after Init: fail the invocation in flight and reset."""
        invocation = self._current
        self._lifecycle.fire(SandboxEvent.EXIT)
        if invocation is not None:
            self._sink.platform(
                self.function.name,
                f"RequestId: {invocation.request_id} Error: {detail}\n{error_type}",
            )
            if not invocation.done:
                invocation.resolve(platform_error(error_type, invocation.request_id, detail))
            self._invoke_done("error")
        self._shutdown("failure", grace=0)

    def _fail_init(
        self,
        failure: InitFailure,
        grace: float = 0.0,
        event: SandboxEvent = SandboxEvent.INIT_ERROR,
    ) -> None:
        """Init failed: the environment is discarded and ``failure`` goes to a waiting caller."""
        self._init_failure = failure
        self._lifecycle.fire(event)
        self._shutdown("failure", grace)

    # Stop -----------------------------------------------------------------------------------------
    def stop(self, grace: float = SPINDOWN_GRACE) -> None:
        """Spin the environment down (idle reap, service stop); idempotent."""
        if self._lifecycle.state in (SandboxState.STOPPING, SandboxState.DEAD):
            return
        invocation = self._current
        self._lifecycle.fire(SandboxEvent.STOP)
        if invocation is not None:
            if not self._settled(invocation):
                self._settle(
                    invocation,
                    platform_error(
                        errors.SANDBOX_FAILURE,
                        invocation.request_id,
                        "the local Lambda service stopped the execution environment",
                    ),
                )
            self._invoke_done("failure")  # END and REPORT, even when cut off
        self._shutdown("spindown", grace)

    def kill(self) -> None:
        """SIGKILL every process now; reaping follows through the usual path."""
        for group in self._groups():
            group.signal(signal.SIGKILL)

    def _shutdown(self, reason: str, grace: float) -> None:
        self._cancel_timer()
        self._registry.open = False
        if self._pending_next is not None and not self._pending_next.done():
            self._pending_next.cancel()
        if not self._stopping.done():
            self._stopping.set_result(None)
        self._loop.create_task(self._reap(reason, grace), name=f"reap {self.name}")

    async def _reap(self, reason: str, grace: float) -> None:
        """Lambda's Shutdown phase, then every process reaped and the APIs closed."""
        try:
            await self._shutdown_phase(reason, grace)
        except Exception:
            logger.exception("%s: shutdown failed; killing every process", self.name)
            self.kill()
        finally:
            # Close the APIs and tell the pool, whatever happened above.
            self._registry.cancel_waiters()
            self._server.stop_accepting()
            self._server.close_connections()
            self._lifecycle.fire(SandboxEvent.REAPED)
            self._sink.flush()
            logger.debug("%s: shut down (%s)", self.name, reason)
            self._listener.sandbox_dead(self, self._init_failure)
            if not self.closed.done():
                self.closed.set_result(None)

    async def _shutdown_phase(self, reason: str, grace: float) -> None:
        deadline = time.monotonic() + SPINDOWN_GRACE
        self._thaw()  # a stopped process cannot act on SIGTERM
        # 1. The runtime: SIGTERM and its share of the budget (SIGKILL at once on a reset
        #    without extensions, as Lambda does).
        if self._runtime is not None:
            share = min(grace, _RUNTIME_SHARE) if self._extension_groups else grace
            await self._runtime.stop(share)
        # 2. Telemetry still buffered goes out while its listeners are alive.
        await self._telemetry.drain(max(0.1, deadline - time.monotonic()))
        # 3. External extensions: SHUTDOWN with the reason, until they exit or the budget ends.
        if self._extension_groups:
            self._registry.deliver(
                SHUTDOWN,
                {
                    "eventType": SHUTDOWN,
                    "shutdownReason": reason,
                    "deadlineMs": int((time.time() + max(0.0, deadline - time.monotonic())) * 1000),
                },
            )
            exits = [asyncio.shield(g.exited()) for g in self._extension_groups.values()]
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(*exits), max(0.0, deadline - time.monotonic())
                )
            await asyncio.gather(*(g.stop(0) for g in self._extension_groups.values()))

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_output(self, line: str) -> None:
        self._log(self._sink.function_line(self.function.name, line))
        self._telemetry.line("function", line)

    def __repr__(self) -> str:
        return f"<Sandbox {self.name} {self._lifecycle.state.value} {self._runtime!r}>"
