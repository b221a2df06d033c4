"""lambdakit's Python runtime client: ``python -m lambdakit.runtime module.handler``.

A stdlib-only drop-in for ``python -m awslambdaric module.handler`` (same handler resolution,
error types, context and log formats) that starts faster, runs ``async def`` handlers on one
long-lived event loop, and runs ``after_response`` tasks after the response is sent.
See docs/runtime.md.

Importing this package is nearly free: it is on the cold-start path.
"""

from __future__ import annotations

from lambdakit.runtime.shutdown import on_shutdown

TYPE_CHECKING = False
if TYPE_CHECKING:
    from lambdakit.runtime.tasks import after_response, current_context, current_trace_id

__all__ = ["after_response", "current_context", "current_trace_id", "on_shutdown"]


def __getattr__(name: str) -> object:
    # tasks.py is imported when first asked for, not at every cold start: most handlers never
    # use it (the runtime loop imports it only when an invocation has queued tasks).
    if name in ("after_response", "current_context", "current_trace_id"):
        from lambdakit.runtime import tasks

        return getattr(tasks, name)
    raise AttributeError(f"module 'lambdakit.runtime' has no attribute {name!r}")
