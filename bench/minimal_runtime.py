"""The minimal Lambda runtime both servers run in the benchmarks: it echoes each event.

Stdlib only, and lean on purpose (no http.client: it pulls in the email package), so that the
server, not the runtime, dominates the measurement. It keeps one HTTP/1.1 keep-alive connection to
``AWS_LAMBDA_RUNTIME_API`` and loops ``GET next`` -> ``POST {id}/response`` with the event as the
body. ``BENCH_SLEEP_MS`` (default 0) makes it sleep that long before each response;
``BENCH_CONNECTION_PER_REQUEST=1`` makes it close its connection after every call, as a runtime
that opens one per request (bash+curl) does.  ``BENCH_RUNTIME_CLIENT=http.client`` makes it the
shape most hand-written Python runtimes have instead: an ``http.client`` loop.
"""

from __future__ import annotations

import os
import socket
import time

NEXT_PATH = "/2018-06-01/runtime/invocation/next"
RESPONSE_PATH = "/2018-06-01/runtime/invocation/{}/response"
REQUEST_ID = b"lambda-runtime-aws-request-id"
Response = tuple[int, dict[bytes, bytes], bytes]  # status, headers (lower-case names), body


class Connection:
    """A raw-socket HTTP/1.1 keep-alive client for the Runtime API (reconnects when closed)."""

    def __init__(self, address: str) -> None:
        host, _, port = address.rpartition(":")
        self.address = (host or "127.0.0.1", int(port))
        self.host_header = address.encode()
        self.sock: socket.socket | None = None
        self.buf = b""

    def _connect(self) -> socket.socket:
        sock = socket.create_connection(self.address)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock
        self.buf = b""
        return sock

    def request(
        self, method: bytes, path: bytes, body: bytes = b""
    ) -> tuple[int, dict[bytes, bytes], bytes]:
        head = b"%s %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n\r\n" % (
            method,
            path,
            self.host_header,
            len(body),
        )
        for attempt in (0, 1):
            sock = self.sock or self._connect()
            try:
                sock.sendall(head + body)
                return self._read_response(sock)
            except (ConnectionError, EOFError):
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def _fill(self, sock: socket.socket) -> None:
        data = sock.recv(65536)
        if not data:
            raise EOFError("connection closed by the server")
        self.buf += data

    def _read_response(self, sock: socket.socket) -> Response:
        while (end := self.buf.find(b"\r\n\r\n")) < 0:
            self._fill(sock)
        lines = self.buf[:end].split(b"\r\n")
        self.buf = self.buf[end + 4 :]
        status = int(lines[0].split(b" ", 2)[1])
        headers: dict[bytes, bytes] = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
            body = self._read_chunked(sock)
        else:
            length = int(headers.get(b"content-length", b"0"))
            while len(self.buf) < length:
                self._fill(sock)
            body, self.buf = self.buf[:length], self.buf[length:]
        if headers.get(b"connection", b"").lower() == b"close":
            self.close()
        return status, headers, body

    def _read_chunked(self, sock: socket.socket) -> bytes:
        parts: list[bytes] = []
        while True:
            while (eol := self.buf.find(b"\r\n")) < 0:
                self._fill(sock)
            size = int(self.buf[:eol].split(b";", 1)[0], 16)
            self.buf = self.buf[eol + 2 :]
            if size == 0:  # skip trailer lines up to the empty line
                while True:
                    while (eol := self.buf.find(b"\r\n")) < 0:
                        self._fill(sock)
                    line, self.buf = self.buf[:eol], self.buf[eol + 2 :]
                    if not line:
                        return b"".join(parts)
            while len(self.buf) < size + 2:
                self._fill(sock)
            parts.append(self.buf[:size])
            self.buf = self.buf[size + 2 :]


def http_client_loop(address: str) -> None:
    """The same loop as most hand-written Python runtimes: one keep-alive ``http.client``
    connection, which sends a POST's head and body in two writes and leaves Nagle on."""
    import http.client  # here: only this shape pays for the email package

    conn = http.client.HTTPConnection(address)
    while True:
        conn.request("GET", NEXT_PATH)
        reply = conn.getresponse()
        event = reply.read()
        if reply.status != 200:
            raise SystemExit(f"GET next: HTTP {reply.status}: {event[:200]!r}")
        request_id = reply.getheader("Lambda-Runtime-Aws-Request-Id") or ""
        conn.request("POST", RESPONSE_PATH.format(request_id), event)
        answer = conn.getresponse()
        body = answer.read()
        if answer.status != 202:
            raise SystemExit(f"POST response: HTTP {answer.status}: {body[:200]!r}")


def main() -> None:
    if os.environ.get("BENCH_RUNTIME_CLIENT") == "http.client":
        http_client_loop(os.environ["AWS_LAMBDA_RUNTIME_API"])
        return
    conn = Connection(os.environ["AWS_LAMBDA_RUNTIME_API"])
    sleep_s = int(os.environ.get("BENCH_SLEEP_MS", "0") or "0") / 1000.0
    next_path = NEXT_PATH.encode()
    churn = os.environ.get("BENCH_CONNECTION_PER_REQUEST") == "1"
    while True:
        status, headers, event = conn.request(b"GET", next_path)
        if churn:
            conn.close()
        if status != 200:
            raise SystemExit(f"GET next: HTTP {status}: {event[:200]!r}")
        request_id = headers[REQUEST_ID].decode()
        if sleep_s:
            time.sleep(sleep_s)
        path = RESPONSE_PATH.format(request_id).encode()
        status, _, body = conn.request(b"POST", path, event)
        if churn:
            conn.close()
        if status != 202:
            raise SystemExit(f"POST response: HTTP {status}: {body[:200]!r}")


if __name__ == "__main__":
    main()
