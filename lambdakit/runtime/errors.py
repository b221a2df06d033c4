"""Error reports: what the runtime posts to ``/error`` and ``/init/error``, and logs.

The payload is ``{"errorMessage", "errorType", "requestId", "stackTrace"}`` as awslambdaric posts
it; ``stackTrace`` is ``traceback.format_list`` output with the runtime's own leading frames
removed, so a caller sees the same shape whichever of the two runtimes ran the handler.
"""

from __future__ import annotations

import os
import sys

from lambdakit.runtime import fastjson

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import TracebackType

#: Leading traceback frames from these directories are the runtime's, not the user's.
_RUNTIME_DIRS = (os.path.dirname(__file__) + os.sep,)
#: Frames of the event loop that drives an ``async def`` handler (added once asyncio is used).
_LOOP_MODULES = ("asyncio", "uvloop")


class FaultError(Exception):
    """A failure the runtime reports with a ``Runtime.*`` error type (bad handler, marshalling)."""

    def __init__(self, error_type: str, message: str, trace: list[str] | None = None) -> None:
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type
        self.message = message
        self.trace = trace or []


class ErrorReport:
    """One error, ready to post and to log. Immutable."""

    __slots__ = ("error_type", "frames", "message", "trace")

    error_type: str
    message: str
    trace: list[str]
    #: (path, line, function) per frame, for the X-Ray cause.
    frames: list[tuple[str, int, str]]

    def __init__(
        self,
        error_type: str,
        message: str,
        trace: list[str],
        frames: list[tuple[str, int, str]] | None = None,
    ) -> None:
        object.__setattr__(self, "error_type", error_type)
        object.__setattr__(self, "message", message)
        object.__setattr__(self, "trace", trace)
        object.__setattr__(self, "frames", frames or [])

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"ErrorReport is immutable; cannot set {name!r}")

    def __repr__(self) -> str:
        return f"ErrorReport({self.error_type!r}, {self.message!r})"

    def payload(self, request_id: str = "") -> dict[str, object]:
        return {
            "errorMessage": self.message,
            "errorType": self.error_type,
            "requestId": request_id,
            "stackTrace": self.trace,
        }

    def body(self, request_id: str = "") -> bytes:
        try:
            return fastjson.dumps(self.payload(request_id)).encode()
        except UnicodeEncodeError:  # a lone surrogate (an undecodable file name, say)
            return fastjson.dumps(self.payload(request_id), ensure_ascii=True).encode()

    def xray_cause(self, fault_type: str | None = None) -> bytes:
        """The ``Lambda-Runtime-Function-Xray-Error-Cause`` header value (ASCII JSON)."""
        cause = {
            "working_directory": os.getcwd(),
            "exceptions": [
                {
                    "message": self.message,
                    "type": fault_type or self.error_type,
                    "stack": [{"label": f, "path": p, "line": n} for p, n, f in self.frames],
                }
            ],
            "paths": list(dict.fromkeys(p for p, _, _ in self.frames)),
        }
        return fastjson.dumps(cause, ensure_ascii=True).encode()


def ascii_header(value: str) -> str:
    """An error type as a header or trailer value: non-ASCII characters escaped (``\\u9519``)."""
    return value if value.isascii() else value.encode("ascii", "backslashreplace").decode()


def is_user_error(exc: BaseException) -> bool:
    """An error of the handler's to report, not a reason to stop the runtime.

    ``asyncio.CancelledError`` is a ``BaseException``; a cancelled task awaited by a handler is
    still the handler's failure.  (asyncio is looked up, not imported: it costs 30 ms.)
    """
    if isinstance(exc, Exception):
        return True
    asyncio = sys.modules.get("asyncio")
    return asyncio is not None and isinstance(exc, asyncio.CancelledError)


def report_fault(fault: FaultError) -> ErrorReport:
    return ErrorReport(fault.error_type, fault.message, fault.trace)


def report_exception(exc: BaseException) -> ErrorReport:
    """An exception from user code: its type name, message and trimmed stack trace."""
    import traceback

    frames = [
        (f.filename, f.lineno or 0, f.name, f.line)
        for f in traceback.extract_tb(_user_traceback(exc.__traceback__))
    ]
    return ErrorReport(
        type(exc).__name__,
        _message(exc),
        traceback.format_list(frames),  # tuples: no column carets, as awslambdaric
        [(path, line, name) for path, line, name, _ in frames],
    )


def _message(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:
        return f"<unprintable {type(exc).__name__} object>"


def _user_traceback(tb: TracebackType | None) -> TracebackType | None:
    """Skip the leading frames that belong to the runtime (and to the loop running the handler)."""
    dirs = _RUNTIME_DIRS + tuple(_loop_dirs())
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(dirs):
        tb = tb.tb_next
    return tb


def _loop_dirs() -> list[str]:
    found = []
    for name in _LOOP_MODULES:
        module = sys.modules.get(name)
        path = getattr(module, "__file__", None)
        if path:
            found.append(os.path.dirname(path) + os.sep)
            found.append(name + os.sep)  # compiled modules name their .pyx relative ("uvloop/")
    return found
