"""The internal extension that keeps the environment awake for an invocation's leftover work.

https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtime-environment.html and
https://docs.aws.amazon.com/lambda/latest/dg/runtimes-extensions-api.html

Theory of operation
-------------------
Lambda freezes an environment once the runtime *and every extension* have called ``next`` after
an invocation (the AWS Compute Blog post "Running code after returning a response from an AWS
Lambda function" builds on this).  An internal extension is a thread of the runtime's own process
that registered during Init; it receives INVOKE with the runtime, and the environment stays thawed,
and billed, until it calls ``next`` again.  This module is that thread, for runtime clients that
lambdakit does not drive itself (awslambdaric, and the managed Python runtime, which is
awslambdaric):

1. Importing ``lambdakit.extensions`` (or ``from lambdakit import after_response``) from the
   handler module runs :func:`start` while Init is on, the only phase in which an extension may
   register.  It registers ``lambdakit-background`` for INVOKE, wraps the runtime client's
   per-invocation function (``awslambdaric.bootstrap.handle_event_request``, which returns
   after the result is posted) so that it counts invocations started and finished, and starts
   the extension thread, whose ``next`` closes Init.
2. During an invocation, ``background_task`` starts a thread at once and queues a task that waits
   for it; ``after_response`` queues its task.  Both go to one list, the invocation's tasks.
3. The extension thread receives INVOKE, waits until the runtime has finished that invocation
   (the response is out), then runs the queued tasks in order with
   :func:`lambdakit.runtime.tasks.run_tasks`, the same runner lambdakit.runtime uses after the
   response, until none is left; only then does it call ``next``.

lambdakit.runtime needs none of this (it runs the tasks itself between ``/response`` and
``next``), so :func:`start` does nothing under it.  A runtime client whose invocation boundary is
unknown gets no extension: the environment could freeze under a task that has just started.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import threading
from collections.abc import Callable, Mapping

from lambdakit.extensions.client import ExtensionsApiClient, ExtensionsApiError
from lambdakit.extensions.events import InvokeEvent
from lambdakit.runtime.scope import SCOPE, Task
from lambdakit.runtime.tasks import run_tasks
from lambdakit.wire import environment as env
from lambdakit.wire import extensions as wire

logger = logging.getLogger("lambdakit.extensions")

#: The name this extension registers under (internal: it matches no file in /opt/extensions).
EXTENSION_NAME = "lambdakit-background"
#: Modules that may hold awslambdaric's per-invocation function: awslambdaric's, and the managed
#: runtime's copy of it (run as a script); lambdakit.extensions checks the same names on import.
HOOK_MODULES = ("awslambdaric.bootstrap", "bootstrap", "__main__")
HOOK_FUNCTION = "handle_event_request"


class InternalExtension:
    """The registered extension: invocation bookkeeping and the queued tasks."""

    def __init__(self, client: ExtensionsApiClient) -> None:
        self._client = client
        self._cond = threading.Condition()
        self._started = 0  # invocations the runtime client began
        self._finished = 0  # ... and finished (result posted)
        self._seen = 0  # INVOKE events received
        self._open = False  # from an invocation's start until its tasks are all done
        self._tasks: list[Task] = []

    # The runtime client's side (the wrapper) ----------------------------------------------------
    def invocation_started(self) -> None:
        with self._cond:
            self._started += 1
            self._open = True

    def invocation_finished(self) -> None:
        with self._cond:
            self._finished += 1
            self._cond.notify_all()

    # The handler's side -----------------------------------------------------------------------
    def queue(self, task: Task, what: str) -> None:
        with self._cond:
            if not self._open:
                raise RuntimeError(
                    f"{what} must be called during an invocation (in the handler, or in a task "
                    "of the invocation)"
                )
            self._tasks.append(task)

    # The extension thread -----------------------------------------------------------------------
    def serve_forever(self) -> None:
        while True:
            try:
                event = self._client.next_event()
            except (OSError, ValueError, ExtensionsApiError):
                logger.exception("%s: event/next failed; work is no longer held", EXTENSION_NAME)
                return
            if isinstance(event, InvokeEvent):
                self.serve(event)

    def serve(self, event: InvokeEvent) -> None:
        """Wait for the runtime to finish ``event``'s invocation, then run its tasks."""
        with self._cond:
            self._seen += 1
            remaining = event.remaining_ms() / 1000
            if not self._cond.wait_for(lambda: self._finished >= self._seen, remaining):
                logger.warning(
                    "%s: invocation %s still running at its deadline",
                    EXTENSION_NAME,
                    event.request_id,
                )
        while True:
            with self._cond:
                tasks, self._tasks = self._tasks, []
                if not tasks:
                    self._open = self._started > self._finished
                    return
            run_tasks(event.deadline_ms, tasks)


_extension: InternalExtension | None = None
#: Why there is no extension (said by :func:`queue_task`), once :func:`start` has decided.
_unavailable = ""
_lock = threading.Lock()


def start(environ: Mapping[str, str] | None = None) -> InternalExtension | None:
    """Register the internal extension once, if this process is served by a runtime client
    that needs it (awslambdaric).  Must run during Init: while the handler module is imported."""
    global _extension, _unavailable
    with _lock:
        if _extension is not None or _unavailable:
            return _extension
        environ = os.environ if environ is None else environ
        _unavailable = _why_not(environ)
        if _unavailable:
            return None
        client = ExtensionsApiClient.from_environ(environ)
        try:
            client.register(EXTENSION_NAME, (wire.INVOKE,))
        except (OSError, ExtensionsApiError) as exc:
            _unavailable = (
                f"the {EXTENSION_NAME} internal extension could not register ({exc}); "
                "extensions register only during Init, so import lambdakit.extensions "
                "(or lambdakit.after_response) at the top of the handler module"
            )
            logger.warning("%s", _unavailable)
            client.close()
            return None
        extension = InternalExtension(client)
        _hook_runtime_client(extension)
        thread = threading.Thread(target=extension.serve_forever, name=EXTENSION_NAME, daemon=True)
        thread.start()
        _extension = extension
        return extension


def _why_not(environ: Mapping[str, str]) -> str:
    if SCOPE.serving:
        return "under lambdakit.runtime it must be called during an invocation"
    if not environ.get(env.RUNTIME_API):
        return (
            "it must be called during an invocation of a Lambda function "
            f"({env.RUNTIME_API} is not set)"
        )
    if _hook_point() is None:
        return (
            "the runtime client serving this process is neither lambdakit.runtime nor "
            "awslambdaric, so the end of an invocation cannot be known; run the handler "
            "with python -m lambdakit.runtime"
        )
    return ""


def _hook_point() -> tuple[object, Callable[..., object]] | None:
    for name in HOOK_MODULES:
        module = sys.modules.get(name)
        function = getattr(module, HOOK_FUNCTION, None)
        if module is not None and callable(function):
            return module, function
    return None


def _hook_runtime_client(extension: InternalExtension) -> None:
    """Wrap awslambdaric's per-invocation function: it returns once the result is posted."""
    found = _hook_point()
    assert found is not None, "checked by _why_not"
    module, original = found
    if getattr(original, "__lambdakit_extension__", None) is not None:
        return

    @functools.wraps(original)
    def handle_event_request(*args: object, **kwargs: object) -> object:
        extension.invocation_started()
        try:
            return original(*args, **kwargs)
        finally:
            extension.invocation_finished()

    handle_event_request.__lambdakit_extension__ = extension  # type: ignore[attr-defined]
    setattr(module, HOOK_FUNCTION, handle_event_request)


def queue_task(task: Task, what: str) -> None:
    """Queue ``task`` for the invocation in progress, or raise ``RuntimeError`` saying why not."""
    extension = _extension
    if extension is None:
        start()
        extension = _extension
    if extension is None:
        raise RuntimeError(f"{what} cannot run here: {_unavailable}")
    extension.queue(task, what)
