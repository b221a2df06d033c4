"""Lambda Managed Instances: N invocations at once in one execution environment.

Theory of operation.  With ``AWS_LAMBDA_MAX_CONCURRENCY=N`` the Runtime API accepts up to N
concurrent ``GET next`` and matches each ``/response`` or ``/error`` to its invocation by the
request id in the path; a runtime must run N invocation loops and log in JSON (custom runtimes:
https://docs.aws.amazon.com/lambda/latest/dg/runtimes-custom.html, "Building custom runtimes for
Lambda Managed Instances"; the Python runtime:
https://docs.aws.amazon.com/lambda/latest/dg/lambda-managed-instances-python-runtime.html).
This module is imported only in that mode, so classic mode's cold start does not pay for it.

The handler is imported once, here, before any loop starts (one Init, one ``/init/error`` at
most: a 403 for an error already posted is tolerated).  Then, by the kind of handler:

- ``async def``: N tasks on the process's one event loop; each task's blocking Runtime API calls
  run on a daemon thread of its own, so the loop only ever waits on the handlers;
- a plain function, ``LAMBDAKIT_WORKERS=processes`` (the default): N worker processes forked
  from the initialised parent (``runtime/supervisor.py``), each a classic runtime loop;
- a plain function, ``LAMBDAKIT_WORKERS=threads``: N threads, each a classic runtime loop.

What belongs to one invocation (request id in log records, context, ``after_response`` queue,
trace id) is in ``scope.SCOPE``; with threads and tasks it becomes a view of a context variable
(:func:`use_context_scope`), so each thread or task sees its own invocation.  The process-wide
``_X_AMZN_TRACE_ID`` is set per invocation only in process mode (one invocation per process at a
time); elsewhere ``lambdakit.runtime.current_trace_id()`` has it.  As awslambdaric does in this
mode, a failed ``GET next`` is retried with backoff and a failed post is logged, not fatal.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import time
import types

from lambdakit.runtime import config as cfg
from lambdakit.runtime.client import RuntimeApiClient
from lambdakit.runtime.scope import SCOPE, InvocationScope
from lambdakit.runtime.tasks import log_cut_off
from lambdakit.runtime.transport import RuntimeApiError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable

    from lambdakit.runtime.bootstrap import Runtime
    from lambdakit.runtime.client import NextEvent
    from lambdakit.runtime.context import LambdaContext
    from lambdakit.runtime.scope import Task

_LOGGER = "lambdakit.runtime.managed"
#: ``GET next`` is retried this many times after a transport error, waiting 0.1 s, 0.2 s, ...
NEXT_RETRIES = 5
NEXT_RETRY_DELAY_S = 0.1


def _log() -> logging.Logger:
    return logging.getLogger(_LOGGER)


def run(runtime: Runtime, config: cfg.RuntimeConfig) -> int:
    """Init once, then serve ``config.max_concurrency`` invocations at a time until stopped."""
    assert config.max_concurrency is not None
    if not runtime.init():
        return 1
    count = config.max_concurrency
    mode = "async" if _is_async(runtime.handler) else config.workers
    _log().debug("managed instances: %d concurrent invocation loops (%s)", count, mode)
    if mode == "async":
        return _run_async(runtime, config, count)
    if mode == cfg.THREADS:
        return _run_threads(runtime, config, count)
    from lambdakit.runtime.supervisor import Supervisor

    _warn_about_what_forks_share()

    def serve(slot: int) -> int:
        del slot
        worker = runtime.worker(RetryingClient(config.api_address), trace_in_environ=True)
        worker.serve_forever()
        return 0

    return Supervisor(count, serve).run()


def _warn_about_what_forks_share() -> None:
    """Init ran once, before the fork: sockets it opened are shared by every worker (their bytes
    would interleave on one connection) and threads it started exist in none."""
    import os
    import threading

    sockets = 0
    with contextlib.suppress(OSError):
        for fd in os.listdir("/proc/self/fd"):
            with contextlib.suppress(OSError):
                sockets += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
    threads = threading.active_count() - 1
    if sockets or threads:
        _log().warning(
            "the handler's module opened %d socket(s) and started %d thread(s) at import; "
            "forked workers share those sockets and have none of those threads: open "
            "connections in the handler (or lazily), or set LAMBDAKIT_WORKERS=threads",
            sockets,
            threads,
        )


def _is_async(handler: Callable[..., object]) -> bool:
    import inspect

    return inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
        getattr(handler, "__call__", None)  # noqa: B004 (an object with async __call__)
    )


class RetryingClient(RuntimeApiClient):
    """A Runtime API client whose ``GET next`` survives short transport failures."""

    def next_invocation(self) -> NextEvent:
        delay = NEXT_RETRY_DELAY_S
        for attempt in range(1, NEXT_RETRIES + 1):
            try:
                return super().next_invocation()
            except RuntimeApiError as exc:
                _log().warning("GET next failed (attempt %d, retrying): %s", attempt, exc)
                time.sleep(delay)
                delay *= 2
        return super().next_invocation()


# --- one scope per invocation -----------------------------------------------------------------

_CURRENT: contextvars.ContextVar[InvocationScope | None] = contextvars.ContextVar(
    "lambdakit_invocation", default=None
)
#: What a thread or task outside any invocation sees.
_IDLE = InvocationScope()


def _now() -> InvocationScope:
    scope = _CURRENT.get()
    return _IDLE if scope is None else scope


class _ContextScope(InvocationScope):
    """``SCOPE`` as a view of the current context's invocation (same layout: no new slots)."""

    __slots__ = ()

    def begin(self, request_id: str, tenant_id: str | None, trace_id: str | None = None) -> None:
        scope = InvocationScope()
        scope.serving = True
        scope.begin(request_id, tenant_id, trace_id)
        _CURRENT.set(scope)

    def end(self) -> None:
        _CURRENT.set(None)

    @property
    def request_id(self) -> str:
        return _now().request_id

    @request_id.setter
    def request_id(self, value: str) -> None:
        _now().request_id = value

    @property
    def tenant_id(self) -> str | None:
        return _now().tenant_id

    @tenant_id.setter
    def tenant_id(self, value: str | None) -> None:
        _now().tenant_id = value

    @property
    def trace_id(self) -> str | None:
        return _now().trace_id

    @trace_id.setter
    def trace_id(self, value: str | None) -> None:
        _now().trace_id = value

    @property
    def context(self) -> LambdaContext | None:
        return _now().context

    @context.setter
    def context(self, value: LambdaContext | None) -> None:
        _now().context = value

    @property
    def tasks(self) -> list[Task]:
        return _now().tasks

    @tasks.setter
    def tasks(self, value: list[Task]) -> None:
        _now().tasks = value


def use_context_scope() -> None:
    """Make ``SCOPE`` per invocation (per thread or task) from now on, in this process."""
    if type(SCOPE) is InvocationScope:
        SCOPE.__class__ = _ContextScope


# --- threads ----------------------------------------------------------------------------------


def _run_threads(runtime: Runtime, config: cfg.RuntimeConfig, count: int) -> int:
    """N daemon threads, each a runtime loop; returns 1 when one of them stops (the platform
    then replaces the environment)."""
    import threading

    use_context_scope()
    stopped = threading.Event()

    def serve(index: int) -> None:
        try:
            worker = runtime.worker(RetryingClient(config.api_address), trace_in_environ=False)
            worker.serve_forever()
        except BaseException:
            _log().exception("invocation loop %d stopped", index)
        finally:
            stopped.set()

    for index in range(count):
        name = f"lambdakit-invocations-{index}"
        threading.Thread(target=serve, args=(index,), name=name, daemon=True).start()
    stopped.wait()  # interruptible: SIGTERM's handler (on_shutdown hooks) runs meanwhile
    return 1


# --- async def handlers -----------------------------------------------------------------------


class _ApiThread:
    """A daemon thread that makes one worker task's blocking Runtime API calls, in order.

    One per task: its keep-alive connection is used by one thread at a time, and a blocked
    ``GET next`` never holds up the event loop or another task's posts.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, name: str) -> None:
        import queue
        import threading

        self._loop = loop
        self._calls: queue.SimpleQueue[
            tuple[contextvars.Context, Callable[[], object], asyncio.Future[object]]
        ] = queue.SimpleQueue()
        threading.Thread(target=self._serve, name=name, daemon=True).start()

    def call(self, fn: Callable[[], object]) -> asyncio.Future[object]:
        """Run ``fn()`` on the thread (in a copy of the caller's context); await the result."""
        future: asyncio.Future[object] = self._loop.create_future()
        self._calls.put((contextvars.copy_context(), fn, future))
        return future

    def _serve(self) -> None:
        while True:
            context, fn, future = self._calls.get()
            try:
                result = context.run(fn)
            except BaseException as exc:
                self._loop.call_soon_threadsafe(_settle, future, None, exc)
            else:
                self._loop.call_soon_threadsafe(_settle, future, result, None)


def _settle(future: asyncio.Future[object], result: object, exc: BaseException | None) -> None:
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)


def _run_async(runtime: Runtime, config: cfg.RuntimeConfig, count: int) -> int:
    """N tasks on the process's one event loop; returns 1 when one of them stops."""
    import asyncio

    from lambdakit.runtime import aio

    use_context_scope()
    loop = aio.loop()

    async def serve_all() -> None:
        tasks = [
            loop.create_task(_serve_async(runtime, config, loop, index)) for index in range(count)
        ]
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            exc = task.exception()
            _log().error("invocation loop stopped: %r", exc, exc_info=exc)

    loop.run_until_complete(serve_all())
    return 1


async def _serve_async(
    runtime: Runtime, config: cfg.RuntimeConfig, loop: asyncio.AbstractEventLoop, index: int
) -> None:
    client = RetryingClient(config.api_address)
    worker = runtime.worker(client, trace_in_environ=False)
    api = _ApiThread(loop, f"lambdakit-runtime-api-{index}")
    while True:
        invocation: NextEvent = await api.call(client.next_invocation)  # type: ignore[assignment]
        SCOPE.begin(invocation.request_id, invocation.tenant_id, invocation.trace_id)
        try:
            post = await _invoke_async(worker, invocation)
            await api.call(post)
            if SCOPE.tasks:
                await _run_tasks_async(invocation.deadline_ms)
        finally:
            SCOPE.end()


async def _invoke_async(worker: Runtime, invocation: NextEvent) -> Callable[[], None]:
    """Run the handler for ``invocation``; returns the post of its result, to make."""
    import functools

    from lambdakit.runtime.bootstrap import VALIDATION_FAULT, _is_streaming
    from lambdakit.runtime.errors import (
        FaultError,
        is_user_error,
        report_exception,
        report_fault,
    )
    from lambdakit.runtime.marshal import marshal_response

    try:
        event, context = worker.prepare(invocation)
        result = worker.handler(event, context)
        if isinstance(result, types.CoroutineType):
            result = await result
        if _is_streaming(result):
            raise FaultError(
                "Runtime.StreamingNotSupported",
                "response streaming is not supported for async handlers in Managed Instances mode",
            )
        body, content_type = marshal_response(result)
    except FaultError as fault:
        report = report_fault(fault)
        return functools.partial(worker.post_error, invocation, report, VALIDATION_FAULT)
    except BaseException as exc:
        if not is_user_error(exc):
            raise
        return functools.partial(worker.post_error, invocation, report_exception(exc), None)
    return functools.partial(worker.post_response, invocation, body, content_type)


async def _run_tasks_async(deadline_ms: int) -> None:
    """``after_response`` tasks of an ``async def`` handler, on the loop, within the deadline.

    Coroutines are awaited (cancelled at the deadline); plain functions run on a thread (in the
    invocation's context), so they do not hold up the other invocations.
    """
    import asyncio
    import inspect

    from lambdakit.runtime.errors import is_user_error
    from lambdakit.runtime.tasks import DEADLINE_MARGIN_S

    deadline = deadline_ms / 1000 - DEADLINE_MARGIN_S
    queue = SCOPE.tasks
    index = 0
    while index < len(queue):  # a task may queue more tasks
        task = queue[index]
        index += 1
        try:
            if deadline - time.time() <= 0:
                raise asyncio.TimeoutError
            result: object = task.fn
            if not isinstance(result, types.CoroutineType):
                if inspect.iscoroutinefunction(task.fn):
                    result = task.fn(*task.args, **task.kwargs)
                else:
                    call = asyncio.to_thread(task.fn, *task.args, **task.kwargs)
                    result = await asyncio.wait_for(call, deadline - time.time())
            if isinstance(result, types.CoroutineType):
                await asyncio.wait_for(result, max(deadline - time.time(), 0.0))
        except asyncio.TimeoutError:
            if time.time() < deadline - 0.005:
                _log().exception("after_response task %r failed", task)
                continue
            log_cut_off(task, len(queue) - index)
            return
        except BaseException as exc:
            if not is_user_error(exc):
                raise
            _log().exception("after_response task %r failed", task)
