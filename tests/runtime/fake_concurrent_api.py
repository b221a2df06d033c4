"""A small Runtime API that accepts concurrent ``GET next`` (as Managed Instances' does).

Events are queued by the test; each ``GET next``, on whichever connection, takes the next one
(blocking until there is one); posts are recorded by request id.  Read with
``lambdakit.wire.http1`` through ``tests.http_fakes``.
"""

from __future__ import annotations

import contextlib
import json
import queue
import socket
import threading
from dataclasses import dataclass, field

from lambdakit.wire.http1 import RequestHead
from tests.http_fakes import MessageReader

_NEXT = "/2018-06-01/runtime/invocation/next"


@dataclass
class Posted:
    kind: str  # "response", "error" or "init/error"
    body: bytes
    headers: dict[str, str]


@dataclass
class FakeConcurrentApi:
    init_error_status: int = 202
    events: queue.Queue[tuple[str, dict[str, str], bytes]] = field(default_factory=queue.Queue)
    posted: dict[str, Posted] = field(default_factory=dict)
    init_errors: list[Posted] = field(default_factory=list)
    done: threading.Condition = field(default_factory=threading.Condition)

    def __post_init__(self) -> None:
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.address = f"127.0.0.1:{self._listener.getsockname()[1]}"
        self._conns: list[socket.socket] = []
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def add(self, request_id: str, payload: object, trace_id: str | None = None) -> None:
        headers = {
            "Lambda-Runtime-Deadline-Ms": "9999999999999",
            "Content-Type": "application/json",
        }
        if trace_id:
            headers["Lambda-Runtime-Trace-Id"] = trace_id
        self.events.put((request_id, headers, json.dumps(payload).encode()))

    def wait_posted(self, count: int, timeout: float = 20) -> dict[str, Posted]:
        with self.done:
            self.done.wait_for(lambda: len(self.posted) >= count, timeout)
            return dict(self.posted)

    def close(self) -> None:
        self._listener.close()
        for conn in list(self._conns):
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self._conns.append(conn)
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        reader = MessageReader(conn, server=True)
        with contextlib.suppress(OSError, EOFError):
            while (message := reader.read_message()) is not None:
                head = message.head
                assert isinstance(head, RequestHead)
                path = head.target
                if path == _NEXT:
                    request_id, headers, body = self.events.get()
                    fields = {"Lambda-Runtime-Aws-Request-Id": request_id, **headers}
                    self._reply(conn, 200, body, fields)
                elif path.endswith("/init/error"):
                    with self.done:
                        self.init_errors.append(Posted("init/error", message.body, message.headers))
                        self.done.notify_all()
                    self._reply(conn, self.init_error_status, b"{}", {})
                else:
                    _, _, request_id, kind = path.rsplit("/", 3)
                    with self.done:
                        self.posted[request_id] = Posted(kind, message.body, message.headers)
                        self.done.notify_all()
                    self._reply(conn, 202, b"{}", {})

    @staticmethod
    def _reply(conn: socket.socket, status: int, body: bytes, fields: dict[str, str]) -> None:
        head = f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\n"
        head += "".join(f"{name}: {value}\r\n" for name, value in fields.items())
        conn.sendall(head.encode() + b"\r\n" + body)
