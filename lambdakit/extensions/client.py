"""A blocking client of the Extensions API and the Telemetry API (stdlib ``http.client``).

https://docs.aws.amazon.com/lambda/latest/dg/runtimes-extensions-api.html and
https://docs.aws.amazon.com/lambda/latest/dg/telemetry-api-reference.html

One client is one extension: ``register`` stores the identifier that every later call sends.
Calls go over one keep-alive connection to ``AWS_LAMBDA_RUNTIME_API``; ``next_event`` blocks for as
long as the platform holds the request (there is no timeout: the environment is frozen meanwhile).
"""

from __future__ import annotations

import http.client
import json
import logging
import traceback
from collections.abc import Iterable, Mapping, Sequence

from lambdakit.extensions.events import Event, Registration, parse_event
from lambdakit.wire import environment as env
from lambdakit.wire import extensions as wire
from lambdakit.wire import headers, paths

logger = logging.getLogger("lambdakit.extensions")


class ConfigError(Exception):
    """A setting the extension needs is missing or invalid (the message names it)."""


class ExtensionsApiError(Exception):
    """The Extensions or Telemetry API refused a call."""

    def __init__(self, method: str, path: str, status: int, error_type: str, message: str) -> None:
        super().__init__(f"{method} {path}: {status} {error_type}: {message}")
        self.status = status
        self.error_type = error_type


class ExtensionsApiClient:
    """The Extensions API as one extension sees it."""

    def __init__(self, address: str) -> None:
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"{env.RUNTIME_API} must be host:port, got {address!r}")
        self._host = host
        self._port = int(port)
        self._connection: http.client.HTTPConnection | None = None
        self.identifier = ""

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> ExtensionsApiClient:
        address = environ.get(env.RUNTIME_API, "")
        if not address:
            raise ConfigError(f"{env.RUNTIME_API} is not set: this is not a Lambda environment")
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
        for attempt in (1, 2):
            connection = self._connect()
            try:
                connection.request(method, path, body, dict(fields))
                response = connection.getresponse()
                answer = response.read()
            except (ConnectionError, http.client.HTTPException) as exc:
                # The platform closed a kept-alive connection; one fresh one is worth a try.
                self.close()
                if attempt == 2:
                    raise
                logger.debug("%s %s: %s, reconnecting", method, path, exc)
                continue
            found = {name.lower(): value for name, value in response.getheaders()}
            if response.status >= 300:
                raise _api_error(method, path, response.status, answer)
            return answer, found
        raise AssertionError("unreachable")

    def _connect(self) -> http.client.HTTPConnection:
        if self._connection is None:
            self._connection = http.client.HTTPConnection(self._host, self._port, timeout=None)
        return self._connection

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


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
