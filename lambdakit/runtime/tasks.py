"""``after_response``: work that runs after the response is sent, before the next event.

The runtime posts the handler's response (so the caller has it), then runs the tasks queued by
the invocation, in order, and only then asks the Runtime API for the next event.  Lambda keeps
the environment thawed, and bills, until that next request, and still enforces the function's
timeout, so the tasks share the invocation's deadline:

- a task that raises is logged (with the request id) and the next task runs;
- a task still running at the deadline (less ``DEADLINE_MARGIN_S``) is cut off (a plain function
  is interrupted by SIGALRM with ``TaskCutOff``, a coroutine is cancelled), it is logged, and the
  tasks after it are dropped;
- ``lambdakit.runtime.current_context()`` still returns the invocation's context, so a task can
  read ``get_remaining_time_in_millis()``.
"""

from __future__ import annotations

import time
import types

from lambdakit.runtime.scope import SCOPE, Task

TYPE_CHECKING = False
if TYPE_CHECKING:
    import logging
    from collections.abc import Callable
    from typing import ParamSpec

    from lambdakit.runtime.context import LambdaContext

    P = ParamSpec("P")

_LOGGER = "lambdakit.runtime"
#: Tasks are cut off this long before the deadline, so that the runtime is back in ``GET next``
#: when the platform's timer fires (Lambda resets an environment that is still busy then).
DEADLINE_MARGIN_S = 0.05


class TaskCutOff(BaseException):
    """Raised inside an after-response task that is still running at the invocation's deadline.

    A BaseException, like KeyboardInterrupt, so that ``except Exception`` in the task does not
    swallow it.
    """


def after_response(fn: Callable[P, object], /, *args: P.args, **kwargs: P.kwargs) -> None:
    """Run ``fn(*args, **kwargs)`` (a function or coroutine function) after the response is sent.

    Call it during an invocation (in the handler, or in another after-response task).
    """
    if not SCOPE.request_id:
        raise RuntimeError(
            "after_response() must be called during an invocation served by the lambdakit "
            "runtime (python -m lambdakit.runtime module.handler)"
        )
    SCOPE.tasks.append(Task(fn, args, kwargs))


def current_context() -> LambdaContext | None:
    """The context of the invocation being served (also during its after-response tasks)."""
    return SCOPE.context


def run_tasks(deadline_ms: int) -> None:
    """Run the scope's queued tasks, in order, until done or the deadline (epoch ms) passes."""
    deadline = deadline_ms / 1000 - DEADLINE_MARGIN_S
    index = 0
    while index < len(SCOPE.tasks):  # a task may queue more tasks
        task = SCOPE.tasks[index]
        index += 1
        try:
            _run_one(task, deadline)
        except TaskCutOff:
            _log().error(
                "after_response task %r cut off at the invocation deadline; "
                "%d later task(s) dropped",
                task,
                len(SCOPE.tasks) - index,
            )
            return
        except Exception:
            _log().exception("after_response task %r failed", task)


def _run_one(task: Task, deadline: float) -> None:
    if deadline - time.time() <= 0:
        raise TaskCutOff
    result: object = task.fn  # after_response(coroutine_object) is accepted too
    if not isinstance(result, types.CoroutineType):
        with _Alarm(deadline - time.time()):
            result = task.fn(*task.args, **task.kwargs)
    if isinstance(result, types.CoroutineType):
        _await(result, deadline)


def _await(coro: types.CoroutineType[object, object, object], deadline: float) -> None:
    import asyncio

    from lambdakit.runtime import aio

    try:
        aio.run(coro, timeout=max(deadline - time.time(), 0.0))
    except asyncio.TimeoutError:
        if time.time() >= deadline - 0.005:
            raise TaskCutOff from None
        raise


class _Alarm:
    """Raise TaskCutOff in this (main) thread if the block runs longer than ``seconds``."""

    def __init__(self, seconds: float) -> None:
        self._seconds = max(seconds, 0.001)
        self._previous: object = None

    def __enter__(self) -> None:
        import signal

        self._previous = signal.signal(signal.SIGALRM, _cut_off)
        signal.setitimer(signal.ITIMER_REAL, self._seconds)

    def __exit__(self, *exc_info: object) -> None:
        import signal

        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, self._previous)  # type: ignore[arg-type]


def _cut_off(signum: int, frame: types.FrameType | None) -> None:
    raise TaskCutOff


def _log() -> logging.Logger:
    import logging

    return logging.getLogger(_LOGGER)
