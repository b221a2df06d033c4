"""A blocking client of the Extensions API and the Telemetry API.

https://docs.aws.amazon.com/lambda/latest/dg/runtimes-extensions-api.html and
https://docs.aws.amazon.com/lambda/latest/dg/telemetry-api-reference.html

One client is one extension: ``register`` stores the identifier that every later call sends.
Calls go to ``AWS_LAMBDA_RUNTIME_API`` over keep-alive connections of the runtime's raw-socket
HTTP/1.1 client (:mod:`lambdakit.runtime.transport`: ``http.client`` would add about 14 ms to
the Init of a function that imports ``lambdakit.extensions``, most of it the ``email`` package).
Each call takes an idle connection, or opens one, and puts it back when its response is read:
called from one thread, the client uses one connection, as Lambda's examples do; a thread
blocked in ``next_event``, for as long as the platform holds the request (there is no timeout:
the environment is frozen meanwhile), keeps its connection to itself, and a call from another
thread meanwhile goes over another.
"""

from __future__ import annotations

import json
import threading
import traceback
from collections.abc import Iterable, Mapping, Sequence

from lambdakit.extensions.events import Event, Registration, parse_event
from lambdakit.runtime.transport import Connection, RuntimeApiError
from lambdakit.wire import environment as env
from lambdakit.wire import extensions as wire
from lambdakit.wire import headers, paths

#: What ``http.client`` added to every call, kept so that requests are as they were (and, as
#: with it, no ``User-Agent``).
_FIXED_FIELDS = (("accept-encoding", "identity"),)


class ExtensionConfigError(Exception):
    """A setting the extension needs is missing or invalid (the message names it)."""


class ExtensionsApiError(Exception):
    """The Extensions or Telemetry API refused a call."""

    def __init__(self, method: str, path: str, status: int, error_type: str, message: str) -> None:
        super().__init__(f"{method} {path}: {status} {error_type}: {message}")
        self.status = status
        self.error_type = error_type


class ExtensionsConnectionError(ConnectionError):
    """The Extensions or Telemetry API could not be reached, or its answer could not be read."""


class ExtensionsApiClient:
    """The Extensions API as one extension sees it."""

    def __init__(self, address: str) -> None:
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise ExtensionConfigError(f"{env.RUNTIME_API} must be host:port, got {address!r}")
        self._address = address
        self._lock = threading.Lock()
        self._idle: list[Connection] = []  # kept-alive connections no call is using
        self._closes = 0  # close() calls: a connection in use meanwhile is not kept
        self.identifier = ""

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> ExtensionsApiClient:
        address = environ.get(env.RUNTIME_API, "")
        if not address:
            raise ExtensionConfigError(
                f"{env.RUNTIME_API} is not set: this is not a Lambda environment"
            )
        return cls(address)

    # Extensions API -----------------------------------------------------------------------------
    def register(
        self, name: str, events: Iterable[str], *, account_id: bool = False
    ) -> Registration:
        """``POST /extension/register``: ``name`` must be the executable's file name for an
        external extension (Lambda matches it against /opt/extensions)."""
        fields = {headers.EXTENSION_NAME: name}
        if account_id:
            fields[headers.EXTENSION_ACCEPT_FEATURE] = wire.FEATURE_ACCOUNT_ID
        body = json.dumps({"events": list(events)}).encode()
        answer, status_headers = self._call("POST", paths.EXTENSION_REGISTER, body, fields)
        self.identifier = status_headers.get(headers.EXTENSION_IDENTIFIER, "")
        if not self.identifier:
            raise ExtensionsApiError(
                "POST", paths.EXTENSION_REGISTER, 200, "", "no Lambda-Extension-Identifier"
            )
        document = json.loads(answer or b"{}")
        return Registration(
            name=name,
            identifier=self.identifier,
            function_name=str(document.get("functionName", "")),
            function_version=str(document.get("functionVersion", "")),
            handler=str(document.get("handler", "")),
            account_id=document.get("accountId"),
        )

    def next_event(self) -> Event:
        """``GET /extension/event/next``: says the last event is done and waits for the next."""
        body, _ = self._call("GET", paths.EXTENSION_NEXT, None, self._identity())
        return parse_event(body)

    def init_error(self, error_type: str, error: BaseException | str) -> None:
        """``POST /extension/init/error``: Init fails; the extension should exit afterwards."""
        self._report(paths.EXTENSION_INIT_ERROR, error_type, error)

    def exit_error(self, error_type: str, error: BaseException | str) -> None:
        """``POST /extension/exit/error``: the extension is exiting because of ``error``."""
        self._report(paths.EXTENSION_EXIT_ERROR, error_type, error)

    def _report(self, path: str, error_type: str, error: BaseException | str) -> None:
        fields = {**self._identity(), headers.EXTENSION_ERROR_TYPE: error_type}
        self._call("POST", path, json.dumps(error_request(error_type, error)).encode(), fields)

    # Telemetry API ------------------------------------------------------------------------------
    def subscribe(self, subscription: Mapping[str, object], path: str = paths.TELEMETRY) -> None:
        """``PUT /2022-07-01/telemetry`` (or the Logs API's path): only during Init."""
        fields = {**self._identity(), headers.CONTENT_TYPE: headers.JSON_CONTENT_TYPE}
        self._call("PUT", path, json.dumps(subscription).encode(), fields)

    # Transport ----------------------------------------------------------------------------------
    def _identity(self) -> dict[str, str]:
        if not self.identifier:
            raise RuntimeError("register() first: the Extensions API needs the identifier")
        return {headers.EXTENSION_IDENTIFIER: self.identifier}

    def _call(
        self, method: str, path: str, body: bytes | None, fields: Mapping[str, str]
    ) -> tuple[bytes, dict[str, str]]:
        connection, closes = self._take()
        kept = False
        try:
            # The transport retries once, on a fresh connection, a request sent on a kept-alive
            # one that the platform had closed meanwhile (no byte of a response received).
            response = connection.request(
                method, path, body or b"", [*_FIXED_FIELDS, *fields.items()]
            )
            kept = True
        except RuntimeApiError as exc:
            raise ExtensionsConnectionError(str(exc)) from exc
        finally:
            self._give_back(connection, closes, kept)
        if response.status >= 300:
            raise _api_error(method, path, response.status, response.body)
        return response.body, response.headers

    def _take(self) -> tuple[Connection, int]:
        """An idle connection (the last one used) or a new one, for one call."""
        with self._lock:
            if self._idle:
                return self._idle.pop(), self._closes
            closes = self._closes
        return Connection(self._address, None, "Extensions API"), closes

    def _give_back(self, connection: Connection, closes: int, kept: bool) -> None:
        """Keep ``connection`` for the next call, unless its call failed or close() came since."""
        with self._lock:
            if kept and closes == self._closes:
                self._idle.append(connection)
                return
        connection.close()

    def close(self) -> None:
        """Close the idle connections; one in use (a blocked ``next_event``) is closed when its
        call returns.  The client stays usable: a later call opens a new connection."""
        with self._lock:
            idle, self._idle = self._idle, []
            self._closes += 1
        for connection in idle:
            connection.close()


def error_request(error_type: str, error: BaseException | str) -> dict[str, object]:
    """The ErrorRequest body of ``init/error`` and ``exit/error``."""
    if isinstance(error, BaseException):
        stack: Sequence[str] = traceback.format_exception(type(error), error, error.__traceback__)
        return {"errorMessage": str(error), "errorType": error_type, "stackTrace": list(stack)}
    return {"errorMessage": error, "errorType": error_type, "stackTrace": []}


def _api_error(method: str, path: str, status: int, body: bytes) -> ExtensionsApiError:
    error_type, message = "", body.decode("utf-8", "replace")
    try:
        document = json.loads(body)
    except ValueError:
        document = None
    if isinstance(document, dict):
        error_type = str(document.get("errorType", ""))
        message = str(document.get("errorMessage", message))
    return ExtensionsApiError(method, path, status, error_type, message)
