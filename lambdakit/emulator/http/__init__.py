"""A small HTTP/1.1 server for the Invoke and Runtime APIs.

``messages`` holds the frozen request/response values, ``codec`` turns bytes into requests and
responses into bytes without doing I/O, and ``server`` is the thin asyncio layer that moves bytes.
"""

from lambdakit.emulator.http.messages import (
    BodyConsumer,
    BodyStream,
    Deferred,
    Handler,
    Reply,
    Request,
    Response,
    ResponseWriter,
    Streamed,
)

__all__ = [
    "BodyConsumer",
    "BodyStream",
    "Deferred",
    "Handler",
    "Reply",
    "Request",
    "Response",
    "ResponseWriter",
    "Streamed",
]
