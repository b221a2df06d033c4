"""ExtensionsApiClient on the wire: what it sends, which connection each call uses, its errors.

The server is a raw-socket fake of the Extensions API on loopback, one thread per connection,
that records every request with the number of the connection it came on.  ``event/next`` is
held until the test releases an event, as Lambda holds it until one happens.
"""

from __future__ import annotations

import contextlib
import json
import queue
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from lambdakit.extensions import (
    ExtensionsApiClient,
    ExtensionsApiError,
    ExtensionsConnectionError,
    InvokeEvent,
)
from lambdakit.wire import paths
from lambdakit.wire.http1 import RequestHead
from tests.http_fakes import MessageReader

IDENTIFIER = "8c3d3f6a-0f38-4d8b-9e31-2d9a7b1c0e55"
REGISTERED = b'{"functionName":"f","functionVersion":"$LATEST","handler":"app.handler"}'
INVOKE = (
    b'{"eventType":"INVOKE","deadlineMs":1542409706888,"requestId":"r-1",'
    b'"invokedFunctionArn":"arn:aws:lambda:us-east-1:123456789012:function:f"}'
)
SHUTDOWN = b'{"eventType":"SHUTDOWN","shutdownReason":"spindown","deadlineMs":5}'


@dataclass
class Request:
    connection: int  # 1 for the first connection accepted, and so on
    method: str
    path: str
    fields: list[tuple[str, str]]  # as sent, names lower-cased
    body: bytes

    def field(self, name: str) -> str | None:
        values = [v for n, v in self.fields if n == name]
        assert len(values) <= 1, (name, self.fields)
        return values[0] if values else None


Answer = Callable[[Request], bytes]


def _response(status: int, body: bytes = b"", extra: str = "") -> bytes:
    reason = {200: "OK", 202: "Accepted", 403: "Forbidden", 500: "Internal Server Error"}[status]
    head = f"HTTP/1.1 {status} {reason}\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
    return head.encode() + body


@dataclass
class FakeExtensionsApi:
    """``answer`` decides every reply except ``event/next``'s, which waits for :meth:`release`."""

    answer: Answer
    requests: list[Request] = field(default_factory=list)
    accepted: int = 0
    events: queue.Queue[bytes] = field(default_factory=queue.Queue)
    cond: threading.Condition = field(default_factory=threading.Condition)
    close_after_reply: bool = False  # close each connection once its reply is out

    def release(self, event: bytes) -> None:
        self.events.put(event)

    def wait_requests(self, count: int) -> list[Request]:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.requests) >= count, 10), self.requests
            return list(self.requests)

    def serve(self, conn: socket.socket, number: int) -> None:
        reader = MessageReader(conn, server=True)
        while (message := reader.read_message()) is not None:
            head = message.head
            assert isinstance(head, RequestHead) and head.version == "HTTP/1.1"
            request = Request(number, head.method, head.target, list(head.headers), message.body)
            with self.cond:
                self.requests.append(request)
                self.cond.notify_all()
            if request.path == paths.EXTENSION_NEXT:
                reply = _response(200, self.events.get(timeout=10))
            else:
                reply = self.answer(request)
            conn.sendall(reply)
            if self.close_after_reply:
                # The fd is closed at the end of the test; the client may have hung up first.
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                return


def _registers(request: Request) -> bytes:
    if request.path == paths.EXTENSION_REGISTER:
        return _response(200, REGISTERED, f"Lambda-Extension-Identifier: {IDENTIFIER}\r\n")
    return _response(202, b'{"status":"OK"}')


@contextlib.contextmanager
def fake_api(answer: Answer = _registers) -> Iterator[tuple[FakeExtensionsApi, str]]:
    api = FakeExtensionsApi(answer)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    threads: list[threading.Thread] = []
    conns: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            api.accepted += 1
            conns.append(conn)
            thread = threading.Thread(target=api.serve, args=(conn, api.accepted), daemon=True)
            threads.append(thread)
            thread.start()

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    try:
        yield api, f"127.0.0.1:{listener.getsockname()[1]}"
    finally:
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        listener.close()
        acceptor.join(5)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for thread in threads:
            thread.join(5)
        for conn in conns:
            conn.close()


def test_each_call_sends_what_the_extensions_api_expects() -> None:
    with fake_api() as (api, address):
        client = ExtensionsApiClient(address)
        registration = client.register("audit", ["INVOKE", "SHUTDOWN"], account_id=True)
        api.release(INVOKE)
        event = client.next_event()
        client.subscribe({"schemaVersion": "2022-12-13", "types": ["platform"]})
        client.init_error("Extension.ConfigInvalid", "no table")
        client.exit_error("Extension.ExitError", "gone")
        client.close()
        register, next_, subscribe, init_error, exit_error = api.wait_requests(5)

    assert registration.identifier == IDENTIFIER == client.identifier
    assert (registration.function_name, registration.handler) == ("f", "app.handler")
    assert isinstance(event, InvokeEvent) and event.request_id == "r-1"
    common = [("host", address), ("accept-encoding", "identity")]
    assert (register.method, register.path) == ("POST", paths.EXTENSION_REGISTER)
    assert sorted(register.fields) == sorted(
        [
            *common,
            ("content-length", str(len(register.body))),
            ("lambda-extension-name", "audit"),
            ("lambda-extension-accept-feature", "accountId"),
        ]
    )
    assert json.loads(register.body) == {"events": ["INVOKE", "SHUTDOWN"]}
    identity = ("lambda-extension-identifier", IDENTIFIER)
    assert (next_.method, next_.path, next_.body) == ("GET", paths.EXTENSION_NEXT, b"")
    assert sorted(next_.fields) == sorted([*common, identity])  # no Content-Length on a GET
    assert (subscribe.method, subscribe.path) == ("PUT", paths.TELEMETRY)
    assert sorted(subscribe.fields) == sorted(
        [
            *common,
            ("content-length", str(len(subscribe.body))),
            identity,
            ("content-type", "application/json"),
        ]
    )
    assert json.loads(subscribe.body)["types"] == ["platform"]
    for request, path, error_type in (
        (init_error, paths.EXTENSION_INIT_ERROR, "Extension.ConfigInvalid"),
        (exit_error, paths.EXTENSION_EXIT_ERROR, "Extension.ExitError"),
    ):
        assert (request.method, request.path) == ("POST", path)
        assert sorted(request.fields) == sorted(
            [
                *common,
                ("content-length", str(len(request.body))),
                identity,
                ("lambda-extension-function-error-type", error_type),
            ]
        )
        assert json.loads(request.body)["errorType"] == error_type
    # One thread, one keep-alive connection, as before.
    assert {r.connection for r in (register, next_, subscribe, init_error, exit_error)} == {1}


def test_a_call_made_while_next_is_blocked_goes_over_another_connection() -> None:
    with fake_api() as (api, address):
        client = ExtensionsApiClient(address)
        client.register("audit", ["INVOKE", "SHUTDOWN"])
        got: list[object] = []
        waiter = threading.Thread(target=lambda: got.append(client.next_event()))
        waiter.start()
        try:
            api.wait_requests(2)  # next is held by the platform
            client.exit_error("Extension.ExitError", "from another thread")  # must not wait
            assert not got
        finally:
            api.release(SHUTDOWN)
            waiter.join(10)
        assert got and got[0].__class__.__name__ == "ShutdownEvent"
        api.release(INVOKE)
        client.next_event()  # sequential again: a kept connection, no new one
        client.close()
        register, next_, exit_error, next_again = api.wait_requests(4)
    assert (next_.path, exit_error.path) == (paths.EXTENSION_NEXT, paths.EXTENSION_EXIT_ERROR)
    assert register.connection == next_.connection == 1
    assert exit_error.connection == 2
    assert next_again.connection in (1, 2)
    assert api.accepted == 2


def test_concurrent_nexts_each_have_their_own_connection() -> None:
    with fake_api() as (api, address):
        client = ExtensionsApiClient(address)
        client.register("audit", ["INVOKE"])
        threads = [threading.Thread(target=client.next_event) for _ in range(3)]
        for thread in threads:
            thread.start()
        try:
            nexts = api.wait_requests(4)[1:]
        finally:
            for _ in threads:
                api.release(INVOKE)
            for thread in threads:
                thread.join(10)
        client.close()
    assert sorted(r.connection for r in nexts) == [1, 2, 3]


def test_errors_are_raised_as_before() -> None:
    def refuse(request: Request) -> bytes:
        if request.path == paths.EXTENSION_REGISTER:
            body = b'{"errorType":"Extension.RegistrationClosed","errorMessage":"too late"}'
            return _response(403, body)
        return _response(500, b"not json")

    with fake_api(refuse) as (_, address):
        client = ExtensionsApiClient(address)
        with pytest.raises(
            ExtensionsApiError, match=r"403 Extension\.RegistrationClosed: too late"
        ):
            client.register("audit", ["INVOKE"])
        client.identifier = IDENTIFIER
        with pytest.raises(ExtensionsApiError, match="500 : not json") as raised:
            client.exit_error("Extension.ExitError", "x")
        assert (raised.value.status, raised.value.error_type) == (500, "")
        client.close()

    with fake_api(lambda request: _response(200, b"{}")) as (_, address):
        client = ExtensionsApiClient(address)
        with pytest.raises(ExtensionsApiError, match="no Lambda-Extension-Identifier"):
            client.register("audit", ["INVOKE"])
        client.close()

    with pytest.raises(RuntimeError, match="register"):
        ExtensionsApiClient("127.0.0.1:9").next_event()


def test_an_unreachable_api_raises_an_oserror() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{unused.getsockname()[1]}"  # bound, not listening: refused
        client = ExtensionsApiClient(address)
        with pytest.raises(
            ExtensionsConnectionError, match="register to the Extensions API at"
        ) as raised:
            client.register("audit", ["INVOKE"])
    # The callers (the internal extension, Extension.run's reports) catch OSError.
    assert isinstance(raised.value, OSError)
    assert isinstance(raised.value.__cause__.__cause__, ConnectionRefusedError)  # type: ignore[union-attr]


def test_a_kept_connection_the_platform_closed_is_replaced() -> None:
    with fake_api() as (api, address):
        api.close_after_reply = True  # every connection is closed once answered
        client = ExtensionsApiClient(address)
        client.register("audit", ["INVOKE", "SHUTDOWN"])
        api.release(SHUTDOWN)
        client.next_event()
        client.close()
        requests = api.wait_requests(2)
    assert [r.connection for r in requests] == [1, 2]


def test_the_client_imports_no_http_client() -> None:
    code = (
        "import sys, lambdakit.extensions.internal, lambdakit.extensions.client; "
        "heavy = {'http.client', 'email', 'ssl'} & set(sys.modules); assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)
