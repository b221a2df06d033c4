"""The runtime's configuration, read once from the command line and an injectable environment."""

from __future__ import annotations

import os

from lambdakit.wire import environment as env

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

#: AWS_LAMBDA_LOG_LEVEL values and the ``logging`` level names they select.
_LOG_LEVELS = {
    "TRACE": "DEBUG",
    "DEBUG": "DEBUG",
    "INFO": "INFO",
    "WARN": "WARNING",
    "WARNING": "WARNING",
    "ERROR": "ERROR",
    "FATAL": "CRITICAL",
    "CRITICAL": "CRITICAL",
}


#: Lambda Managed Instances: how many invocations this environment serves at once (N >= 1).
#: Unset means classic Lambda: one invocation at a time (see docs/managed-instances-runtime.md).
MAX_CONCURRENCY = "AWS_LAMBDA_MAX_CONCURRENCY"
#: How a synchronous handler is run N at a time: ``processes`` (the default: workers forked
#: after the handler is imported once) or ``threads`` (one process).
WORKERS = "LAMBDAKIT_WORKERS"
PROCESSES = "processes"
THREADS = "threads"


class RuntimeConfigError(Exception):
    """The runtime cannot start: a setting is missing or invalid (the message names it)."""


class RuntimeConfig:
    """What the runtime needs from its command line and environment; immutable once built."""

    __slots__ = (
        "api_address",
        "handler",
        "json_logs",
        "log_level",
        "max_concurrency",
        "task_root",
        "workers",
    )

    api_address: str
    handler: str
    json_logs: bool
    log_level: str | None
    #: None in classic mode; N concurrent invocation loops in Managed Instances mode.
    max_concurrency: int | None
    task_root: str | None
    #: ``processes`` or ``threads`` (used for synchronous handlers in Managed Instances mode).
    workers: str

    def __init__(
        self,
        *,
        api_address: str,
        handler: str,
        json_logs: bool = False,
        log_level: str | None = None,
        max_concurrency: int | None = None,
        task_root: str | None = None,
        workers: str = PROCESSES,
    ) -> None:
        for name, value in (
            ("api_address", api_address),
            ("handler", handler),
            ("json_logs", json_logs),
            ("log_level", log_level),
            ("max_concurrency", max_concurrency),
            ("task_root", task_root),
            ("workers", workers),
        ):
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"RuntimeConfig is immutable; cannot set {name!r}")

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"RuntimeConfig({fields})"

    @classmethod
    def from_environ(
        cls, argv: Sequence[str], environ: Mapping[str, str] | None = None
    ) -> RuntimeConfig:
        """Build from ``sys.argv`` (handler in ``argv[1]``, else ``_HANDLER``) and ``environ``."""
        environ = os.environ if environ is None else environ
        handler = argv[1] if len(argv) > 1 else environ.get(env.HANDLER, "")
        if not handler:
            raise RuntimeConfigError(
                f"Handler not set: pass it as the first argument or in {env.HANDLER}"
            )
        api_address = environ.get(env.RUNTIME_API, "")
        if not api_address:
            raise RuntimeConfigError(f"{env.RUNTIME_API} is not set")
        max_concurrency = _max_concurrency(environ.get(MAX_CONCURRENCY))
        log_format = environ.get(env.LOG_FORMAT, "").upper()
        if max_concurrency is not None and not log_format:
            log_format = "JSON"  # Managed Instances logs are JSON unless told otherwise
        return cls(
            api_address=api_address,
            handler=handler,
            json_logs=log_format == "JSON",
            log_level=_LOG_LEVELS.get(environ.get(env.LOG_LEVEL, "").upper()),
            max_concurrency=max_concurrency,
            task_root=environ.get(env.TASK_ROOT) or None,
            workers=_workers(environ.get(WORKERS)),
        )


def _max_concurrency(raw: str | None) -> int | None:
    if raw is None:
        return None
    text = raw.strip()
    if not text.isdigit() or not text.isascii() or int(text) < 1:
        raise RuntimeConfigError(f"{MAX_CONCURRENCY} must be a whole number >= 1, not {raw!r}")
    return int(text)


def _workers(raw: str | None) -> str:
    if raw is None or not raw.strip():
        return PROCESSES
    value = raw.strip().lower()
    if value not in (PROCESSES, THREADS):
        raise RuntimeConfigError(f"{WORKERS} must be {PROCESSES!r} or {THREADS!r}, not {raw!r}")
    return value
