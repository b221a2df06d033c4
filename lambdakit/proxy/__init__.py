"""``lambdakit.proxy``: build Runtime API proxies (the post-runner is one).

Stdlib only (it ships inside a Lambda layer): blocking sockets, a thread per runtime connection,
synchronous hooks.  A proxy is :class:`RuntimeApiProxy` plus a :class:`Hooks` subclass;
:func:`run_runtime` starts the runtime behind it.  A minimal one that logs the size of every
event::

    class EventSizes(Hooks):
        def on_next(self, call: Call, forward: Forward) -> Reply:
            reply = forward(call)
            logger.info("event of %d bytes", len(reply.body))
            return reply

    def main(command: list[str]) -> int:
        proxy = RuntimeApiProxy(os.environ["AWS_LAMBDA_RUNTIME_API"], EventSizes())
        proxy.start()
        return run_runtime(command, proxy, os.environ)

See docs/post-runner.md and examples/proxy/.
"""

from __future__ import annotations

from lambdakit.proxy.calls import (
    Body,
    Call,
    CallKind,
    ForwardedBody,
    ProxiedInvocation,
    RecordingStream,
    Reply,
    Result,
    classify,
)
from lambdakit.proxy.hooks import Forward, Hook, Hooks
from lambdakit.proxy.server import RuntimeApiProxy
from lambdakit.proxy.sockets import HungUp
from lambdakit.proxy.supervise import report_init_error, run_runtime
from lambdakit.proxy.upstream import UpstreamError

__all__ = [
    "Body",
    "Call",
    "CallKind",
    "Forward",
    "ForwardedBody",
    "Hook",
    "Hooks",
    "HungUp",
    "ProxiedInvocation",
    "RecordingStream",
    "Reply",
    "Result",
    "RuntimeApiProxy",
    "UpstreamError",
    "classify",
    "report_init_error",
    "run_runtime",
]
