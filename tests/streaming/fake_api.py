"""A fake Runtime API on a raw socket that records the exact bytes a runtime sends.

It answers ``GET next`` with the queued events (then holds the last ``GET next`` open, as Lambda
does while no event waits), reads ``POST`` bodies framed by Content-Length or chunked (with the
codec, :mod:`tests.http_fakes`), records every chunk with the time it was complete, the trailer
fields and the body's bytes as sent, and answers 202.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lambdakit.wire.http1 import END, EndOfMessage, RequestHead
from tests.http_fakes import MessageReader

NEXT = "/2018-06-01/runtime/invocation/next"
ARN = b"arn:aws:lambda:us-east-1:123456789012:function:f"


@dataclass
class Chunk:
    data: bytes
    at: float  # time.monotonic() when the whole chunk had arrived


@dataclass
class Post:
    path: str
    head: bytes  # request line and header fields, as sent
    headers: dict[str, str]  # lower-cased names
    raw: bytes = b""  # everything after the head, as sent (chunk framing included)
    chunks: list[Chunk] = field(default_factory=list)
    trailers: dict[str, str] = field(default_factory=dict)
    done_at: float = 0.0

    @property
    def body(self) -> bytes:
        return b"".join(c.data for c in self.chunks)


class FakeRuntimeApi:
    def __init__(self, events: Sequence[tuple[str, object]]) -> None:
        self.events = list(events)  # (request id, JSON payload)
        self.posts: list[Post] = []
        self.started_posts: list[Post] = []  # visible as soon as the head has arrived
        self.nexts = 0
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self._threads: list[threading.Thread] = []
        self._conns: list[socket.socket] = []

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self._listener.getsockname()[1]}"

    def start(self) -> None:
        self._spawn(self._accept)

    def stop(self) -> None:
        with self._cond:
            self._stop.set()
            self._cond.notify_all()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        for conn in list(self._conns):
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(10)
        for conn in self._conns:
            conn.close()

    def wait(self, predicate: Callable[[], object], timeout: float = 30.0) -> bool:
        with self._cond:
            return bool(self._cond.wait_for(predicate, timeout))

    def wait_posts(self, count: int, timeout: float = 30.0) -> list[Post]:
        assert self.wait(lambda: len(self.posts) >= count, timeout), (
            f"expected {count} posts, got {len(self.posts)}"
        )
        return self.posts

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self._conns.append(conn)
            self._spawn(self._serve, conn)

    def _serve(self, conn: socket.socket) -> None:
        reader = MessageReader(conn, server=True, whole_chunks=True, record=True)
        with contextlib.suppress(EOFError, OSError):
            while not self._stop.is_set() and self._one(reader):
                pass

    def _one(self, reader: MessageReader) -> bool:
        """Serve one request; False once the runtime has closed the connection."""
        head = reader.next_event()
        if head is None:
            return False
        assert isinstance(head, RequestHead), head
        if head.method == "GET" and head.target == NEXT:
            assert reader.next_event() == END
            reader.take_recorded()
            self._next(reader.sock)
            return True
        post = Post(head.target, head.raw, dict(head.headers))
        with self._cond:
            self.started_posts.append(post)
            self._cond.notify_all()
        while not isinstance(event := reader.next_event(), EndOfMessage):
            assert isinstance(event, bytes), event  # one chunk (or the whole Content-Length body)
            with self._cond:
                post.chunks.append(Chunk(event, time.monotonic()))
                self._cond.notify_all()
        post.trailers = dict(event.trailers)
        post.raw = reader.take_recorded()[len(head.raw) :]
        post.done_at = time.monotonic()
        with self._cond:
            self.posts.append(post)
            self._cond.notify_all()
        body = b'{"status":"OK"}'
        reader.sock.sendall(
            b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        return True

    def _next(self, conn: socket.socket) -> None:
        with self._cond:
            self.nexts += 1
            self._cond.notify_all()
            if not self.events:
                # No more events: hold this GET open until the test ends.
                self._cond.wait_for(self._stop.is_set)
                raise EOFError
            request_id, payload = self.events.pop(0)
        body = json.dumps(payload).encode()
        deadline = int((time.time() + 60) * 1000)
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Lambda-Runtime-Aws-Request-Id: %s\r\n"
            b"Lambda-Runtime-Deadline-Ms: %d\r\n"
            b"Lambda-Runtime-Invoked-Function-Arn: %s\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (request_id.encode(), deadline, ARN, len(body), body)
        )


@contextlib.contextmanager
def runtime_against_fake_api(
    code_dir: Path, handler: str, events: Sequence[tuple[str, object]], log: Path
) -> Iterator[tuple[FakeRuntimeApi, subprocess.Popen[bytes]]]:
    """``python -m lambdakit.runtime HANDLER`` talking to a FakeRuntimeApi; always reaped.

    The runtime's output goes to ``log``.
    """
    api = FakeRuntimeApi(events)
    api.start()
    env = {
        **os.environ,
        "AWS_LAMBDA_RUNTIME_API": api.address,
        "LAMBDA_TASK_ROOT": str(code_dir),
        "AWS_LAMBDA_FUNCTION_NAME": "f",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "lambdakit.runtime", handler],
            cwd=code_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield api, process
    finally:
        process.kill()
        process.wait(30)
        api.stop()
