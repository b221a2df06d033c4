"""Fixtures shared by the emulator's end-to-end tests."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator

import pytest


class _Collector(http.server.BaseHTTPRequestHandler):
    records: list[dict[str, object]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).records.extend(json.loads(body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def listener() -> Iterator[tuple[int, list[dict[str, object]]]]:
    """A Telemetry API destination on a free port, and the records it received."""
    records: list[dict[str, object]] = []
    handler = type("Collector", (_Collector,), {"records": records})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], records
    finally:
        server.shutdown()
        server.server_close()
