"""What the runtime sends for a streamed response, byte for byte, to a raw-socket Runtime API."""

from __future__ import annotations

import base64
import json
import shutil
import time
from pathlib import Path

import pytest

from tests.streaming.fake_api import FakeRuntimeApi, Post, runtime_against_fake_api

FUNCTIONS = Path(__file__).resolve().parent / "functions"
RESPONSE = "/2018-06-01/runtime/invocation/r1/response"
ERROR = "/2018-06-01/runtime/invocation/r1/error"
TRAILER = "lambda-runtime-function-error-type, lambda-runtime-function-error-body"


@pytest.fixture
def code_dir(tmp_path: Path) -> Path:
    code = tmp_path / "code"
    shutil.copytree(FUNCTIONS, code, ignore=shutil.ignore_patterns("__pycache__"))
    return code


def _run(code_dir: Path, handler: str, events: int = 1, payload: object = None) -> list[Post]:
    """Serve ``events`` invocations (r1, r2, ...) of ``handler``; return the posts."""
    queue = [(f"r{i + 1}", payload or {}) for i in range(events)]
    with runtime_against_fake_api(code_dir, handler, queue, code_dir / "runtime.log") as (api, _):
        posts = api.wait_posts(events)
        assert api.wait(lambda: api.nexts == events + 1), "no GET next after the last response"
    return posts


def _log(code_dir: Path) -> str:
    return (code_dir / "runtime.log").read_text()


def _streaming_head(post: Post, content_type: str) -> None:
    assert post.head.startswith(f"POST {post.path} HTTP/1.1\r\n".encode())
    assert post.headers["content-type"] == content_type
    assert post.headers["lambda-runtime-function-response-mode"] == "streaming"
    assert post.headers["transfer-encoding"] == "chunked"
    assert post.headers["trailer"] == TRAILER
    assert "content-length" not in post.headers


def test_generator_streams_each_chunk_before_the_handler_ends(code_dir: Path) -> None:
    release = code_dir / "release"
    event = [("r1", {"release": str(release)})]
    with runtime_against_fake_api(code_dir, "streamers.generator", event, code_dir / "log") as (
        api,
        _,
    ):
        # The handler is blocked until the release file exists: the first chunk must get here
        # on its own.  A buffering runtime would never send it, and this wait would fail.
        assert api.wait(lambda: bool(api.started_posts) and bool(api.started_posts[0].chunks))
        post = api.started_posts[0]
        assert [c.data for c in post.chunks] == [b"first"]
        assert not (code_dir / "release.ended").exists()
        release.touch()
        [post] = api.wait_posts(1)
    _streaming_head(post, "application/octet-stream")
    assert post.path == RESPONSE
    assert [c.data for c in post.chunks] == [b"first", "second é".encode(), b"!"]
    # The exact body bytes: one chunk per yield (empty yields skipped), the last chunk, no
    # trailer fields.
    assert post.raw == b"5\r\nfirst\r\n9\r\nsecond \xc3\xa9\r\n1\r\n!\r\n0\r\n\r\n"
    assert post.trailers == {}


def test_the_exact_request_head(code_dir: Path) -> None:
    [post] = _run(code_dir, "streamers.generator_empty")
    lines = post.head.split(b"\r\n")
    assert lines[0] == f"POST {RESPONSE} HTTP/1.1".encode()
    assert lines[1:5] == [
        b"content-type: application/octet-stream",
        b"lambda-runtime-function-response-mode: streaming",
        b"trailer: " + TRAILER.encode(),
        b"transfer-encoding: chunked",
    ]
    assert lines[5] == b"host: " + post.headers["host"].encode()
    assert lines[6].startswith(b"user-agent: lambdakit-python/")
    assert lines[7:] == [b"", b""]
    assert post.raw == b"0\r\n\r\n"  # an empty generator: an empty streamed response


def test_mid_stream_exception_ends_with_error_trailers(code_dir: Path) -> None:
    [post] = _run(code_dir, "streamers.generator_fails_midway")
    assert post.path == RESPONSE
    assert post.body == b"partial"
    assert post.trailers["lambda-runtime-function-error-type"] == "ValueError"
    error = json.loads(base64.b64decode(post.trailers["lambda-runtime-function-error-body"]))
    assert error["errorType"] == "ValueError"
    assert error["errorMessage"] == "mid-stream boom"
    assert error["requestId"] == "r1"
    assert len(error["stackTrace"]) == 1  # the runtime's frames are trimmed
    assert "streamers.py" in error["stackTrace"][0]
    assert "generator_fails_midway" in error["stackTrace"][0]
    assert post.raw.startswith(b"7\r\npartial\r\n0\r\nlambda-runtime-function-error-type: ")
    assert post.raw.endswith(b"\r\n\r\n")
    assert "[ERROR] ValueError: mid-stream boom" in _log(code_dir)


def test_exception_before_the_first_byte_is_an_ordinary_error(code_dir: Path) -> None:
    [post] = _run(code_dir, "streamers.generator_fails_first")
    assert post.path == ERROR
    assert post.headers["lambda-runtime-function-error-type"] == "KeyError"
    assert "transfer-encoding" not in post.headers
    error = json.loads(post.body)
    assert (error["errorType"], error["errorMessage"]) == ("KeyError", "'before the first byte'")
    assert "generator_fails_first" in error["stackTrace"][0]


@pytest.mark.parametrize(
    ("handler", "path"),
    [("streamers.generator_yields_int", RESPONSE), ("streamers.generator_yields_int_first", ERROR)],
)
def test_yielding_something_else_than_bytes_or_str(code_dir: Path, handler: str, path: str) -> None:
    [post] = _run(code_dir, handler)
    assert post.path == path
    message = "Unable to marshal response: a streaming handler must yield bytes or str, not int"
    if path == ERROR:
        assert json.loads(post.body)["errorMessage"] == message
        return
    assert post.body == b"ok"
    assert post.trailers["lambda-runtime-function-error-type"] == "Runtime.MarshalError"
    body = json.loads(base64.b64decode(post.trailers["lambda-runtime-function-error-body"]))
    assert body["errorMessage"] == message


def test_generator_http_prelude(code_dir: Path) -> None:
    [post] = _run(code_dir, "streamers.generator_http")
    _streaming_head(post, "application/vnd.awslambda.http-integration-response")
    prelude, _, rest = post.chunks[0].data.partition(b"\x00" * 8)
    assert json.loads(prelude) == {
        "statusCode": 201,
        "headers": {"content-type": "text/plain", "x-a": "b"},
        "cookies": ["a=1; Path=/"],
    }
    assert rest == b"hello "  # the prelude goes out with the first write, in its chunk
    assert post.body.endswith(b"\x00" * 8 + b"hello url")


def test_async_generator_streams_before_it_ends(code_dir: Path) -> None:
    release = code_dir / "release"
    event = [("r1", {"release": str(release)})]
    handler = "streamers.async_generator"
    with runtime_against_fake_api(code_dir, handler, event, code_dir / "log") as (api, _):
        assert api.wait(lambda: bool(api.started_posts) and bool(api.started_posts[0].chunks))
        assert not (code_dir / "release.ended").exists()
        release.touch()
        [post] = api.wait_posts(1)
    assert [c.data for c in post.chunks] == [b"async first", b" async second"]


def test_async_generator_failure(code_dir: Path) -> None:
    [post] = _run(code_dir, "streamers.async_generator_fails")
    assert post.trailers["lambda-runtime-function-error-type"] == "RuntimeError"
    body = json.loads(base64.b64decode(post.trailers["lambda-runtime-function-error-body"]))
    assert body["stackTrace"][0].count("async_generator_fails") == 1
    assert len(body["stackTrace"]) == 1  # the event loop's frames are trimmed too


def test_writer_streams_before_it_ends(code_dir: Path) -> None:
    release = code_dir / "release"
    event = [("r1", {"release": str(release)})]
    with runtime_against_fake_api(code_dir, "streamers.writer", event, code_dir / "log") as (
        api,
        _,
    ):
        assert api.wait(lambda: bool(api.started_posts) and bool(api.started_posts[0].chunks))
        assert not (code_dir / "release.ended").exists()
        release.touch()
        [post] = api.wait_posts(1)
    _streaming_head(post, "text/plain; charset=utf-8")
    assert post.raw == b"7\r\nline 1\n\r\n7\r\nline 2\n\r\n0\r\n\r\n"


def test_writer_close_ends_the_response_while_the_handler_runs_on(code_dir: Path) -> None:
    release = code_dir / "release"
    event = [("r1", {"release": str(release)})]
    handler = "streamers.writer_closes_early"
    with runtime_against_fake_api(code_dir, handler, event, code_dir / "log") as (api, _):
        [post] = api.wait_posts(1)  # complete, zero chunk included ...
        assert not (code_dir / "release.ended").exists()  # ... while the handler still runs
        time.sleep(0.2)
        assert api.nexts == 1  # and the next event waits for the handler
        release.touch()
        assert api.wait(lambda: api.nexts == 2)
    assert post.raw == b"a\r\ndone early\r\n0\r\n\r\n"


def test_writer_http_prelude(code_dir: Path) -> None:
    [post] = _run(code_dir, "streamers.writer_http")
    _streaming_head(post, "application/vnd.awslambda.http-integration-response")
    expected = (
        b'{"statusCode": 404, "headers": {"content-type": "text/html"}, "cookies": ["c=d"]}'
        + b"\x00" * 8
        + b"<p>not here</p>"
    )
    assert post.raw == b"%x\r\n%s\r\n0\r\n\r\n" % (len(expected), expected)


def test_writer_prelude_without_body(code_dir: Path) -> None:
    [post] = _run(code_dir, "streamers.writer_prelude_only")
    assert post.body == b'{"statusCode": 204, "headers": {}, "cookies": []}' + b"\x00" * 8


def test_writer_failures(code_dir: Path) -> None:
    [post] = _run(code_dir, "streamers.writer_fails_first")
    assert post.path == ERROR
    assert json.loads(post.body)["errorType"] == "LookupError"
    [post] = _run(code_dir, "streamers.writer_fails_midway")
    assert post.path == RESPONSE and post.body == b"some "
    assert post.trailers["lambda-runtime-function-error-type"] == "ZeroDivisionError"


def test_async_writer_and_several_invocations(code_dir: Path) -> None:
    posts = _run(code_dir, "streamers.writer_async", events=3)
    assert [p.body for p in posts] == [b"async r1", b"async r2", b"async r3"]


def test_after_response_tasks_run_after_a_streamed_response(code_dir: Path) -> None:
    release = code_dir / "release"
    [post] = _run(code_dir, "streamers.generator_with_task", payload={"release": str(release)})
    assert post.body == b"with a task"
    assert (code_dir / "release.task").exists()


def test_plain_handlers_never_load_the_streaming_code(code_dir: Path) -> None:
    [post] = _run(code_dir, "streamers.plain", events=1)
    assert json.loads(post.body) == {"streaming_loaded": False}
    assert "transfer-encoding" not in post.headers


def test_fake_api_sanity() -> None:
    api = FakeRuntimeApi([])
    api.start()
    api.stop()
