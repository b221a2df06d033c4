"""An example handler for lambdakit's Python runtime.

Run it locally:

    lambdakit serve --port 8080 --code-dir examples/python app.handler
    curl -s -XPOST http://127.0.0.1:8080/2015-03-31/functions/function/invocations \
        -d '{"name": "Zoë"}'

The caller gets the greeting at once; the "audit" line is written after the response is sent, and
the environment takes the next event only once it is done.
"""

import json
import logging
import time

from lambdakit import after_response
from lambdakit.runtime import current_context, on_shutdown

logger = logging.getLogger("example")
logger.setLevel(logging.INFO)
_audit_log: list[dict[str, object]] = []  # stands in for a metrics or audit client


def _record(name: str, started: float) -> None:
    """Slow, non-essential work: runs after the caller has the response."""
    time.sleep(0.2)  # e.g. flushing metrics or traces
    context = current_context()
    remaining = context.get_remaining_time_in_millis() if context else None
    _audit_log.append({"name": name, "took_ms": round((time.time() - started) * 1000)})
    logger.info("audit recorded for %s (%s ms left)", name, remaining)


@on_shutdown
def _flush() -> None:
    print(json.dumps({"audit_entries": len(_audit_log)}))


def _name(event: dict[str, object]) -> str:
    """``{"name": ...}`` from the Invoke API, or ``?name=...`` through the Function URL."""
    query = event.get("queryStringParameters")
    from_url = query.get("name") if isinstance(query, dict) else None
    return str(event.get("name") or from_url or "world")


def handler(event: dict[str, object], context: object) -> dict[str, object]:
    name = _name(event)
    after_response(_record, name, time.time())
    return {"message": f"Hello, {name}!"}


async def async_handler(event: dict[str, object], context: object) -> dict[str, object]:
    """``async def`` works too: every invocation runs on the same event loop."""
    import asyncio

    await asyncio.sleep(0)
    return {"message": f"Hello, {_name(event)}!", "async": True}
