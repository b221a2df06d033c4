"""The post-runner's configuration: flags over ``AWS_LAMBDA_POST_RUNNER_*``, read once.

The variable names and values are aws-lambda-post-runner's (``COMMAND``, ``SHELL``, ``MODE``,
``LOG_LEVEL``; the proxy port is aws-lambda-runtime-proxy's ``AWS_LAMBDA_RUNTIME_PROXY_PORT``),
read more forgivingly: modes may carry spaces and any case, and every bad value is a
:class:`PostRunConfigError` naming the variable (or flag) and the value, never a crash.
"""

from __future__ import annotations

import enum
import logging
import math
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from lambdakit.proxy.server import split_address
from lambdakit.wire import environment as env

COMMAND = "AWS_LAMBDA_POST_RUNNER_COMMAND"
SHELL = "AWS_LAMBDA_POST_RUNNER_SHELL"
MODE = "AWS_LAMBDA_POST_RUNNER_MODE"
LOG_LEVEL = "AWS_LAMBDA_POST_RUNNER_LOG_LEVEL"
TIMEOUT = "AWS_LAMBDA_POST_RUNNER_TIMEOUT"
PORT = "AWS_LAMBDA_RUNTIME_PROXY_PORT"

#: errorType of the init error a bad configuration is reported as.
CONFIG_ERROR_TYPE = "PostRunner.ConfigError"

#: Where the flag for each variable is spelled, for error messages.
FLAGS = {
    COMMAND: "--command",
    SHELL: "--shell",
    MODE: "--mode",
    LOG_LEVEL: "--log-level",
    TIMEOUT: "--timeout",
    PORT: "--port",
}


class Outcome(enum.Enum):
    """How an invocation ended, as the command sees it in ``POST_RUNNER_OUTCOME``."""

    RESPONSE = "response"
    ERROR = "error"


#: ``AWS_LAMBDA_POST_RUNNER_MODE`` values (compared case-insensitively).
MODES = {"afterresponse": Outcome.RESPONSE, "aftererror": Outcome.ERROR}
MODE_NAMES = "AfterResponse, AfterError"

#: env_logger's level names, which the original accepts, mapped to ours.
LOG_LEVELS = {
    "trace": logging.DEBUG,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "off": logging.CRITICAL + 10,
}
DEFAULT_LOG_LEVEL = "info"
#: The original's default shell; ``/bin/sh`` where there is no bash.
DEFAULT_SHELLS = ("/bin/bash", "/bin/sh")


class PostRunConfigError(Exception):
    """A configuration value is missing or wrong; the message names the variable."""


@dataclass(frozen=True, slots=True)
class PostRunConfig:
    #: The shell command run after each invocation.
    command: str
    shell: str
    modes: frozenset[Outcome]
    log_level: int
    #: Seconds the command may run; None: until shortly before the function's deadline.
    timeout: float | None
    #: The proxy's port on 127.0.0.1 (0: a free one).
    port: int
    #: The real Runtime API (``host:port``).
    runtime_api: str
    runtime_command: tuple[str, ...]


def runtime_api(environ: Mapping[str, str]) -> str:
    """The real Runtime API's address; PostRunConfigError if it is missing or malformed."""
    value = environ.get(env.RUNTIME_API, "")
    if not value:
        raise PostRunConfigError(f"{env.RUNTIME_API} is not set: run the post-runner inside Lambda")
    try:
        split_address(value)
    except ValueError as exc:
        raise PostRunConfigError(f"{env.RUNTIME_API}: {exc}") from None
    return value


def load(
    flags: Mapping[str, str | None],
    runtime_command: Sequence[str],
    environ: Mapping[str, str],
) -> PostRunConfig:
    """Build the configuration; ``flags`` maps variable names to flag values (None: not given)."""

    def get(name: str) -> tuple[str | None, str]:
        flag = flags.get(name)
        if flag is not None:
            return flag, FLAGS[name]
        return environ.get(name), name

    api = runtime_api(environ)
    command, where = get(COMMAND)
    if command is None or not command.strip():
        raise PostRunConfigError(
            f"{where} is {'empty' if command is not None else 'not set'}: "
            "it is the command to run after each invocation"
        )
    if not runtime_command:
        raise PostRunConfigError(
            "no runtime command: usage: lambdakit post-run [--] COMMAND [ARGS...]"
        )
    return PostRunConfig(
        command=command,
        shell=_shell(*get(SHELL)),
        modes=_modes(*get(MODE)),
        log_level=_log_level(*get(LOG_LEVEL)),
        timeout=_timeout(*get(TIMEOUT)),
        port=_port(*get(PORT)),
        runtime_api=api,
        runtime_command=tuple(runtime_command),
    )


def _shell(value: str | None, where: str) -> str:
    if value is None:
        return next((s for s in DEFAULT_SHELLS if os.access(s, os.X_OK)), DEFAULT_SHELLS[-1])
    found = value if "/" in value else shutil.which(value)
    if not value or found is None or not os.path.isfile(found) or not os.access(found, os.X_OK):
        raise PostRunConfigError(f"{where}: {value!r} is not an executable file")
    return found


def _modes(value: str | None, where: str) -> frozenset[Outcome]:
    if value is None:
        return frozenset(Outcome)
    tokens = [token.strip() for token in value.split(",")]
    if not any(tokens):
        raise PostRunConfigError(f"{where} is empty: expected {MODE_NAMES} (comma-separated)")
    modes = set()
    for token in tokens:
        if not token:
            continue
        mode = MODES.get(token.lower())
        if mode is None:
            raise PostRunConfigError(
                f"{where}: unknown mode {token!r} in {value!r}: "
                f"expected {MODE_NAMES} (comma-separated)"
            )
        modes.add(mode)
    return frozenset(modes)


def _log_level(value: str | None, where: str) -> int:
    """A level name, or env_logger directives as the original accepts them (``debug``,
    ``aws_lambda_post_runner=debug``, ``info,hyper=warn``): the most verbose level named wins."""
    text = (value or DEFAULT_LOG_LEVEL).strip().lower()
    levels = []
    for directive in text.split(","):
        name = directive.rpartition("=")[2].strip()
        if name in LOG_LEVELS:
            levels.append(LOG_LEVELS[name])
    if not levels:
        raise PostRunConfigError(f"{where}: unknown log level {value!r}: expected one of {_LEVELS}")
    return min(levels)


_LEVELS = ", ".join(LOG_LEVELS)


def _timeout(value: str | None, where: str) -> float | None:
    if value is None or not value.strip():
        return None
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not seconds > 0 or math.isinf(seconds):
        raise PostRunConfigError(f"{where}: {value!r} is not a positive number of seconds")
    return seconds


def _port(value: str | None, where: str) -> int:
    if value is None or not value.strip():
        return 0
    if not value.strip().isdigit() or int(value) > 65535:
        raise PostRunConfigError(
            f"{where}: {value!r} is not a port number (0 to 65535; 0: any free one)"
        )
    return int(value)
