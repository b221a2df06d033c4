"""The server's connection layer in memory: deferred replies, their order, and their edge cases.

A fake transport records what the protocol writes, so each test can check what went out on the
very stack that gave a reply, before the loop runs anything else.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from lambdakit.emulator.http.messages import Deferred, Reply, Request, Response
from lambdakit.emulator.http.server import HEAD_TIMEOUT, MAX_CONNECTIONS, HttpProtocol


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = False
        self.reading = True

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True


def _get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()


def _run(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(scenario())


class Connection:
    """One protocol on a fake transport; ``replies`` decides each request's reply by path."""

    def __init__(self, replies: dict[str, Callable[[], Reply]]) -> None:
        self.seen: list[str] = []

        def handler(request: Request) -> Reply:
            self.seen.append(request.path)
            return replies[request.path]()

        self.protocol = HttpProtocol(handler, 1024, set())
        self.transport = FakeTransport()
        self.protocol.connection_made(self.transport)

    @property
    def text(self) -> str:
        return self.transport.written.decode()


def test_a_deferred_reply_is_written_on_the_givers_stack() -> None:
    async def scenario() -> None:
        later = Deferred()
        connection = Connection({"/wait": lambda: later})
        connection.protocol.data_received(_get("/wait"))
        assert connection.transport.written == b"" and later.pending
        later.give(Response(200, (), b"now"))
        # Written before the loop ran anything: no future, no callback in between.
        assert connection.text.endswith("\r\n\r\nnow") and not later.pending
        later.give(Response(500, (), b"twice"))  # a second give is ignored
        assert "twice" not in connection.text

    _run(scenario)


def test_a_reply_given_before_the_handler_returned_is_written_at_once() -> None:
    async def scenario() -> None:
        def given() -> Deferred:
            reply = Deferred()
            reply.give(Response(200, (), b"early"))
            return reply

        connection = Connection({"/early": given})
        connection.protocol.data_received(_get("/early"))
        assert connection.text.endswith("early")

    _run(scenario)


def test_a_pipelined_request_waits_for_the_loop_not_the_givers_stack() -> None:
    async def scenario() -> None:
        later = Deferred()
        connection = Connection({"/wait": lambda: later, "/next": lambda: Response(200, (), b"2")})
        connection.protocol.data_received(_get("/wait") + _get("/next"))
        assert connection.seen == ["/wait"]  # the second waits its turn
        assert not connection.transport.reading  # and no more is read meanwhile
        later.give(Response(200, (), b"1"))
        assert connection.seen == ["/wait"]  # not served on the giver's stack
        await asyncio.sleep(0)
        assert connection.seen == ["/wait", "/next"]
        text = connection.text
        assert text.index("\r\n\r\n1") < text.index("\r\n\r\n2")  # in order
        assert text.endswith("\r\n\r\n2") and connection.transport.reading

    _run(scenario)


def test_a_lost_connection_leaves_the_reply_no_longer_pending() -> None:
    async def scenario() -> None:
        later = Deferred()
        connection = Connection({"/wait": lambda: later})
        connection.protocol.data_received(_get("/wait"))
        connection.protocol.connection_lost(None)
        assert not later.pending and later.gone
        later.give(Response(200, (), b"late"))  # dropped, no error
        assert connection.transport.written == b""

    _run(scenario)


def test_a_cancelled_reply_closes_the_connection_without_an_answer() -> None:
    async def scenario() -> None:
        later = Deferred()
        connection = Connection({"/wait": lambda: later})
        connection.protocol.data_received(_get("/wait"))
        later.cancel()
        assert connection.transport.closed and connection.transport.written == b""
        assert not later.pending

    _run(scenario)


def test_a_connection_that_asked_to_close_is_closed_after_its_deferred_reply() -> None:
    async def scenario() -> None:
        later = Deferred()
        connection = Connection({"/wait": lambda: later})
        head = b"GET /wait HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        connection.protocol.data_received(head)
        later.give(Response(200, (), b"bye"))
        assert "Connection: close" in connection.text
        await asyncio.sleep(0)
        assert connection.transport.closed

    _run(scenario)


def test_a_head_that_trickles_in_is_timed_from_its_first_byte() -> None:
    async def scenario() -> None:
        connection = Connection({"/": lambda: Response(200, (), b"")})
        protocol = connection.protocol
        protocol.data_received(b"G")
        started = protocol.active_at  # the head began
        for byte in b"ET / HTTP/1.1\r\nHost:":  # one byte at a time, never the end of the head
            protocol.data_received(bytes([byte]))
        # Each byte came in time, yet the head as a whole is late: the connection goes.
        assert protocol.active_at == started
        assert protocol.past_deadline(started + HEAD_TIMEOUT + 1)
        assert not protocol.past_deadline(started + HEAD_TIMEOUT - 1)

    _run(scenario)


def test_a_head_answer_has_no_body_but_keeps_its_length() -> None:
    async def scenario() -> None:
        connection = Connection({"/": lambda: Response(404, (), b'{"message": "nope"}')})
        connection.protocol.data_received(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n" + _get("/"))
        await asyncio.sleep(0)
        first, _, second = connection.text.partition("HTTP/1.1 404")[2].partition("HTTP/1.1 404")
        assert first.endswith("Content-Length: 19\r\n\r\n")  # the head alone
        assert second.endswith('\r\n\r\n{"message": "nope"}')  # a GET after it has its body

    _run(scenario)


def test_connections_over_the_limit_are_closed_at_once() -> None:
    async def scenario() -> None:
        def handler(request: Request) -> Reply:
            return Response(200, (), b"")

        connections: set[HttpProtocol] = set()
        for _ in range(MAX_CONNECTIONS):
            HttpProtocol(handler, 1024, connections).connection_made(FakeTransport())
        assert len(connections) == MAX_CONNECTIONS
        one_more = FakeTransport()
        HttpProtocol(handler, 1024, connections).connection_made(one_more)
        assert one_more.closed and len(connections) == MAX_CONNECTIONS

    _run(scenario)
