"""A raw-socket custom runtime for the post-runner tests: what it sends is spelled out in bytes;
replies are read with lambdakit's HTTP/1.1 codec (no HTTP library).

Echoes each event as its response, unless the event asks otherwise:

* ``{"stream": ["a", "b"], "pause": 0.2}``: a streamed response (chunked), pausing between chunks;
* ``{"stream": [...], "error_type": "T"}``: a streamed response ending in error trailers;
* ``{"fail": true}``: an ``/error`` post;
* ``{"exit_after_post": N}``: post the response, then exit with status N without reading the reply;
* ``{"bad_chunk": true}``: a streamed response whose first chunk size is ``-6`` (malformed).

It prints ``posting <t>`` before each result and ``accepted <status> <t>`` when the Runtime API
answers (``time.time()``), so tests can see whether the runtime was kept waiting.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import sys
import time

from lambdakit.wire.http1 import Event, Parser, ResponseHead

HOST, PORT = os.environ["AWS_LAMBDA_RUNTIME_API"].rsplit(":", 1)
PREFIX = "/2018-06-01/runtime/invocation/"


class Connection:
    """One keep-alive connection; replies are read with lambdakit's HTTP/1.1 codec."""

    def __init__(self) -> None:
        self.sock = socket.create_connection((HOST, int(PORT)))
        self.parser = Parser(server=False)
        self.events: list[Event] = []

    def read_reply(self) -> tuple[int, dict[str, str], bytes]:
        head: ResponseHead | None = None
        body = b""
        while True:
            while not self.events:
                data = self.sock.recv(65536)
                if not data:
                    raise SystemExit("the Runtime API closed the connection")
                self.events = self.parser.feed(data)
            event = self.events.pop(0)
            if isinstance(event, ResponseHead):
                head = event
            elif isinstance(event, bytes):
                body += event
            else:
                assert head is not None
                return head.status, dict(head.headers), body

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)


def say(message: str) -> None:
    sys.stdout.write(message + "\n")
    sys.stdout.flush()


def main() -> None:
    conn = Connection()
    while True:
        conn.send(f"GET {PREFIX}next HTTP/1.1\r\nHost: api\r\n\r\n".encode())
        _, fields, event = conn.read_reply()
        request_id = fields["lambda-runtime-aws-request-id"]
        try:
            document = json.loads(event)
        except ValueError:
            document = None
        say(f"posting {time.time():.6f}")
        if isinstance(document, dict) and document.get("bad_chunk"):
            conn.send(
                f"POST {PREFIX}{request_id}/response HTTP/1.1\r\nHost: api\r\n"
                "Lambda-Runtime-Function-Response-Mode: streaming\r\n"
                "Transfer-Encoding: chunked\r\n\r\n-6\r\nX".encode()
            )
            status, _, _ = conn.read_reply()
            say(f"accepted {status} {time.time():.6f}")
            conn = Connection()  # that connection is done for
            continue
        if isinstance(document, dict) and "stream" in document:
            stream(conn, request_id, document)
        elif isinstance(document, dict) and document.get("fail"):
            body = b'{"errorMessage":"raw failure","errorType":"RawError"}'
            conn.send(
                f"POST {PREFIX}{request_id}/error HTTP/1.1\r\nHost: api\r\n"
                f"Lambda-Runtime-Function-Error-Type: RawError\r\n"
                f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
        else:
            conn.send(
                f"POST {PREFIX}{request_id}/response HTTP/1.1\r\nHost: api\r\n"
                f"Content-Length: {len(event)}\r\n\r\n".encode()
                + event
            )
            if isinstance(document, dict) and "exit_after_post" in document:
                os._exit(int(document["exit_after_post"]))
        status, _, _ = conn.read_reply()
        say(f"accepted {status} {time.time():.6f}")


def stream(conn: Connection, request_id: str, document: dict[str, object]) -> None:
    conn.send(
        f"POST {PREFIX}{request_id}/response HTTP/1.1\r\nHost: api\r\n"
        "Lambda-Runtime-Function-Response-Mode: streaming\r\n"
        "Content-Type: text/plain\r\nTransfer-Encoding: chunked\r\n"
        "Trailer: Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body\r\n"
        "\r\n".encode()
    )
    chunks = document["stream"]
    assert isinstance(chunks, list)
    for chunk in chunks:
        data = str(chunk).encode()
        conn.send(b"%x\r\n%b\r\n" % (len(data), data))
        time.sleep(float(str(document.get("pause", 0))))
    error_type = document.get("error_type")
    trailers = b""
    if error_type:
        body = json.dumps({"errorMessage": "stream broke", "errorType": error_type}).encode()
        trailers = (
            f"Lambda-Runtime-Function-Error-Type: {error_type}\r\n"
            f"Lambda-Runtime-Function-Error-Body: {base64.b64encode(body).decode()}\r\n"
        ).encode()
    conn.send(b"0\r\n" + trailers + b"\r\n")


if __name__ == "__main__":
    main()
