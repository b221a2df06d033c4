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


class RuntimeConfigError(Exception):
    """The runtime cannot start: a setting is missing or invalid (the message names it)."""


class RuntimeConfig:
    """What the runtime needs from its command line and environment; immutable once built."""

    __slots__ = (
        "api_address",
        "handler",
        "json_logs",
        "log_level",
        "task_root",
    )

    api_address: str
    handler: str
    json_logs: bool
    log_level: str | None
    task_root: str | None

    def __init__(
        self,
        *,
        api_address: str,
        handler: str,
        json_logs: bool = False,
        log_level: str | None = None,
        task_root: str | None = None,
    ) -> None:
        for name, value in (
            ("api_address", api_address),
            ("handler", handler),
            ("json_logs", json_logs),
            ("log_level", log_level),
            ("task_root", task_root),
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
        return cls(
            api_address=api_address,
            handler=handler,
            json_logs=environ.get(env.LOG_FORMAT, "").upper() == "JSON",
            log_level=_LOG_LEVELS.get(environ.get(env.LOG_LEVEL, "").upper()),
            task_root=environ.get(env.TASK_ROOT) or None,
        )
