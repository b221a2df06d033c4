"""lambdakit's Python runtime client: ``python -m lambdakit.runtime module.handler``.

A stdlib-only drop-in for ``python -m awslambdaric module.handler`` (same handler resolution,
error types, context and log formats) that starts faster, runs ``async def`` handlers on one
long-lived event loop, and runs ``after_response`` tasks after the response is sent.
See docs/runtime.md.

Importing this package is nearly free: it is on the cold-start path.
"""

from __future__ import annotations

from lambdakit.runtime.shutdown import on_shutdown
from lambdakit.runtime.tasks import after_response, current_context

__all__ = ["after_response", "current_context", "on_shutdown"]
