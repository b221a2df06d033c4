"""A scriptable fake Runtime API on a real loopback socket, and a raw client, for proxy tests."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from lambdakit.proxy.http1 import EndOfMessage, Headers, Parser, RequestHead

OK_202 = (
    b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n"
    b'{"status":"OK"}'
)


def event_reply(request_id: str, body: bytes) -> bytes:
    return (
        f"HTTP/1.1 200 OK\r\nLambda-Runtime-Aws-Request-Id: {request_id}\r\n"
        f"Lambda-Runtime-Deadline-Ms: 4102444800000\r\n"
        f"Lambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:1:function:f\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


@dataclass
class Seen:
    head: RequestHead
    body: bytearray = field(default_factory=bytearray)
    chunks: list[bytes] = field(default_factory=list)
    trailers: Headers = ()
    complete: asyncio.Event = field(default_factory=asyncio.Event)


Responder = Callable[[Seen], Awaitable[bytes | None]]


class FakeRuntimeApi:
    """Records every request; answers each with ``responder(seen)`` (None: never answer)."""

    def __init__(self, responder: Responder) -> None:
        self.responder = responder
        self.requests: list[Seen] = []
        self.connections = 0
        self.closed = asyncio.Event()
        self.first_chunk = asyncio.Event()
        self.got_request = asyncio.Event()
        self.address = ""
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.address = f"127.0.0.1:{port}"
        return self.address

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        parser = Parser(server=True)
        current: Seen | None = None
        try:
            while data := await reader.read(65536):
                for event in parser.feed(data):
                    if isinstance(event, RequestHead):
                        current = Seen(event)
                        self.requests.append(current)
                        self.got_request.set()
                    elif isinstance(event, bytes):
                        assert current is not None
                        current.body += event
                        current.chunks.append(event)
                        self.first_chunk.set()
                    elif isinstance(event, EndOfMessage):
                        assert current is not None
                        current.trailers = event.trailers
                        current.complete.set()
                        reply = await self.responder(current)
                        if reply is not None:
                            writer.write(reply)
                            await writer.drain()
        except ConnectionError:
            pass
        finally:
            self.closed.set()
            writer.close()


class RawClient:
    """The runtime's side: a socket that reads whole replies (Content-Length framed)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, address: str) -> RawClient:
        host, port = address.rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def reply(self) -> tuple[int, dict[str, str], bytes]:
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 10)
        lines = head.decode("latin-1").split("\r\n")
        fields = {}
        for line in lines[1:]:
            if ":" in line:
                name, _, value = line.partition(":")
                fields[name.strip().lower()] = value.strip()
        body = await self.reader.readexactly(int(fields.get("content-length", "0")))
        return int(lines[0].split()[1]), fields, body

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()
