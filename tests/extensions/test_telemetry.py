"""The telemetry helper: an Extension with ``telemetry = (...)`` gets a local listener,
subscribed during Init, and receives every invocation's platform records and function lines."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

from lambdakit.extensions import Buffering, TelemetryListener, TelemetryRecord
from lambdakit.wire.http1 import encode_chunk, encode_last_chunk
from tests.extensions.support import PYEXT, python_extension
from tests.http_fakes import MessageReader, read_response
from tests.serving import bash_function, running_serve


def test_a_python_subscriber_receives_platform_records_and_function_lines(
    tmp_path: Path,
) -> None:
    python_extension(tmp_path, "tele", f"{PYEXT / 'audit.py'}:Telemetry")
    flags = ("--function-name", "tele", "--concurrency", "1", "--extensions-dir", str(tmp_path))
    with running_serve(*bash_function(*flags)) as serve:
        ids = [serve.invoke("tele")[1]["x-amzn-requestid"] for _ in range(3)]
        assert serve.wait_for_output(r"^REPORT", count=3, timeout=15)
        serve.stop()  # the last report goes out before SHUTDOWN (the listener is frozen now)
    received: dict[str, list[object]] = {}
    for kind, detail in re.findall(r"^\[tele\] (\S+) (.*)$", serve.output(), re.M):
        received.setdefault(kind, []).append(json.loads(detail))
    for kind in ("platform.start", "platform.runtimeDone", "platform.report"):
        assert received.get(kind) == ids, (kind, serve.output())
    assert received["function"] == ["got an event"] * 3
    assert {"platform.initStart", "platform.initRuntimeDone", "platform.initReport"} <= set(
        received
    )


def test_the_listener_yields_posted_batches_in_order() -> None:
    import http.client

    with TelemetryListener(path="/t") as listener:
        assert listener.uri == f"http://sandbox.localdomain:{listener.port}/t"
        batch = [
            {
                "time": "2026-01-01T00:00:00.000Z",
                "type": "platform.start",
                "record": {"requestId": "r1"},
            },
            {"time": "2026-01-01T00:00:00.001Z", "type": "function", "record": "a line"},
        ]
        connection = http.client.HTTPConnection("127.0.0.1", listener.port, timeout=10)
        connection.request("POST", "/t", json.dumps(batch).encode())
        assert connection.getresponse().status == 200
        connection.close()
        records = list(listener.records(timeout=2))
    assert records == [
        TelemetryRecord("2026-01-01T00:00:00.000Z", "platform.start", {"requestId": "r1"}),
        TelemetryRecord("2026-01-01T00:00:00.001Z", "function", "a line"),
    ]
    assert records[0].request_id == "r1" and records[1].request_id is None


def test_the_subscription_body_is_lambdas() -> None:
    with TelemetryListener() as listener:
        body = listener.subscription(["platform"], Buffering(timeout_ms=100))
    assert body == {
        "schemaVersion": "2022-12-13",
        "types": ["platform"],
        "buffering": {"maxItems": 1000, "maxBytes": 262144, "timeoutMs": 100},
        "destination": {"protocol": "HTTP", "URI": listener.uri},
    }


def test_records_end_when_the_listener_closes() -> None:
    listener = TelemetryListener().start()
    listener.close()
    assert list(listener.records()) == []


def test_the_listener_reads_chunked_batches_and_refuses_anything_else() -> None:
    batch = json.dumps([{"time": "t", "type": "function", "record": "chunked"}]).encode()
    requests = [
        (b"GET /telemetry HTTP/1.1\r\nHost: x\r\n\r\n", 501),
        (b"GARBAGE\r\n\r\n", 400),
        (
            b"POST /telemetry HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            + encode_chunk(batch[:10])
            + encode_chunk(batch[10:])
            + encode_last_chunk(),
            200,
        ),
    ]
    with TelemetryListener() as listener:
        for request, status in requests:
            with socket.create_connection(("127.0.0.1", listener.port), timeout=10) as sock:
                sock.sendall(request)
                assert read_response(sock).status == status
                assert MessageReader(sock, server=False).at_eof()  # one request a connection
        records = list(listener.records(timeout=1))
    assert records == [TelemetryRecord("t", "function", "chunked")]
