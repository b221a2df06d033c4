"""A Runtime API proxy that logs the size of every event and result, built on lambdakit.proxy.

Run a runtime behind it (as a custom runtime's bootstrap, or a container's ENTRYPOINT):

    python examples/proxy/event_sizes.py ./bootstrap
    lambdakit serve --code-dir tests/runtimes/bash --handler function.echo_event \
        -- python examples/proxy/event_sizes.py ./bootstrap

Each invocation logs ``event <id>: N bytes`` and ``result <id>: N bytes`` (a streamed
response is counted as it passes, without being buffered).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import AsyncIterator, Mapping, Sequence

from lambdakit.proxy import (
    BodyStream,
    Call,
    Forward,
    Hooks,
    Invocation,
    Reply,
    RuntimeApiProxy,
    run,
    run_runtime,
)

logger = logging.getLogger("event_sizes")


class CountingStream(BodyStream):
    """Counts a streamed body's bytes as they pass."""

    def __init__(self, source: BodyStream) -> None:
        super().__init__()
        self._source = source
        self.size = 0

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        chunk = await self._source.__anext__()
        self.size += len(chunk)
        return chunk

    @property
    def trailers(self) -> tuple[tuple[str, str], ...]:
        return self._source.trailers


class EventSizes(Hooks):
    async def on_next(self, call: Call, forward: Forward) -> Reply:
        reply = await forward(call)
        invocation = Invocation.from_reply(reply)
        if invocation is not None:
            logger.info("event %s: %d bytes", invocation.request_id, len(invocation.event))
        return reply

    async def on_response(self, call: Call, forward: Forward) -> Reply:
        if isinstance(call.body, BodyStream):
            counter = CountingStream(call.body)
            reply = await forward(call.with_body(counter))
            logger.info("result %s: %d bytes (streamed)", call.request_id, counter.size)
            return reply
        logger.info("result %s: %d bytes", call.request_id, len(call.body))
        return await forward(call)


async def serve(command: Sequence[str], environ: Mapping[str, str]) -> int:
    proxy = RuntimeApiProxy(environ["AWS_LAMBDA_RUNTIME_API"], EventSizes())
    await proxy.start()  # 127.0.0.1 on a free port
    return await run_runtime(command, proxy, environ)  # exits with the runtime's status


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="event-sizes: %(message)s")
    sys.exit(run(serve(sys.argv[1:], os.environ)))
