"""External extensions in Python: hooks for INVOKE and SHUTDOWN around the register/next loop.

https://docs.aws.amazon.com/lambda/latest/dg/runtimes-extensions-api.html

Theory of operation
-------------------
An external extension is a process Lambda starts from ``/opt/extensions`` before the runtime
(``lambdakit serve --extensions-dir DIR`` locally).  It registers under its executable's file
name (Lambda tells external from internal extensions by that name), for INVOKE if it has invoke
hooks and always for SHUTDOWN, then runs its init hooks and, if it wants telemetry, subscribes a
local listener; any failure until then is reported to ``init/error`` and fails Init.  It then
loops on ``event/next``: each INVOKE runs the invoke hooks (the environment waits for them: the
next ``next`` says they are done), and SHUTDOWN runs the shutdown hooks within the event's
deadline and ends the loop.  An exception in a hook is reported to ``exit/error`` and ends the
process with status 1, which makes Lambda reset the environment.

Two styles, which may be mixed::

    class Audit(Extension):                     extension = Extension()
        def on_invoke(self, event): ...
        def on_shutdown(self, event): ...       @extension.invoke
                                                def audit(event): ...
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

from lambdakit.extensions.client import ExtensionsApiClient, ExtensionsApiError
from lambdakit.extensions.events import InvokeEvent, Registration, ShutdownEvent
from lambdakit.wire import extensions as wire

TYPE_CHECKING = False
if TYPE_CHECKING:
    from lambdakit.extensions.telemetry import TelemetryRecord

logger = logging.getLogger("lambdakit.extensions")

InvokeHook = Callable[[InvokeEvent], object]
ShutdownHook = Callable[[ShutdownEvent], object]
InitHook = Callable[[Registration], object]
H = TypeVar("H", bound=Callable[..., object])

#: ``Lambda-Extension-Function-Error-Type`` of an unexpected exception in a hook.
_INIT_ERROR = "Extension.InitError"
_EXIT_ERROR = "Extension.ExitError"


class ExtensionFailure(Exception):
    """Raise it from a hook to report ``error_type`` (e.g. ``Extension.ConfigInvalid``)."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type


class Extension:
    """An external extension: subclass it, or decorate functions on an instance."""

    #: The name to register; ``None``: the executable's file name, as Lambda requires.
    name: str | None = None
    #: Telemetry API record types (``platform``, ``function``, ``extension``) to subscribe to;
    #: records go to :meth:`on_telemetry` on the listener's thread.
    telemetry: Sequence[str] = ()

    def __init__(self, name: str | None = None) -> None:
        if name is not None:
            self.name = name
        self._init_hooks: list[InitHook] = []
        self._invoke_hooks: list[InvokeHook] = []
        self._shutdown_hooks: list[ShutdownHook] = []
        self.registration: Registration | None = None

    # Decorators ---------------------------------------------------------------------------------
    def init(self, fn: H) -> H:
        """Run ``fn(registration)`` once registered, during Init."""
        self._init_hooks.append(fn)
        return fn

    def invoke(self, fn: H) -> H:
        """Run ``fn(event)`` for each INVOKE event."""
        self._invoke_hooks.append(fn)
        return fn

    def shutdown(self, fn: H) -> H:
        """Run ``fn(event)`` when the environment shuts down."""
        self._shutdown_hooks.append(fn)
        return fn

    # Hooks a subclass overrides -----------------------------------------------------------------
    def on_init(self, registration: Registration) -> None:
        for hook in self._init_hooks:
            hook(registration)

    def on_invoke(self, event: InvokeEvent) -> None:
        for hook in self._invoke_hooks:
            hook(event)

    def on_shutdown(self, event: ShutdownEvent) -> None:
        for hook in self._shutdown_hooks:
            hook(event)

    def on_telemetry(self, record: TelemetryRecord) -> None:
        """One Telemetry API record, on the listener's thread (records arrive in order)."""

    # The loop -----------------------------------------------------------------------------------
    def events(self) -> tuple[str, ...]:
        """INVOKE only if something handles it (each one costs the environment a round trip)."""
        wants_invoke = bool(self._invoke_hooks) or type(self).on_invoke is not Extension.on_invoke
        return (wire.INVOKE, wire.SHUTDOWN) if wants_invoke else (wire.SHUTDOWN,)

    def run(
        self,
        name: str | None = None,
        environ: Mapping[str, str] | None = None,
        client: ExtensionsApiClient | None = None,
    ) -> int:
        """Register, run the hooks until SHUTDOWN; returns the process's exit status."""
        environ = os.environ if environ is None else environ
        name = name or self.name or os.path.basename(sys.argv[0])
        client = client or ExtensionsApiClient.from_environ(environ)
        self.registration = client.register(name, self.events())
        logger.debug("%s registered for %s", name, self.events())
        listener = None
        try:
            self.on_init(self.registration)
            if self.telemetry:
                from lambdakit.extensions.telemetry import TelemetryListener

                listener = TelemetryListener(self.on_telemetry).start()
                listener.subscribe(client, self.telemetry)
        except Exception as exc:
            logger.exception("%s: init failed", name)
            _report(client.init_error, exc, _INIT_ERROR)
            return 1
        try:
            return self._loop(client, name)
        finally:
            if listener is not None:
                listener.close()
            client.close()

    def _loop(self, client: ExtensionsApiClient, name: str) -> int:
        while True:
            event = client.next_event()
            try:
                if isinstance(event, InvokeEvent):
                    self.on_invoke(event)
                    continue
                self.on_shutdown(event)
            except Exception as exc:
                logger.exception("%s: %s hook failed", name, type(event).__name__)
                _report(client.exit_error, exc, _EXIT_ERROR)
                return 1
            return 0


def _report(post: Callable[[str, BaseException], None], exc: Exception, default: str) -> None:
    error_type = exc.error_type if isinstance(exc, ExtensionFailure) else default
    try:
        post(error_type, exc)
    except (OSError, ExtensionsApiError) as report_error:
        logger.warning("could not report %s: %s", error_type, report_error)
