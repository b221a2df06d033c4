"""Function output: unbuffered stdout/stderr, error reports in the log, and ``logging`` set up
the way awslambdaric sets it up, but only once something imports ``logging``.

``import logging`` costs about 4 ms, a fifth of a cold start's budget, and many handlers never
log.  So instead of importing it, the runtime puts a finder on ``sys.meta_path`` that notices
the first ``import logging`` (by the handler module, boto3, anything), lets the normal machinery
load it, and then installs the Lambda handler on the root logger (``logsetup.configure``).
A handler that logs at import time is therefore formatted exactly as under awslambdaric.

Text lines are ``[LEVEL]\\t<UTC time>Z\\t<request id>\\t<message>``; with
``AWS_LAMBDA_LOG_FORMAT=JSON`` each line is one JSON object.  Multi-line error reports are
joined with ``\\r`` (and indented with NO-BREAK SPACE) so CloudWatch keeps each one as one event.
"""

from __future__ import annotations

import io
import sys
import time

from lambdakit.runtime import fastjson

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from importlib.machinery import ModuleSpec
    from types import ModuleType

    from lambdakit.runtime.config import RuntimeConfig
    from lambdakit.runtime.errors import ErrorReport

_LINE_JOIN = "\r"
_INDENT = "\u00a0"
_INIT_WARNING = (
    "LAMBDA_WARNING: Unhandled exception during init; the function could not start. "
    "The error below comes from the function code or its configuration (handler name, "
    "imports, module-level code)."
)


def unbuffer_std_streams() -> None:
    """Make ``print()`` reach the log at once, as ``python -u`` would (and awslambdaric does)."""
    sys.stdout = _unbuffered(sys.stdout, 1)
    sys.stderr = _unbuffered(sys.stderr, 2)


def _unbuffered(stream: io.TextIOBase | object, fd: int) -> io.TextIOWrapper:
    encoding = getattr(stream, "encoding", None) or "utf-8"
    errors = getattr(stream, "errors", None) or "backslashreplace"
    raw = io.FileIO(fd, "w", closefd=False)
    return io.TextIOWrapper(raw, encoding=encoding, errors=errors, write_through=True)


def timestamp(now: float, *, millis: bool = True) -> str:
    """``2024-01-31T12:00:00.123Z`` (UTC)."""
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
    return f"{text}.{int(now * 1000) % 1000:03d}Z" if millis else text + "Z"


def write_line(level: str, message: str, request_id: str, *, json_logs: bool) -> None:
    """One log line written directly (no ``logging``), in the configured format."""
    now = time.time()
    if json_logs:
        record = {
            "timestamp": timestamp(now),
            "level": level,
            "message": message,
            "logger": "root",
            "requestId": request_id,
        }
        line = fastjson.dumps(record) + "\n"
    else:
        line = f"[{level}]\t{timestamp(now)}\t{request_id}\t{message}\n"
    sys.stdout.write(line)


def write_init_warning(*, json_logs: bool) -> None:
    write_line("WARNING", _INIT_WARNING, "", json_logs=json_logs)


def write_error_report(report: ErrorReport, request_id: str, *, json_logs: bool) -> None:
    """Log an error the runtime is about to post (invocation or init error)."""
    if json_logs:
        record: dict[str, object] = {"timestamp": timestamp(time.time()), "level": "ERROR"}
        record.update(report.payload(request_id))
        sys.stdout.write(fastjson.dumps(record) + "\n")
        return
    sys.stdout.write(_LINE_JOIN.join(_text_error_lines(report)) + "\n")


def _text_error_lines(report: ErrorReport) -> list[str]:
    head = "[ERROR]"
    if report.error_type:
        head += " " + report.error_type + (":" if report.message else "")
    if report.message:
        head += " " + report.message
    lines = [head, "Traceback (most recent call last):"]
    for entry in report.trace:
        lines.extend(_nbsp_indent(line) for line in entry.splitlines())
    return lines


def _nbsp_indent(line: str) -> str:
    stripped = line.lstrip(" ")
    return _INDENT * (len(line) - len(stripped)) + stripped


# --- logging, configured when first imported --------------------------------------------------


def install_logging(config: RuntimeConfig) -> None:
    """Configure ``logging`` now if it is loaded, else as soon as anything imports it."""
    module = sys.modules.get("logging")
    if module is not None:
        _configure(module, config)
    else:
        sys.meta_path.insert(0, _LoggingFinder(config))


def _configure(module: ModuleType, config: RuntimeConfig) -> None:
    from lambdakit.runtime import logsetup

    logsetup.configure(module, json_logs=config.json_logs, level=config.log_level)


class _LoggingFinder:
    """A one-shot ``sys.meta_path`` finder: hands out ``logging``'s spec with a wrapped loader."""

    def __init__(self, config: RuntimeConfig) -> None:
        self._config = config

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname != "logging":
            return None
        sys.meta_path.remove(self)
        from importlib.util import find_spec

        spec = find_spec("logging")
        if spec is not None and spec.loader is not None:
            spec.loader = _ConfiguringLoader(spec.loader, self._config)  # type: ignore[assignment]
        return spec


class _ConfiguringLoader:
    """Runs the real loader, then configures the freshly executed ``logging`` module."""

    def __init__(self, loader: object, config: RuntimeConfig) -> None:
        self._loader = loader
        self._config = config

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        create = getattr(self._loader, "create_module", None)
        return create(spec) if create is not None else None

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)  # type: ignore[attr-defined]
        _configure(module, self._config)

    def __getattr__(self, name: str) -> object:  # get_source, get_filename, is_package, ...
        return getattr(self._loader, name)
