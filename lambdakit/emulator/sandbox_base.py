"""What every execution environment does, whatever runs in it: processes, APIs, Shutdown.

Theory of operation
-------------------
A sandbox binds a loopback port for its APIs, launches the function's extensions and, once they
registered, its runtime, each in its own process group with ``AWS_LAMBDA_RUNTIME_API`` pointing
at that port (https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtime-environment.html), and
all in the environment's cgroup; that port admits only connections from the environment's own
processes (:mod:`lambdakit.emulator.containment`, docs/isolation.md).
A failure (a process exiting, an extension's error, an internal error) ends in Lambda's
Shutdown phase (:func:`~lambdakit.emulator.spindown.shut_down`), which ends with the sweep of
whatever is left in the environment's cgroup; once every process is reaped and swept the pool
is told and replaces the environment.

Two kinds of environment stand on this: :class:`~lambdakit.emulator.sandbox.Sandbox` runs one
invocation at a time, as on-demand Lambda does, and
:class:`~lambdakit.emulator.managed_sandbox.ManagedSandbox` several at once, as Lambda Managed
Instances do.  Each owns its machine (the decisions, no I/O) and says what a failure does to
the invocations in flight (:meth:`SandboxBase._reset`, :meth:`SandboxBase.stop`,
:meth:`SandboxBase._internal_error`); this class only needs the phase part of the machine
(:class:`PhaseMachine`).  An exception escaping a timer or a callback (an ``IllegalTransition``
is a bug) is logged with the environment's name and resets it: no caller waits forever.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
import time
from collections.abc import Callable, Mapping
from typing import Protocol

from lambdakit.emulator import activity as states
from lambdakit.emulator import runtime_api
from lambdakit.emulator.activity import Activity
from lambdakit.emulator.config import FunctionConfig, ServiceConfig
from lambdakit.emulator.containment import UNCONTAINED, Containment
from lambdakit.emulator.deadline import Deadline
from lambdakit.emulator.environment import sandbox_environment
from lambdakit.emulator.extension_registry import Extension, ExtensionRegistry, FunctionIdentity
from lambdakit.emulator.freezer import Freezer
from lambdakit.emulator.http.server import HttpServer
from lambdakit.emulator.invocation import Invocation, InvocationResult
from lambdakit.emulator.layers import extension_directories
from lambdakit.emulator.lifecycle import SandboxEvent, SandboxState
from lambdakit.emulator.logs import LogSink
from lambdakit.emulator.phase_log import PhaseLog
from lambdakit.emulator.processes import describe_exit
from lambdakit.emulator.sandbox_machine import HELD, Accepted, Held, InitFailure, WrongState
from lambdakit.emulator.sandbox_processes import SandboxProcesses, external_extensions
from lambdakit.emulator.spindown import SPINDOWN_GRACE, shut_down
from lambdakit.emulator.telemetry import TelemetryHub
from lambdakit.wire import errors, limits

logger = logging.getLogger("lambdakit.sandbox")

#: How long a runtime that reported ``/init/error`` may take to exit on its own.
_INIT_ERROR_GRACE = 0.5


class SandboxListener(Protocol):
    """The pool's side: told when a sandbox can take work and when it is gone."""

    def sandbox_idle(self, sandbox: SandboxBase) -> None: ...

    def sandbox_dead(self, sandbox: SandboxBase, failure: InitFailure | None) -> None: ...


class PhaseMachine(Protocol):
    """The part of an environment's machine the shared shell reads and moves."""

    @property
    def state(self) -> SandboxState: ...

    @property
    def over(self) -> bool: ...

    def allows(self, event: SandboxEvent) -> bool: ...

    def fail(self, event: SandboxEvent) -> object: ...

    def init_error(self) -> Accepted | WrongState: ...

    def reaped(self) -> None: ...


class SandboxBase:
    """The processes, APIs and Shutdown of one execution environment of one function."""

    _machine: PhaseMachine
    #: A Lambda Managed Instances environment (several invocations at once).
    managed = False

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
        self._service = service
        self.function = function
        self._listener = listener
        self._host_environ = host_environ
        self._loop = asyncio.get_running_loop()
        self.name = f"{function.name}#{number}"
        self._server = HttpServer(
            runtime_api.RuntimeApi(self.runtime_target()),
            limits.MAX_SYNC_PAYLOAD,
            runtime_api.streams,
            self._admits,
        )
        self.extensions = ExtensionRegistry(
            FunctionIdentity(function.name, function.version, function.handler, service.account_id),
            frozenset(),
            self._phase_maybe_over,
            self._on_extension_failed,
            managed=self.managed,
            on_next=self._extension_next,
        )
        self.telemetry = TelemetryHub(managed=self.managed)
        self._log = PhaseLog(sink, function, self.telemetry, activity, self.name)
        self._processes = SandboxProcesses(
            self.name, function.code_dir, self._guarded(self._exited)
        )
        self._containment = containment
        #: Its cgroup and the check of who connects (made at start; until then, neither).
        self._enclosure = UNCONTAINED.enclosure(self.name, self._roots)
        self._freezer = Freezer(
            self.name,
            self.freezes(),
            self._stop_or_continue,
            self._idle,
            self.telemetry,
            on_frozen=functools.partial(self._log.state, states.FROZEN),
        )
        self._deadline = Deadline(self._loop, self._guarded(self._on_timeout))
        self._init_failure: InitFailure | None = None
        #: ``GET next`` calls that came once the environment was shutting down.
        self._late_nexts: list[runtime_api.HeldNext] = []
        self._stopping: asyncio.Future[None] = self._loop.create_future()
        self.closed: asyncio.Future[None] = self._loop.create_future()
        self._started_at = 0.0
        self._init_duration_ms = 0.0
        #: Invocations this environment has taken (the first one reports Init Duration).
        self.invocations = 0
        self.idle_since = 0.0

    # What each kind of environment says ----------------------------------------------------------
    def runtime_target(self) -> runtime_api.RuntimeApiTarget:
        """Who answers the Runtime API's calls (the environment itself)."""
        raise NotImplementedError

    def freezes(self) -> bool:
        return self.function.freeze

    @property
    def has_slot(self) -> bool:
        """Whether the pool may hand this environment an invocation now."""
        raise NotImplementedError

    @property
    def in_flight(self) -> int:
        """Invocations the environment is running."""
        raise NotImplementedError

    def invoke(self, invocation: Invocation) -> None:
        raise NotImplementedError

    def _phase_maybe_over(self) -> None:
        """An extension (or the runtime) waits in ``next``: a phase may be over."""
        raise NotImplementedError

    def _extension_next(self, name: str) -> None:
        """Extension ``name`` asked for its next event (its work on an invocation is over)."""

    def _on_timeout(self) -> None:
        raise NotImplementedError

    def _reset(self, error_type: str, detail: str) -> None:
        """A process failed after Init: fail what is in flight and shut down."""
        raise NotImplementedError

    def _fail_in_flight(self, error_type: str, detail: str) -> None:
        """An internal error: every invocation in flight gets ``Sandbox.Failure``."""
        raise NotImplementedError

    def stop(self, grace: float = SPINDOWN_GRACE) -> None:
        """Spin the environment down (idle reap, service stop); idempotent."""
        raise NotImplementedError

    def _stop_timers(self) -> None:
        """Shutting down: no invocation times out any more."""

    def _drop_waiters(self) -> None:
        """Every process is gone: release every held ``GET next``."""
        raise NotImplementedError

    # Shared ---------------------------------------------------------------------------------------
    @property
    def state(self) -> SandboxState:
        return self._machine.state

    def _roots(self) -> list[int]:
        return [group.pid for group in self._processes.groups()]

    def _admits(self, transport: asyncio.Transport) -> bool:
        """Whether a new connection to the APIs comes from this environment's processes."""
        local, remote = transport.get_extra_info("sockname"), transport.get_extra_info("peername")
        if not local or not remote:
            return False  # gone already
        try:
            return self._enclosure.admits(local, remote)
        except Exception:  # a bug: fail closed, and say so
            logger.exception("%s: cannot tell who connected; refusing the connection", self.name)
            return False

    def _idle(self) -> bool:  # for the freezer
        return self._machine.state is SandboxState.IDLE

    def _guarded(self, callback: Callable[..., None]) -> Callable[..., None]:
        """``callback`` for a timer or a done-callback: whatever it raises resets the sandbox."""

        @functools.wraps(callback)
        def run(*args: object) -> None:
            try:
                callback(*args)
            except Exception as exc:
                self._internal_error(exc)

        return run

    def _internal_error(self, exc: BaseException) -> None:
        logger.error("%s: internal error, resetting the environment", self.name, exc_info=exc)
        self._fail_in_flight(
            errors.SANDBOX_FAILURE, f"internal error of the local Lambda service: {exc}"
        )
        if self._machine.allows(SandboxEvent.STOP):
            self._machine.fail(SandboxEvent.STOP)
            self._shutdown("failure", grace=0)
        else:
            self.kill()

    # Init -----------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Bind the APIs, launch extensions, then the runtime; failures end in ``sandbox_dead``."""
        if self._machine.over:  # stopped before it began (a reload, the service stopping)
            return
        self._started_at = time.monotonic()
        try:
            extensions = external_extensions(
                extension_directories(self.function.layers, self.function.extensions_dir)
            )
        except OSError as exc:
            detail = f"cannot read the extensions directory: {exc.strerror or exc}"
            self._cannot_start(errors.EXTENSION_LAUNCH_ERROR, detail)
            return
        self.extensions.expect_external(frozenset(p.name for p in extensions))
        self._deadline.set(self.function.init_timeout)
        self._log.state(states.STARTING)
        self._log.init_start()
        self._enclosure = self._containment.enclosure(self.name, self._roots)
        self._processes.preexec = self._enclosure.preexec
        try:
            host, port = await self._server.start("127.0.0.1", 0)
            if self._machine.state is not SandboxState.STARTING:  # stopped meanwhile
                self._server.stop_accepting()
                return
            env = self._enclosure.mark(
                sandbox_environment(
                    self._service, self.function, f"{host}:{port}", self._host_environ
                )
            )
            await self._processes.launch(
                extensions,
                env,
                self.function.command,
                self._log.output,
                self._registered,
                lambda: self._machine.over,
            )
        except OSError as exc:
            culprit = exc.filename or self.function.command[0]
            self._cannot_start(
                errors.RUNTIME_INVALID_ENTRYPOINT,
                f"cannot start {culprit!r}: {exc.strerror or exc}",
            )
        if self._machine.over:
            # Init failed while a process was starting, and the environment's processes were
            # reaped without it: none may outlive Init (each is reaped when it exits).
            self._processes.signal(signal.SIGKILL)

    def _cannot_start(self, error_type: str, detail: str) -> None:
        logger.error("%s: %s", self.name, detail)
        if self._machine.state is SandboxState.STARTING:
            self._fail_init(InitFailure(error_type, detail))

    async def _registered(self) -> bool:
        """Wait for every launched extension to register; False if Init failed meanwhile."""
        registered = asyncio.ensure_future(self.extensions.external_registered())
        await asyncio.wait((registered, self._stopping), return_when=asyncio.FIRST_COMPLETED)
        registered.cancel()
        return self._machine.state is SandboxState.STARTING

    def _init_over(self) -> None:
        """Init ended: the Extensions and Telemetry APIs close to new registrations."""
        self.extensions.open = False
        self.telemetry.open = False
        self._init_duration_ms = (time.monotonic() - self._started_at) * 1000
        self._log.init_done(self._init_duration_ms)

    def runtime_init_error(self, result: InvocationResult) -> Accepted | WrongState:
        """``/init/error``: Init failed; the runtime's report becomes the invocation's error."""
        outcome = self._machine.init_error()
        if isinstance(outcome, Accepted):
            elapsed = (time.monotonic() - self._started_at) * 1000
            self._log.init_failed("error", result.error_type, elapsed)
            self._init_failure = InitFailure(result.error_type, "", result.body)
            self._shutdown("failure", _INIT_ERROR_GRACE)
        return outcome

    def _init_timed_out(self) -> None:
        seconds = self.function.init_timeout
        self._log.init_failed("timeout", duration_ms=seconds * 1000)
        detail = f"Init timed out after {seconds:.2f} seconds"
        self._fail_init(InitFailure(errors.SANDBOX_TIMEDOUT, detail), SandboxEvent.TIMEOUT)

    # Failures -------------------------------------------------------------------------------------
    def _on_extension_failed(
        self, extension: Extension, error_type: str, body: bytes, during_init: bool
    ) -> None:
        detail = f"Extension {extension.name} reported {error_type}"
        self._log.platform(detail)
        if self._machine.state is SandboxState.STARTING:
            self._fail_init(InitFailure(error_type, detail, body))
        elif self._machine.allows(SandboxEvent.EXIT):
            self._reset(error_type, detail)

    def _exited(self, extension: str, exited: asyncio.Future[int]) -> None:
        """A process exited on its own (``extension`` is empty for the runtime)."""
        if self._machine.over or exited.cancelled():
            return
        if extension:
            error_type = errors.EXTENSION_CRASH
            detail = f"Extension {extension} exited: {describe_exit(exited.result())}"
        else:
            error_type = errors.RUNTIME_EXIT_ERROR
            detail = f"Runtime exited with error: {describe_exit(exited.result())}"
        logger.debug("%s: %s in state %r", self.name, detail, self._machine)
        if self._machine.state is not SandboxState.STARTING:
            self._reset(error_type, detail)
            return
        if not extension:
            self._log.init_failed("error", error_type)
        self._fail_init(InitFailure(error_type, detail), SandboxEvent.EXIT)

    def _fail_init(
        self, failure: InitFailure, event: SandboxEvent = SandboxEvent.INIT_ERROR
    ) -> None:
        """Init failed (not by the runtime's ``/init/error``): discard the environment."""
        self._machine.fail(event)
        self._init_failure = failure
        self._shutdown("failure", grace=0)

    def _hold_until_reaped(self, waiter: runtime_api.HeldNext) -> Held:
        """A ``GET next`` once the environment is shutting down: held, never answered.

        Lambda stops a runtime (SIGTERM, then SIGKILL), it does not tell it to exit: a runtime
        told so would exit before its SIGTERM arrives, and skip its shutdown hooks.
        """
        self._late_nexts.append(waiter)
        return HELD

    def _stop_or_continue(self, signum: int) -> None:
        """The freezer's SIGSTOP / SIGCONT: the cgroup's freezer where there is one (it holds
        every process of the environment, those that left their process group too, and stops
        them without signals), else the signal to each process group."""
        if not self._enclosure.freeze(signum == signal.SIGSTOP):
            self._processes.signal(signum)

    # Stop -----------------------------------------------------------------------------------------
    def kill(self) -> None:
        """SIGKILL every process now; reaping follows through the usual path."""
        self._processes.signal(signal.SIGKILL)

    def _shutdown(self, reason: str, grace: float) -> None:
        self._deadline.cancel()
        self._stop_timers()
        self.extensions.open = False
        if not self._stopping.done():
            self._stopping.set_result(None)
            self._log.state(states.STOPPING)
        self._loop.create_task(self._reap(reason, grace), name=f"reap {self.name}")

    async def _reap(self, reason: str, grace: float) -> None:
        """Lambda's Shutdown phase, then every process reaped and the APIs closed."""
        try:
            self._freezer.thaw()  # a stopped process cannot act on SIGTERM
            telemetry = self.telemetry
            try:
                await shut_down(self._processes, self.extensions, telemetry, reason, grace)
            except Exception:
                logger.exception("%s: shutdown failed; killing every process", self.name)
                self.kill()
            # Last: whatever left the process groups (setsid) and outlived them.
            await self._enclosure.sweep()
        except Exception:
            logger.exception("%s: sweeping its processes failed", self.name)
        finally:
            # Close the APIs and tell the pool, whatever happened above.  A held GET next is
            # let go only now: a runtime is stopped, as on Lambda, not told its next failed.
            self._drop_waiters()
            for waiter in self._late_nexts:
                waiter.cancel()
            self._late_nexts.clear()
            self.extensions.close()
            self._server.stop_accepting()
            self._server.close_connections()
            self._machine.reaped()
            self._log.state(states.DEAD)
            self._log.flush()
            logger.debug("%s: shut down (%s)", self.name, reason)
            self._listener.sandbox_dead(self, self._init_failure)
            if not self.closed.done():
                self.closed.set_result(None)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self._machine!r} {self._processes!r}>"
