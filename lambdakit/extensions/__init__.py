"""Lambda extensions in Python: background work, external extensions, telemetry subscribers.

- ``background_task(fn, *args, **kwargs)``: start work during the handler; the response goes
  out; the environment stays awake until the work ends (an internal extension holds it).
- ``Extension``: an external extension (a process started from /opt/extensions) with
  ``on_invoke`` / ``on_shutdown`` hooks; ``lambdakit extension run module:Extension`` runs one.
- ``TelemetryListener``: a local HTTP listener subscribed to the Telemetry API, yielding records.

Stdlib only: this package loads inside functions.  See docs/extensions.md.

Importing it from a handler module served by awslambdaric (or the managed Python runtime)
registers the internal extension that ``background_task`` and ``lambdakit.after_response`` need
(and hands ``lambdakit.runtime.tasks`` the queue that ``after_response`` uses outside
lambdakit.runtime).  Lambda accepts registrations only during Init, so import it at the top of
the handler module.
"""

from __future__ import annotations

import sys as _sys

from lambdakit.runtime import tasks as _tasks

TYPE_CHECKING = False
if TYPE_CHECKING:
    from lambdakit.extensions.background import background_task
    from lambdakit.extensions.client import (
        ExtensionsApiClient,
        ExtensionsApiError,
        ExtensionsConnectionError,
    )
    from lambdakit.extensions.events import (
        InvokeEvent,
        Registration,
        ShutdownEvent,
    )
    from lambdakit.extensions.external import Extension, ExtensionFailure
    from lambdakit.extensions.telemetry import Buffering, TelemetryListener, TelemetryRecord
    from lambdakit.runtime.scope import Task

__all__ = [
    "Buffering",
    "Extension",
    "ExtensionFailure",
    "ExtensionsApiClient",
    "ExtensionsApiError",
    "ExtensionsConnectionError",
    "InvokeEvent",
    "Registration",
    "ShutdownEvent",
    "TelemetryListener",
    "TelemetryRecord",
    "background_task",
]

_HOMES = {
    "background_task": "background",
    "Extension": "external",
    "ExtensionFailure": "external",
    "ExtensionsApiClient": "client",
    "ExtensionsApiError": "client",
    "ExtensionsConnectionError": "client",
    "InvokeEvent": "events",
    "Registration": "events",
    "ShutdownEvent": "events",
    "Buffering": "telemetry",
    "TelemetryListener": "telemetry",
    "TelemetryRecord": "telemetry",
}


def __getattr__(name: str) -> object:
    # Lazy: an external extension process imports only what it uses, and nothing here costs
    # lambdakit.runtime's cold start.
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'lambdakit.extensions' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"lambdakit.extensions.{home}"), name)


def _queue_task(task: Task, what: str) -> None:
    """``after_response`` outside lambdakit.runtime: the internal extension takes the task."""
    from lambdakit.extensions import internal

    internal.queue_task(task, what)


def _register_if_needed() -> None:
    """Under awslambdaric the handler module is being imported (Init): register now."""
    # The modules of lambdakit.extensions.internal.HOOK_MODULES.
    for name in ("awslambdaric.bootstrap", "bootstrap", "__main__"):
        if hasattr(_sys.modules.get(name), "handle_event_request"):
            from lambdakit.extensions import internal

            internal.start()
            return


_tasks.register_task_queue(_queue_task)
_register_if_needed()
