"""An internal extension in a few lines of the standard library: work after the response.

The handler calls :func:`after_response` (or :func:`nothing_after`) once per invocation.  A
thread registered with the Extensions API waits in ``event/next``; Lambda calls it with each
INVOKE, the thread runs what the handler queued, and only then asks for the next event, so
Lambda keeps the environment (and bills it) until that work is done, while the caller already
has its answer.  This is the pattern of the AWS Compute Blog post "Running code after returning
a response from an AWS Lambda function"
(https://aws.amazon.com/blogs/compute/running-code-after-returning-a-response-from-an-aws-lambda-function/),
written here from scratch.  ``lambdakit.extensions.background_task`` is the packaged form.
"""

from __future__ import annotations

import json
import os
import queue
import threading
import urllib.request
from collections.abc import Callable
from typing import Any

NAME = "after-response"
_API = f"http://{os.environ['AWS_LAMBDA_RUNTIME_API']}/2020-01-01/extension"
_work: queue.Queue[tuple[Callable[..., Any], tuple[Any, ...]] | None] = queue.Queue()


def after_response(work: Callable[..., Any], *args: Any) -> None:
    """Run ``work(*args)`` once this invocation's response has gone."""
    _work.put((work, args))


def nothing_after() -> None:
    """This invocation leaves nothing to do afterwards."""
    _work.put(None)


def log(message: str) -> None:
    print(message, flush=True)


def _request(path: str, body: bytes | None, headers: dict[str, str]) -> Any:
    request = urllib.request.Request(f"{_API}/{path}", data=body, headers=headers)
    return urllib.request.urlopen(request, timeout=None)  # event/next blocks until an event


def _serve(identifier: str) -> None:
    while True:
        with _request("event/next", None, {"Lambda-Extension-Identifier": identifier}):
            pass  # an INVOKE: the handler is running and will queue its follow-up
        item = _work.get()
        if item is not None:
            work, args = item
            work(*args)
        # Looping back to event/next tells Lambda this invocation's work is over.


def _start() -> None:
    body = json.dumps({"events": ["INVOKE"]}).encode()
    with _request("register", body, {"Lambda-Extension-Name": NAME}) as response:
        identifier = response.headers["Lambda-Extension-Identifier"]
    threading.Thread(target=_serve, args=(identifier,), name=NAME, daemon=True).start()


_start()  # at import, during Init, as Lambda requires of internal extensions
