"""``lambdakit.proxy``: build Runtime API proxies (the post-runner is one).

Stdlib only (it ships inside a Lambda layer); uses uvloop when it is importable.  A proxy is
:class:`RuntimeApiProxy` plus a :class:`Hooks` subclass; :func:`run_runtime` starts the runtime
behind it.  A minimal one that logs the size of every event::

    class EventSizes(Hooks):
        async def on_next(self, call: Call, forward: Forward) -> Reply:
            reply = await forward(call)
            logger.info("event of %d bytes", len(reply.body))
            return reply

    async def main(command: list[str]) -> int:
        proxy = RuntimeApiProxy(os.environ["AWS_LAMBDA_RUNTIME_API"], EventSizes())
        await proxy.start()
        return await run_runtime(command, proxy, os.environ)

See docs/post-runner.md and examples/proxy/.
"""

from __future__ import annotations

from lambdakit.proxy.calls import (
    Body,
    BodyStream,
    Call,
    CallKind,
    Invocation,
    RecordingStream,
    Reply,
    classify,
)
from lambdakit.proxy.hooks import Forward, Hook, Hooks
from lambdakit.proxy.server import RuntimeApiProxy
from lambdakit.proxy.supervise import report_init_error, run, run_runtime

__all__ = [
    "Body",
    "BodyStream",
    "Call",
    "CallKind",
    "Forward",
    "Hook",
    "Hooks",
    "Invocation",
    "RecordingStream",
    "Reply",
    "RuntimeApiProxy",
    "classify",
    "report_init_error",
    "run",
    "run_runtime",
]
