"""Every setting of ``lambdakit serve`` once: flag, variable, TOML key, kind, default and help.

:data:`OPTIONS` is the one table.  From it come the command line's arguments and ``--help``
(:func:`add_arguments`), the keys a ``lambdakit.toml`` may hold (:func:`file_values`), the
checks and their error messages (each setting's kind, :mod:`lambdakit.emulator.option_kinds`,
names the source it read: ``--timeout``, ``AWS_LAMBDA_FUNCTION_TIMEOUT`` or
``lambdakit.toml [functions.NAME] timeout``), the defaults of
:class:`~lambdakit.emulator.config.FunctionConfig` and ``ServiceConfig`` (:data:`DEFAULTS`), and
the settings table of README.md (:func:`markdown_table`; ``python -m lambdakit.emulator.options``
prints it).

A setting's ``name`` is its field in ``FunctionConfig`` or ``ServiceConfig``; the few that only
choose the runtime (``runtime``, ``bootstrap``, ``command``), read a file (``env_file``,
``config``, ``template``, ``env_vars``), give a template's parameters (``parameter_overrides``)
or set ``log_level`` have no field.  Function settings with a variable read it only when the
function is given by flags, as AWS's RIE does; service settings read theirs always.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from lambdakit.amqp.queues import DEFAULT_KIND as DEFAULT_QUEUE_KIND
from lambdakit.amqp.queues import QUEUE_KINDS
from lambdakit.emulator.api_kinds import ApiTable
from lambdakit.emulator.option_kinds import (
    Broker,
    Choice,
    CommandLine,
    ConfigError,
    Destination,
    Directories,
    Directory,
    EnvVarsFile,
    FunctionName,
    Given,
    Integer,
    Kind,
    Location,
    Number,
    ParameterValues,
    Pattern,
    Source,
    Switch,
    Text,
    Variables,
    VariablesFile,
)
from lambdakit.wire import limits

Scope = Literal["function", "service"]

SECONDS = 1.0
MB = 1

# --- the table ----------------------------------------------------------------------------------
FUNCTION_GROUP = "function (single-function mode)"
EVENTS_GROUP = "Event (asynchronous) invocations"
SERVICE_GROUP = "service"
AMQP_GROUP = "scale-out over RabbitMQ (see docs/scale-out.md)"
SAM_GROUP = "AWS SAM templates (see docs/sam-templates.md)"
API_GROUP = "API Gateway (see docs/api-gateway.md)"


@dataclass(frozen=True)
class Option:
    """One setting, with every way to give it and what it may be.

    ``default`` is read through ``kind`` like a given value (so ``code_dir = "."`` is the
    directory of the file that declares the function); None means "not set".
    """

    name: str
    scope: Scope
    kind: Kind[Any]
    default: object
    help: str
    flag: str | None = None
    metavar: str | None = None
    env: str | None = None
    toml: str | None = None
    #: The command line's way to give it when that is not a flag (for the docs).
    argument: str | None = None
    #: ``--help``'s text for the flag, when it says the opposite of ``help`` (``--no-freeze``).
    flag_help: str | None = None
    #: With ``--config``, the flag applies to every function of the file.
    all_functions: bool = False
    #: Why a setting without a TOML key is never read from a file (for the error).
    not_in_file: str = ""
    group: str = FUNCTION_GROUP
    #: The setting is a top-level table of its own in ``lambdakit.toml`` (``[api]``), not a
    #: key of ``[service]``.
    own_table: bool = False


def _function(name: str, kind: Kind[Any], default: object, help: str, **more: Any) -> Option:
    return Option(name, "function", kind, default, help, **more)


def _event(name: str, kind: Kind[Any], default: object, help: str, **more: Any) -> Option:
    return Option(name, "function", kind, default, help, group=EVENTS_GROUP, **more)


def _service(name: str, kind: Kind[Any], default: object, help: str, **more: Any) -> Option:
    return Option(name, "service", kind, default, help, **{"group": SERVICE_GROUP, **more})


OPTIONS: tuple[Option, ...] = (
    # --- one function ---
    _function(
        "name",
        FunctionName(),
        "function",
        "the name in the Invoke API path",
        flag="--function-name",
        env="AWS_LAMBDA_FUNCTION_NAME",
    ),
    _function(
        "handler",
        Text(),
        "",
        "_HANDLER for the runtime; with runtime = python, the Python handler it runs",
        flag="--handler",
        toml="handler",
    ),
    _function(
        "runtime",
        Choice(("python", "provided"), optional=True),
        "",
        "python: run handler on lambdakit's Python runtime (on the command line: a HANDLER, or "
        "--handler with --runtime python); provided: a bootstrap or command",
        flag="--runtime",
        toml="runtime",
    ),
    _function(
        "bootstrap",
        Text(),
        None,
        "a custom runtime's executable (as provided.al2023 runs it)",
        flag="--bootstrap",
        metavar="PATH",
        toml="bootstrap",
    ),
    _function(
        "command",
        CommandLine(),
        (),
        "any command as the runtime (as AWS's RIE takes it)",
        toml="command",
        argument="-- COMMAND [ARGS...]",
    ),
    _function(
        "code_dir",
        Directory(),
        ".",
        "LAMBDA_TASK_ROOT and the runtime's working directory",
        flag="--code-dir",
        metavar="DIR",
        toml="code_dir",
    ),
    _function(
        "timeout",
        Number(0.1, limits.MAX_TIMEOUT),
        3 * SECONDS,
        "seconds an invocation may run, over the whole invoke phase (extensions included)",
        flag="--timeout",
        metavar="SECONDS",
        env="AWS_LAMBDA_FUNCTION_TIMEOUT",
        toml="timeout",
    ),
    _function(
        "memory",
        Integer(limits.MIN_MEMORY, limits.MAX_MEMORY),
        128 * MB,
        "MB, reported to the function and in REPORT (not enforced)",
        flag="--memory",
        metavar="MB",
        env="AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        toml="memory",
    ),
    _function(
        "concurrency",
        Integer(1, 1000),
        10,
        "most environments of the function at once",
        flag="--concurrency",
        metavar="N",
        env="MAX_CONCURRENCY",
        toml="concurrency",
    ),
    _function(
        "max_concurrency",
        Integer(1, limits.MAX_ENVIRONMENT_CONCURRENCY),
        None,
        "Lambda Managed Instances: up to N invocations at once in each environment "
        "(docs/managed-instances.md); unset: one at a time",
        flag="--max-concurrency",
        metavar="N",
        env="AWS_LAMBDA_MAX_CONCURRENCY",
        toml="max_concurrency",
    ),
    _function(
        "max_queue",
        Integer(0, 100_000),
        100,
        "invocations that may wait for a busy function before 429 TooManyRequestsException",
        flag="--max-queue",
        metavar="N",
        toml="max_queue",
    ),
    _function(
        "idle_timeout",
        Number(0.1, 86_400),
        600 * SECONDS,
        "seconds before an idle environment is stopped",
        flag="--idle-timeout",
        metavar="SECONDS",
        toml="idle_timeout",
    ),
    _function(
        "init_timeout",
        Number(0.1, 900),
        limits.INIT_TIMEOUT,
        "seconds the Init phase (extensions and runtime start) may take",
        toml="init_timeout",
    ),
    _function(
        "env",
        Variables(),
        MappingProxyType({}),
        "environment variables for the function (--env is repeatable; a table in the file)",
        flag="--env",
        metavar="KEY=VALUE",
        toml="env",
    ),
    _function(
        "env_file",
        VariablesFile(),
        None,
        "a file of KEY=VALUE lines for the function's environment (--env wins)",
        flag="--env-file",
        metavar="FILE",
        toml="env_file",
    ),
    _function(
        "extensions_dir",
        Directory(optional=True),
        None,
        "start every executable in DIR as an external extension (the local /opt/extensions)",
        flag="--extensions-dir",
        metavar="DIR",
        toml="extensions_dir",
    ),
    _function(
        "layers",
        Directories(),
        (),
        "layer directories, laid out as /opt would be (python/, bin/, lib/, extensions/); "
        "a later layer wins, as on Lambda (--layer is repeatable; a list in the file)",
        flag="--layer",
        metavar="DIR",
        toml="layers",
    ),
    _function(
        "freeze",
        Switch(default=True),
        True,
        "freeze environments between invocations (their cgroup, or SIGSTOP), as Lambda does",
        flag="--no-freeze",
        flag_help="do not freeze environments between invocations",
        toml="freeze",
        all_functions=True,
    ),
    _function(
        "url_port",
        Integer(0, 65535),
        None,
        "serve the function's Function URL on this port (0: a free one)",
        flag="--url-port",
        metavar="PORT",
        toml="url_port",
    ),
    # --- Event invocations of one function ---
    _event(
        "max_retry_attempts",
        Integer(0, 2),
        2,
        "retries after a failed Event",
        flag="--max-retry-attempts",
        metavar="N",
        toml="max_retry_attempts",
    ),
    _event(
        "retry_backoff",
        Number(0, 3600),
        60 * SECONDS,
        "seconds before the first retry, doubling",
        flag="--retry-backoff",
        metavar="SECONDS",
        toml="retry_backoff",
    ),
    _event(
        "max_event_age",
        Number(1, 21600),
        21600 * SECONDS,
        "give up on Events older than this many seconds",
        flag="--max-event-age",
        metavar="SECONDS",
        toml="max_event_age",
    ),
    _event(
        "on_success",
        Destination(),
        "",
        "destination of successful Events",
        flag="--on-success",
        metavar="DEST",
        toml="on_success",
    ),
    _event(
        "on_failure",
        Destination(),
        "",
        "destination of failed Events",
        flag="--on-failure",
        metavar="DEST",
        toml="on_failure",
    ),
    # --- the service ---
    _service(
        "config",
        Text(),
        None,
        "a lambdakit.toml declaring several functions (and the [service] table)",
        flag="--config",
        metavar="FILE",
    ),
    _service(
        "template",
        Text(),
        None,
        "an AWS SAM template: serve its AWS::Serverless::Function resources",
        flag="--template",
        metavar="FILE",
        group=SAM_GROUP,
    ),
    _service(
        "parameter_overrides",
        ParameterValues(),
        MappingProxyType({}),
        "values of the template's Parameters (KEY=VALUE, several per flag, repeatable)",
        flag="--parameter-overrides",
        metavar="KEY=VALUE",
        group=SAM_GROUP,
    ),
    _service(
        "env_vars",
        EnvVarsFile(),
        None,
        "a JSON file of environment variables in sam local's --env-vars format: "
        '"Parameters" for every function, a function\'s own section over it; only '
        "variables the function declares are overridden",
        flag="--env-vars",
        metavar="FILE",
        toml="env_vars",
        group=SAM_GROUP,
    ),
    _service(
        "host",
        Text(),
        "127.0.0.1",
        "address of the Invoke API",
        flag="--host",
        toml="host",
    ),
    _service(
        "port",
        Integer(0, 65535),
        8080,
        "port of the Invoke API; 0 picks a free one (printed at start)",
        flag="--port",
        toml="port",
    ),
    _service(
        "state_dir",
        Location(),
        ".lambdakit",
        "where accepted Event invocations are stored (SQLite)",
        flag="--state-dir",
        metavar="DIR",
        toml="state_dir",
    ),
    _service(
        "log_format",
        Choice(("text", "json"), any_case=True),
        "text",
        "START/END/REPORT and function lines as CloudWatch text or Lambda's JSON records",
        flag="--log-format",
        toml="log_format",
    ),
    _service(
        "aws_credentials",
        Choice(("host", "none")),
        "host",
        "host: the functions get the AWS credentials of serve's environment (AWS_ACCESS_KEY_ID, "
        "AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_PROFILE and the files they name), as SAM "
        "passes them, so a function can call real AWS services; none: placeholder keys only "
        "(docs/isolation.md)",
        flag="--aws-credentials",
        toml="aws_credentials",
    ),
    _service(
        "log_level",
        Choice(("debug", "info", "warning", "error")),
        "info",
        "lambdakit's own diagnostics on stderr (debug shows freezes and thaws)",
        flag="--log-level",
    ),
    _service(
        "observe",
        Switch(default=True),
        True,
        "serve /metrics and the live view at /_lambdakit/ on the Invoke API port "
        "(docs/observability.md)",
        flag="--no-observe",
        flag_help="serve neither /metrics nor the live view (nothing watches the invocations)",
        toml="observe",
    ),
    _service(
        "urls",
        Switch(default=True),
        True,
        "listen on the functions' Function URL ports (url_port)",
        flag="--no-urls",
        flag_help="open no Function URL listener (lambdakit invoke's one-shot mode: the "
        "function is invoked once, through the Invoke API, beside a serve that holds its ports)",
        toml="urls",
    ),
    _service(
        "watch",
        Switch(default=False),
        False,
        "restart a function's environments when a file under its code_dir changes; running "
        "invocations finish on the old code, a new environment starts at once "
        "(docs/daily-loop.md)",
        flag="--watch",
        flag_help="hot reload: restart a function's environments when a file under its code "
        "directory changes (running invocations finish first; see docs/daily-loop.md)",
        toml="watch",
    ),
    _service(
        "debug",
        Switch(default=False),
        False,
        "for a debugger: one environment per function, never frozen, no invocation, Init or "
        "idle timeout (docs/daily-loop.md)",
        flag="--debug",
        flag_help="for a debugger (debugpy): one environment per function, never frozen, no "
        "timeouts (see docs/daily-loop.md)",
        toml="debug",
    ),
    _service(
        "isolation",
        Switch(default=True),
        True,
        "each environment's Runtime API answers only that environment's processes, checked "
        "once per connection (docs/isolation.md)",
        flag="--no-isolation",
        flag_help="let any local process call any environment's Runtime API",
        toml="isolation",
    ),
    _service(
        "cgroups",
        Switch(default=True),
        True,
        "put each environment's processes in a cgroup v2 of their own where the system allows, "
        "so that none outlives it (docs/isolation.md)",
        flag="--no-cgroups",
        flag_help="find an environment's processes by process group and a marker variable",
        toml="cgroups",
    ),
    _service(
        "region",
        Text(),
        "us-east-1",
        "AWS_REGION of the functions, and the region of their ARNs",
        toml="region",
    ),
    _service(
        "account_id",
        Pattern(r"\d{12}", "a 12-digit AWS account id"),
        "123456789012",
        "the account of the functions' ARNs",
        toml="account_id",
    ),
    _service(
        "shutdown_timeout",
        Number(0, 3600),
        10 * SECONDS,
        "seconds, on SIGTERM, for running invocations to finish",
        toml="shutdown_timeout",
    ),
    _service(
        "api",
        ApiTable(),
        None,
        "serve API Gateway routes (REST and HTTP APIs) on this port; with one function and no "
        "routes, every request goes to it (an HTTP API's $default route)",
        flag="--api-port",
        metavar="PORT",
        toml="api",
        own_table=True,
        group=API_GROUP,
    ),
    _service(
        "amqp",
        Broker(),
        None,
        "also consume each function's queue on this broker, as the Lambda Runtime API Daemon "
        "does; never from a file (AMQP_USERNAME/AMQP_PASSWORD fill in missing credentials; "
        "query: connection_attempts, retry_delay, heartbeat)",
        flag="--amqp",
        metavar="URL",
        env="AMQP_URI",
        not_in_file=", so that credentials stay out of files",
        group=AMQP_GROUP,
    ),
    _service(
        "amqp_queue",
        Choice(QUEUE_KINDS),
        DEFAULT_QUEUE_KIND,
        "how function queues are declared: transient (the daemon's: auto-delete), durable "
        "(survives broker restarts) or quorum",
        flag="--amqp-queue",
        toml="amqp_queue",
        group=AMQP_GROUP,
    ),
)

BY_NAME: Mapping[str, Option] = MappingProxyType({option.name: option for option in OPTIONS})
#: Each setting's default, by name: the field defaults of FunctionConfig and ServiceConfig.
DEFAULTS: Mapping[str, Any] = MappingProxyType({option.name: option.default for option in OPTIONS})


def scoped(scope: Scope) -> tuple[Option, ...]:
    return tuple(option for option in OPTIONS if option.scope == scope)


def read(option: Option, given: Given | None, source: Source) -> Any:
    """``given``'s value through the option's kind, else its default (named as ``source``)."""
    value, source = (given.value, given.source) if given else (option.default, source)
    return None if value is None else option.kind.parse(value, source)


# --- the sources --------------------------------------------------------------------------------
def flag_values(
    args: argparse.Namespace, options: Iterable[Option], base: Path, environ: Mapping[str, str]
) -> dict[str, Given]:
    """The settings among ``options`` whose flag was given."""
    return {
        option.name: Given(getattr(args, option.name), Source(option.flag, base, environ))
        for option in options
        if option.flag and getattr(args, option.name) is not None
    }


def environ_values(
    options: Iterable[Option], base: Path, environ: Mapping[str, str]
) -> dict[str, Given]:
    """The settings among ``options`` whose variable is set (and not empty)."""
    return {
        option.name: Given(environ[option.env], Source(option.env, base, environ))
        for option in options
        if option.env and environ.get(option.env)
    }


def file_values(
    path: Path, table: str, values: Mapping[str, object], scope: Scope, environ: Mapping[str, str]
) -> dict[str, Given]:
    """The settings of one table of a ``lambdakit.toml`` (``[service]``, ``[functions.NAME]``).

    Paths in it are relative to the file.  A key that is not a setting of ``scope`` is an error
    naming it, with the keys it may have meant.
    """
    keys = {option.toml: option for option in scoped(scope) if option.toml and not option.own_table}
    base = path.parent.resolve()
    given: dict[str, Given] = {}
    for key, value in values.items():
        where = in_file(path, table, key)
        if key not in keys:
            raise ConfigError(f"{where}: {_unknown_key(key, keys)}")
        given[keys[key].name] = Given(value, Source(where, base, environ))
    return given


def in_file(path: Path, table: str, key: str = "") -> str:
    """How errors name a key of a ``lambdakit.toml``: ``lambdakit.toml [functions.a] timeout``."""
    return f"{path} [{table}] {key}".rstrip()


def _unknown_key(key: str, keys: Iterable[str]) -> str:
    """Why ``key`` is not one of ``keys``, and what may have been meant."""
    elsewhere = BY_NAME.get(key)
    if elsewhere and elsewhere.own_table:
        return f"unknown key here; it is a table of its own: [{key}]"
    if elsewhere and elsewhere.toml == key:
        home = "the [service] table" if elsewhere.scope == "service" else "a [functions.NAME] table"
        return f"unknown key here; it belongs in {home}"
    if elsewhere and elsewhere.scope == "function":
        return f"unknown key (the function's {key} is NAME in [functions.NAME])"
    if elsewhere:
        ways = " or ".join(way for way in (elsewhere.flag, elsewhere.env) if way)
        return f"not read from a file{elsewhere.not_in_file}; give {ways}"
    close = [repr(match) for match in difflib.get_close_matches(key, keys, n=3)]
    if close:
        listed = close[0] if len(close) == 1 else f"{', '.join(close[:-1])} or {close[-1]}"
        return f"unknown key (did you mean {listed}?)"
    return f"unknown key (known: {', '.join(sorted(keys))})"


# --- argparse and the docs ------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """A flag for every setting that has one, in its group, its help saying range and default."""
    groups: dict[str, argparse._ArgumentGroup] = {}
    for option in OPTIONS:
        if option.flag is None:
            continue
        if option.group not in groups:
            groups[option.group] = parser.add_argument_group(option.group)
        extra = option.kind.arguments()
        if option.metavar:
            extra["metavar"] = option.metavar
        groups[option.group].add_argument(
            option.flag, dest=option.name, default=None, help=_flag_help(option), **extra
        )


def _flag_help(option: Option) -> str:
    """``help`` and, in brackets, the values, the variable and the default.

    A ``flag_help`` (``--no-freeze``) says what the flag does, which the setting's values and
    default would contradict: it stands alone.
    """
    if option.flag_help:
        return option.flag_help.replace("%", "%%")
    details = [] if isinstance(option.kind, Choice) else [option.kind.describe()]
    if option.env:
        details.append(f"env {option.env}")
    if shown_default(option):
        details.append(f"default: {shown_default(option)}")
    details = [detail for detail in details if detail]
    text = f"{option.help} [{'; '.join(details)}]" if details else option.help
    return text.replace("%", "%%")


def shown_default(option: Option) -> str:
    """The default as people write it; "" for none."""
    value = option.default
    if value is None or value in ("", (), {}):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def markdown_table() -> str:
    """The settings table of README.md, row by row from :data:`OPTIONS`."""
    rows = [
        "| flag | `lambdakit.toml` key | environment | default | values | meaning |",
        "|---|---|---|---|---|---|",
    ]
    for option in OPTIONS:
        flag = " ".join(part for part in (option.flag, option.metavar) if part)
        cells = [
            f"`{flag}`" if flag else (f"`{option.argument}`" if option.argument else ""),
            _toml_cell(option),
            f"`{option.env}`" if option.env else "",
            f"`{shown_default(option)}`" if shown_default(option) else "",
            option.kind.describe(),
            option.help,
        ]
        rows.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(rows) + "\n"


def _toml_cell(option: Option) -> str:
    if option.toml is None:  # a function setting without a key is the table's name
        return "`[functions.NAME]`" if option.scope == "function" else ""
    if option.own_table:
        return f"`[{option.toml}]` table"
    return f"`[service] {option.toml}`" if option.scope == "service" else f"`{option.toml}`"


if __name__ == "__main__":
    sys.stdout.write(markdown_table())
