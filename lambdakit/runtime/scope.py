"""The invocation in progress, as one object: the request id for log records, the context for
``current_context()``, and the ``after_response`` queue.

In classic mode the runtime serves one invocation at a time per process (as Lambda does), so a
single scope object, filled by the runtime loop at the start of an invocation and emptied after
its after-response tasks, is all the per-invocation state there is.  In Managed Instances mode
with threads or ``async def`` handlers, ``lambdakit.runtime.managed`` turns this same object into
a view of a context variable (one scope per invocation), so the code that reads ``SCOPE`` is the
same in both modes and classic mode pays nothing for it.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from lambdakit.runtime.context import LambdaContext


class Task:
    """One ``after_response`` call: the function and its arguments."""

    __slots__ = ("args", "fn", "kwargs")

    def __init__(
        self, fn: Callable[..., object], args: tuple[object, ...], kwargs: dict[str, object]
    ) -> None:
        self.fn = fn
        self.args = args
        self.kwargs = kwargs

    def __repr__(self) -> str:
        return f"Task({getattr(self.fn, '__qualname__', self.fn)!r})"


class InvocationScope:
    """What belongs to the invocation being served; empty between invocations."""

    __slots__ = ("context", "request_id", "serving", "tasks", "tenant_id", "trace_id")

    def __init__(self) -> None:
        #: True once lambdakit.runtime serves this process (``after_response`` and
        #: ``lambdakit.extensions.background_task`` then need no internal extension).
        self.serving = False
        self.request_id = ""
        self.tenant_id: str | None = None
        #: The invocation's X-Ray trace header (``Lambda-Runtime-Trace-Id``), if any.
        self.trace_id: str | None = None
        self.context: LambdaContext | None = None
        self.tasks: list[Task] = []

    def begin(self, request_id: str, tenant_id: str | None, trace_id: str | None = None) -> None:
        self.request_id = request_id
        self.tenant_id = tenant_id
        self.trace_id = trace_id
        self.context = None
        self.tasks = []

    def end(self) -> None:
        self.request_id = ""
        self.tenant_id = None
        self.trace_id = None
        self.context = None
        self.tasks = []


#: The one scope of this process.
SCOPE = InvocationScope()
