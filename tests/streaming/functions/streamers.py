"""Streaming handlers for the tests.  ``event["release"]``, when given, is a file path: the
handler waits for it to exist after its first chunk, so a test can prove that the chunk reached
the Runtime API while the handler was still running."""

import asyncio
import os
import sys
import time
from typing import Any

from lambdakit.runtime import after_response
from lambdakit.streaming import HttpPrelude, streamify_response


def _wait_for(path: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.01)


def _mark(event: dict[str, Any], name: str) -> None:
    """Write a marker file next to the release file (when the handler ends, for example)."""
    if event.get("release"):
        with open(event["release"] + "." + name, "w") as f:
            f.write(repr(time.monotonic()))


def generator(event, context):
    yield b"first"
    if event.get("release"):
        _wait_for(event["release"])
    yield "second é"
    yield b""  # empty chunks are skipped
    yield bytearray(b"!")
    _mark(event, "ended")


def generator_fails_midway(event, context):
    yield b"partial"
    raise ValueError("mid-stream boom")


def generator_fails_first(event, context):
    raise KeyError("before the first byte")
    yield b"never"


def generator_yields_int(event, context):
    yield b"ok"
    yield 42


def generator_yields_int_first(event, context):
    yield 42


def generator_empty(event, context):
    return
    yield b"never"


def generator_http(event, context):
    yield HttpPrelude(201, {"content-type": "text/plain", "x-a": "b"}, ["a=1; Path=/"])
    yield "hello "
    if event.get("queryStringParameters", {}).get("release"):
        _wait_for(event["queryStringParameters"]["release"])
    yield "url"


async def async_generator(event, context):
    yield b"async first"
    if event.get("release"):
        await asyncio.to_thread(_wait_for, event["release"])
    yield b" async second"
    _mark(event, "ended")


async def async_generator_fails(event, context):
    yield b"x"
    await asyncio.sleep(0)
    raise RuntimeError("async boom")


@streamify_response
def writer(event, response_stream, context):
    response_stream.set_content_type("text/plain; charset=utf-8")
    response_stream.write("line 1\n")
    if event.get("release"):
        _wait_for(event["release"])
    response_stream.write(b"line 2\n")
    _mark(event, "ended")


@streamify_response
def writer_http(event, response_stream, context):
    response_stream.set_http_prelude(
        status_code=404, headers={"content-type": "text/html"}, cookies=["c=d"]
    )
    response_stream.write("<p>not here</p>")
    response_stream.close()


@streamify_response
def writer_prelude_only(event, response_stream, context):
    response_stream.set_http_prelude(status_code=204)


@streamify_response
def writer_closes_early(event, response_stream, context):
    response_stream.write("done early")
    response_stream.close()
    if event.get("release"):
        _wait_for(event["release"])
    _mark(event, "ended")


@streamify_response
def writer_fails_first(event, response_stream, context):
    response_stream.set_content_type("text/plain")
    raise LookupError("nothing written yet")


@streamify_response
def writer_fails_midway(event, response_stream, context):
    response_stream.write("some ")
    raise ZeroDivisionError("division by zero")


@streamify_response
async def writer_async(event, response_stream, context):
    response_stream.write("async ")
    await asyncio.sleep(0.01)
    response_stream.write(context.aws_request_id)


def generator_with_task(event, context):
    after_response(_mark, event, "task")
    yield b"with a task"


def plain(event, context):
    return {"streaming_loaded": "lambdakit.runtime.streaming" in sys.modules}
