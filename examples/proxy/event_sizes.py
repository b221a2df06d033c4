"""A Runtime API proxy that logs the size of every event and result, built on lambdakit.proxy.

Run a runtime behind it (as a custom runtime's bootstrap, or a container's ENTRYPOINT):

    python examples/proxy/event_sizes.py ./bootstrap
    lambdakit serve --code-dir tests/fixtures/runtimes/bash --handler function.echo_event \
        -- python examples/proxy/event_sizes.py ./bootstrap

Each invocation logs ``event <id>: N bytes`` and ``result <id>: N bytes`` (a streamed
response is counted as it passes, without being buffered).  Hooks are plain functions, run on
the thread that serves the runtime's connection.
"""

from __future__ import annotations

import logging
import os
import sys

from lambdakit.proxy import (
    Call,
    Forward,
    ForwardedBody,
    Hooks,
    ProxiedInvocation,
    RecordingStream,
    Reply,
    RuntimeApiProxy,
    run_runtime,
)

logger = logging.getLogger("event_sizes")


class EventSizes(Hooks):
    def on_next(self, call: Call, forward: Forward) -> Reply:
        reply = forward(call)
        invocation = ProxiedInvocation.from_reply(reply)
        if invocation is not None:
            logger.info("event %s: %d bytes", invocation.request_id, len(invocation.event))
        return reply

    def on_response(self, call: Call, forward: Forward) -> Reply:
        if isinstance(call.body, ForwardedBody):
            counter = RecordingStream(call.body, limit=0)  # counts the chunks, keeps none
            reply = forward(call.with_body(counter))
            logger.info("result %s: %d bytes (streamed)", call.request_id, counter.size)
            return reply
        logger.info("result %s: %d bytes", call.request_id, len(call.body))
        return forward(call)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="event-sizes: %(message)s")
    proxy = RuntimeApiProxy(os.environ["AWS_LAMBDA_RUNTIME_API"], EventSizes())
    proxy.start()  # 127.0.0.1 on a free port, served by the proxy's own threads
    sys.exit(run_runtime(sys.argv[1:], proxy, os.environ))  # exits with the runtime's status
