"""The Extensions API's registry: who registered, for which events, and who is waiting.

https://docs.aws.amazon.com/lambda/latest/dg/runtimes-extensions-api.html

Theory of operation
-------------------
Extensions register during Init (``POST /extension/register``), naming the events they want
(``INVOKE``, ``SHUTDOWN``).  An extension is *external* when its name is that of an executable the
sandbox launched from the extensions directory, and *internal* otherwise (registered from the
runtime's own process); internal ones may not ask for SHUTDOWN.  Each then long-polls
``GET /extension/event/next``: the registry holds that request as a future and answers it with
the next event, or keeps the event queued until the extension asks.  Calling ``next`` again is how
an extension says it has finished with an event; the sandbox asks
:meth:`ExtensionRegistry.all_waiting` to learn when a phase is over.  This module decides and
renders; it does no I/O.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from lambdakit.emulator.http import Reply, Request, Response
from lambdakit.emulator.lifecycle import (
    EXTENSION_TRANSITIONS,
    ExtensionEvent,
    ExtensionState,
    Lifecycle,
)
from lambdakit.wire import errors, headers, limits

INVOKE = "INVOKE"
SHUTDOWN = "SHUTDOWN"
_EVENT_TYPES = frozenset({INVOKE, SHUTDOWN})
_JSON = (("Content-Type", "application/json"),)


def extension_error(error_type: str, message: str, status: int = 403) -> Response:
    return Response(status, _JSON, errors.error_body(error_type, message))


@dataclass(frozen=True, slots=True)
class FunctionIdentity:
    """What ``register`` answers with."""

    function_name: str
    function_version: str
    handler: str
    account_id: str


class Extension:
    """One registered extension."""

    __slots__ = ("events", "external", "identifier", "lifecycle", "name", "pending", "queued")

    def __init__(self, name: str, events: frozenset[str], external: bool) -> None:
        self.name = name
        self.identifier = str(uuid.uuid4())
        self.events = events
        self.external = external
        self.lifecycle: Lifecycle[ExtensionState, ExtensionEvent] = Lifecycle(
            f"extension {name}", EXTENSION_TRANSITIONS, ExtensionState.REGISTERED
        )
        self.pending: asyncio.Future[Response] | None = None
        self.queued: deque[bytes] = deque()

    @property
    def state(self) -> ExtensionState:
        return self.lifecycle.state


class ExtensionRegistry:
    """The extensions of one sandbox."""

    def __init__(
        self,
        identity: FunctionIdentity,
        external_names: frozenset[str],
        on_waiting: Callable[[], None],
        on_failed: Callable[[Extension, str, bytes, bool], None],
        managed: bool = False,
        on_next: Callable[[str], None] | None = None,
    ) -> None:
        #: Told the name of each extension that asks for its next event (the live view's).
        self._on_next = on_next
        #: Lambda Managed Instances: no INVOKE events.
        self.managed = managed
        self._identity = identity
        self._external_names = external_names
        self._on_waiting = on_waiting
        self._on_failed = on_failed
        self.by_id: dict[str, Extension] = {}
        self.open = True
        self.closed = False
        self._registered_external: asyncio.Event = asyncio.Event()
        self.expect_external(external_names)

    def expect_external(self, names: frozenset[str]) -> None:
        """The external extensions launched: their names register as external."""
        self._external_names = names
        if self.unregistered_external():
            self._registered_external.clear()
        else:
            self._registered_external.set()

    # Queries ------------------------------------------------------------------------------------
    def all_waiting(self) -> bool:
        """True when every extension is waiting in ``next`` with nothing queued."""
        return all(
            ext.state is ExtensionState.WAITING and not ext.queued for ext in self.by_id.values()
        )

    @property
    def any(self) -> bool:
        return bool(self.by_id)

    @property
    def any_external(self) -> bool:
        return any(ext.external for ext in self.by_id.values())

    async def external_registered(self) -> None:
        """Wait until every launched external extension has registered."""
        await self._registered_external.wait()

    def unregistered_external(self) -> set[str]:
        return set(self._external_names) - {e.name for e in self.by_id.values() if e.external}

    # Extensions API calls -------------------------------------------------------------------------
    def register(self, request: Request) -> Response:
        name = request.headers.get(headers.EXTENSION_NAME, "").strip()
        if not name:
            return extension_error(errors.EXTENSION_INVALID_NAME, "Empty extension name")
        if not self.open:
            return extension_error(
                errors.EXTENSION_REGISTRATION_CLOSED, "Extension registration closed already"
            )
        if len(self.by_id) >= limits.MAX_EXTENSIONS:
            return extension_error(
                errors.EXTENSION_TOO_MANY,
                f"Too many extensions registered, the maximum is {limits.MAX_EXTENSIONS}",
            )
        if any(ext.name == name for ext in self.by_id.values()):
            return extension_error(
                errors.EXTENSION_INVALID_STATE, f"Extension {name!r} is already registered"
            )
        try:
            body = json.loads(request.body or b"{}")
        except (ValueError, RecursionError):  # nested deeper than the parser goes
            return extension_error(errors.INVALID_REQUEST_FORMAT, "The body is not JSON", 400)
        if not isinstance(body, dict):
            return extension_error(errors.INVALID_REQUEST_FORMAT, "The body is not an object", 400)
        if "configurationKeys" in body:
            return extension_error(
                errors.INVALID_REQUEST_FORMAT, "configurationKeys is no longer supported"
            )
        events = body.get("events", [])
        external = name in self._external_names
        if not isinstance(events, list) or any(e not in _EVENT_TYPES for e in events):
            return extension_error(
                errors.EXTENSION_INVALID_EVENT_TYPE, f"Unknown event type in {events!r}"
            )
        if self.managed and events:
            # Managed Instances: external extensions get SHUTDOWN only, internal ones nothing
            # (as AWS's RIE in that mode answers).
            if not external:
                return extension_error(
                    errors.EXTENSION_INVALID_EVENT_TYPE,
                    "No events allowed for internal extensions",
                )
            if INVOKE in events:
                return extension_error(
                    errors.EXTENSION_INVALID_EVENT_TYPE, "INVOKE: ErrorInvalidEventType"
                )
        if not external and SHUTDOWN in events:
            return extension_error(
                errors.EXTENSION_INVALID_EVENT_TYPE,
                "Internal extensions are not permitted to register for the SHUTDOWN event",
            )
        extension = Extension(name, frozenset(events), external)
        self.by_id[extension.identifier] = extension
        if not self.unregistered_external():
            self._registered_external.set()
        answer: dict[str, str] = {
            "functionName": self._identity.function_name,
            "functionVersion": self._identity.function_version,
            "handler": self._identity.handler,
        }
        features = request.headers.get(headers.EXTENSION_ACCEPT_FEATURE, "")
        if "accountId" in (f.strip() for f in features.split(",")):
            answer["accountId"] = self._identity.account_id
        return Response(
            200,
            (*_JSON, ("Lambda-Extension-Identifier", extension.identifier)),
            json.dumps(answer).encode(),
        )

    def lookup(self, request: Request) -> Extension | Response:
        """The calling extension, or the 403 that the Extensions API answers instead."""
        identifier = request.headers.get(headers.EXTENSION_IDENTIFIER)
        if not identifier:
            return extension_error(
                errors.EXTENSION_MISSING_IDENTIFIER, "Missing Lambda-Extension-Identifier header"
            )
        try:
            uuid.UUID(identifier)
        except ValueError:
            return extension_error(
                errors.EXTENSION_INVALID_IDENTIFIER, "Invalid Lambda-Extension-Identifier"
            )
        extension = self.by_id.get(identifier)
        if extension is None:
            return extension_error(
                errors.EXTENSION_UNKNOWN_IDENTIFIER, "Unknown extension " + identifier
            )
        return extension

    def next(self, request: Request) -> Reply:
        extension = self.lookup(request)
        if isinstance(extension, Response):
            return extension
        if not extension.lifecycle.allows(ExtensionEvent.NEXT):
            return extension_error(
                errors.EXTENSION_INVALID_STATE,
                f"Extension {extension.name!r} reported an error and may make no further calls",
            )
        extension.lifecycle.fire(ExtensionEvent.NEXT)
        if self._on_next is not None:
            self._on_next(extension.name)
        if extension.pending is not None and not extension.pending.done():
            extension.pending.cancel()
        future: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        extension.pending = future
        if extension.queued:
            self._send(extension, extension.queued.popleft())
        else:
            self._on_waiting()
        return future

    def report_error(self, request: Request, phase: str) -> Response:
        """``init/error`` or ``exit/error``: the extension failed and should exit."""
        extension = self.lookup(request)
        if isinstance(extension, Response):
            return extension
        error_type = request.headers.get(headers.EXTENSION_ERROR_TYPE)
        if not error_type:
            return extension_error(
                errors.EXTENSION_MISSING_HEADER, "Missing Lambda-Extension-Function-Error-Type"
            )
        if not extension.lifecycle.allows(ExtensionEvent.ERROR):
            return extension_error(errors.EXTENSION_INVALID_STATE, "Error already reported")
        extension.lifecycle.fire(ExtensionEvent.ERROR)
        body = request.body
        try:
            if not isinstance(json.loads(body), dict):
                body = b""
        except (ValueError, RecursionError):
            body = b""
        self._on_failed(extension, error_type, body, phase == "init")
        return Response(202, _JSON, b'{"status":"OK"}')

    # Events ---------------------------------------------------------------------------------------
    def invoke(self, request_id: str, deadline_ms: int, invoked_arn: str, trace_id: str) -> None:
        """The INVOKE event of an invocation, to every subscriber."""
        if self.by_id:
            self.deliver(
                INVOKE,
                {
                    "eventType": INVOKE,
                    "deadlineMs": deadline_ms,
                    "requestId": request_id,
                    "invokedFunctionArn": invoked_arn,
                    "tracing": {"type": "X-Amzn-Trace-Id", "value": trace_id},
                },
            )

    def shutdown(self, reason: str, deadline_ms: int) -> None:
        """The SHUTDOWN event, to every subscriber."""
        self.deliver(
            SHUTDOWN, {"eventType": SHUTDOWN, "shutdownReason": reason, "deadlineMs": deadline_ms}
        )

    def deliver(self, event_type: str, event: dict[str, object]) -> None:
        """Give ``event`` to every extension subscribed to ``event_type``."""
        payload = json.dumps(event).encode()
        for extension in self.by_id.values():
            if event_type not in extension.events or extension.state is ExtensionState.FAILED:
                continue
            if extension.state is ExtensionState.WAITING and extension.pending is not None:
                self._send(extension, payload)
            else:
                extension.queued.append(payload)

    def _send(self, extension: Extension, payload: bytes) -> None:
        extension.lifecycle.fire(ExtensionEvent.EVENT)
        pending, extension.pending = extension.pending, None
        if pending is None or pending.done():
            extension.queued.appendleft(payload)  # its connection went away; keep for a retry
            return
        pending.set_result(
            Response(
                200,
                (*_JSON, ("Lambda-Extension-Event-Identifier", str(uuid.uuid4()))),
                payload,
            )
        )

    def close(self) -> None:
        """The environment is gone: held ``next`` calls end (the router refuses later ones)."""
        self.closed = True
        for extension in self.by_id.values():
            if extension.pending is not None and not extension.pending.done():
                extension.pending.cancel()
