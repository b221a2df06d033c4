"""Handlers for bench/managed_instances.py: an I/O-bound invocation, 50 ms of waiting.

Both return the event, a small JSON object, so that the harness (``bench.load``) checks that each
caller got its own answer back: with 16 invocations in flight in one environment, a mix-up would
show as an echo mismatch.  Run from ``--code-dir bench`` as ``lmi_handler.async_handler`` or
``lmi_handler.sync_handler``; the module imports only the standard library.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

#: How long each invocation waits, in seconds.
WAIT_S = 0.05


async def async_handler(event: Any, context: Any) -> Any:
    """Await 50 ms (a task on the runtime's loop; other invocations run meanwhile)."""
    await asyncio.sleep(WAIT_S)
    return event


def sync_handler(event: Any, context: Any) -> Any:
    """Block 50 ms (a worker process of its own per concurrent invocation)."""
    time.sleep(WAIT_S)
    return event
