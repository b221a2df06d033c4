"""Configuration of the local Lambda service, read once from flags, a TOML file and the environment.

Sources, strongest first: command-line flags, then (for a single function given by flags) the
environment variables AWS's RIE reads (``AWS_LAMBDA_FUNCTION_NAME``,
``AWS_LAMBDA_FUNCTION_TIMEOUT``, ``AWS_LAMBDA_FUNCTION_MEMORY_SIZE``, ``MAX_CONCURRENCY``), then
defaults.  A ``lambdakit.toml`` file
declares several functions.  The environment is an injectable mapping, and every error names the
key or flag at fault (:class:`ConfigError`).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lambdakit.amqp.queues import DEFAULT_KIND as DEFAULT_QUEUE_KIND
from lambdakit.amqp.queues import QUEUE_KINDS
from lambdakit.amqp.uri import BrokerAddress
from lambdakit.wire import limits

SECONDS = 1.0
MB = 1

DEFAULT_TIMEOUT = 3 * SECONDS
DEFAULT_MEMORY = 128 * MB
DEFAULT_CONCURRENCY = 10
DEFAULT_IDLE_TIMEOUT = 600 * SECONDS
DEFAULT_MAX_QUEUE = 100
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
DEFAULT_REGION = "us-east-1"
DEFAULT_ACCOUNT_ID = "123456789012"
DEFAULT_SHUTDOWN_TIMEOUT = 10 * SECONDS

LOG_FORMATS = ("text", "json")
_FUNCTION_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_ENV_KEY = re.compile(r"^[a-zA-Z][a-zA-Z0-9_]*$")


class ConfigError(Exception):
    """Invalid configuration; the message names the flag, key or variable."""


@dataclass(frozen=True)
class FunctionConfig:
    """One function: how to start its runtime and the limits it runs under."""

    name: str
    #: The runtime's command line (a bootstrap, any command, or the Python runtime).
    command: tuple[str, ...]
    code_dir: Path
    handler: str = ""
    timeout: float = DEFAULT_TIMEOUT
    memory: int = DEFAULT_MEMORY
    concurrency: int = DEFAULT_CONCURRENCY
    max_queue: int = DEFAULT_MAX_QUEUE
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    init_timeout: float = limits.INIT_TIMEOUT
    env: Mapping[str, str] = field(default_factory=dict)
    version: str = "$LATEST"
    #: The local stand-in for /opt/extensions: every executable in it is started before the runtime.
    extensions_dir: Path | None = None
    #: Freeze the environment's processes (SIGSTOP) between invocations, as Lambda does.
    freeze: bool = True
    #: Serve a Function URL on this port (0: a free one); None: no URL.
    url_port: int | None = None
    #: Event invocations: retries after the first attempt, first backoff (doubling), max age.
    max_retry_attempts: int = 2
    retry_backoff: float = 60 * SECONDS
    max_event_age: float = 21600 * SECONDS
    #: Event destinations: ``function:NAME`` or a ``.jsonl`` file path; "" for none.
    on_success: str = ""
    on_failure: str = ""


@dataclass(frozen=True)
class ServiceConfig:
    """The whole service: where it listens, how it logs, and its functions by name."""

    functions: Mapping[str, FunctionConfig]
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    log_format: str = "text"
    region: str = DEFAULT_REGION
    account_id: str = DEFAULT_ACCOUNT_ID
    shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT
    #: Where Event invocations are stored (``events.sqlite3``).
    state_dir: Path = Path(".lambdakit")
    #: The broker whose function queues this service consumes (``--amqp``); None: no AMQP door.
    amqp: BrokerAddress | None = None
    #: How the function queues are declared: transient (the daemon's), durable or quorum.
    amqp_queue: str = DEFAULT_QUEUE_KIND

    def function_arn(self, name: str) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account_id}:function:{name}"


# --- value checks -------------------------------------------------------------------------------
def _number(key: str, value: Any, low: float, high: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key}: expected a number, got {value!r}") from None
    if isinstance(value, bool) or not low <= number <= high:
        raise ConfigError(f"{key}: {value!r} is out of range ({low:g} to {high:g})")
    return number


def _integer(key: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool):
        raise ConfigError(f"{key}: expected a whole number, got {value!r}")
    try:
        number = int(str(value), 10)
    except ValueError:
        raise ConfigError(f"{key}: expected a whole number, got {value!r}") from None
    if not low <= number <= high:
        raise ConfigError(f"{key}: {number} is out of range ({low} to {high})")
    return number


def _boolean(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    return value


def _destination(key: str, value: Any, base: Path) -> str:
    """``function:NAME`` or a ``.jsonl`` file (made absolute); the function is checked later."""
    if value is None or value == "":
        return ""
    if not isinstance(value, str):
        raise ConfigError(f"{key}: expected function:NAME or a .jsonl file, got {value!r}")
    if value.startswith("function:"):
        _function_name(key, value.split(":", 1)[1])
        return value
    if not value.endswith(".jsonl"):
        raise ConfigError(f"{key}: {value!r} is neither function:NAME nor a .jsonl file")
    path = Path(value)
    path = path if path.is_absolute() else base / path
    if not path.parent.is_dir():
        raise ConfigError(f"{key}: the directory of {str(path)!r} does not exist")
    return str(path.resolve())


def _function_name(key: str, value: Any) -> str:
    if not isinstance(value, str) or not _FUNCTION_NAME.match(value):
        raise ConfigError(
            f"{key}: {value!r} is not a valid function name (1-64 letters, digits, - or _)"
        )
    return value


def parse_env_pair(key: str, pair: str) -> tuple[str, str]:
    """``KEY=VALUE`` as given to ``--env``."""
    name, sep, value = pair.partition("=")
    if not sep:
        raise ConfigError(f"{key}: expected KEY=VALUE, got {pair!r}")
    return _env_key(key, name), value


def _env_key(key: str, name: str) -> str:
    if not _ENV_KEY.match(name):
        raise ConfigError(f"{key}: {name!r} is not a valid environment variable name")
    return name


def read_env_file(key: str, path: Path) -> dict[str, str]:
    """A dotenv-style file: ``KEY=VALUE`` lines, ``#`` comments, optional ``export`` and quotes."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{key}: cannot read {str(path)!r}: {exc.strerror}") from None
    env: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").lstrip()
        name, value = parse_env_pair(f"{key} ({path}:{number})", line)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        env[name] = value
    return env


# --- runtime command resolution ---------------------------------------------------------------
def python_runtime_command(handler: str, env: Mapping[str, str]) -> tuple[str, ...]:
    """The command that runs a Python handler: ``python -m lambdakit.runtime HANDLER``.

    ``AWS_LAMBDA_EXEC_WRAPPER`` is honoured as Lambda's managed runtimes do: the wrapper is
    started with the interpreter and the original arguments.
    """
    command: tuple[str, ...] = (sys.executable, "-m", "lambdakit.runtime", handler)
    wrapper = env.get("AWS_LAMBDA_EXEC_WRAPPER")
    if wrapper:
        command = (wrapper, *command)
    return command


def resolve_command(
    key: str,
    code_dir: Path,
    *,
    command: Sequence[str] = (),
    bootstrap: str | None = None,
    python_handler: str | None = None,
    env: Mapping[str, str],
) -> tuple[str, ...]:
    """Choose the runtime command as Lambda would, naming ``key`` in errors."""
    chosen = [c for c in (command, bootstrap, python_handler) if c]
    if len(chosen) > 1:
        raise ConfigError(f"{key}: give one runtime: a bootstrap, a command, or a Python handler")
    if command:
        if shutil.which(command[0], path=_search_path(code_dir, env)) is None:
            raise ConfigError(f"{key}: command {command[0]!r} not found or not executable")
        return tuple(command)
    if python_handler:
        if importlib.util.find_spec("lambdakit.runtime") is None:
            raise ConfigError(
                f"{key}: the Python runtime (python -m lambdakit.runtime) is not yet available "
                "in this version of lambdakit; use --bootstrap PATH or -- COMMAND"
            )
        wrapper = env.get("AWS_LAMBDA_EXEC_WRAPPER")
        if wrapper and not (os.path.isfile(wrapper) and os.access(wrapper, os.X_OK)):
            problem = "does not exist" if not os.path.exists(wrapper) else "is not an executable"
            raise ConfigError(f"{key}: AWS_LAMBDA_EXEC_WRAPPER {wrapper!r} {problem}")
        return python_runtime_command(python_handler, env)
    path = Path(bootstrap) if bootstrap else code_dir / "bootstrap"
    if not path.is_absolute():
        path = (Path.cwd() / path) if bootstrap else path
    if not path.exists():
        if bootstrap:
            raise ConfigError(f"{key}: bootstrap {str(path)!r} does not exist")
        raise ConfigError(
            f"{key}: no runtime given and no 'bootstrap' in {str(code_dir)!r}; pass a "
            "Python HANDLER, --bootstrap PATH, or -- COMMAND"
        )
    if not os.access(path, os.X_OK) or path.is_dir():
        raise ConfigError(f"{key}: bootstrap {str(path)!r} is not an executable file")
    return (str(path.resolve()),)


def _search_path(code_dir: Path, env: Mapping[str, str]) -> str:
    return os.pathsep.join([str(code_dir), env.get("PATH", os.defpath)])


def code_directory(key: str, value: str | os.PathLike[str], base: Path) -> Path:
    path = Path(value)
    if not path.is_absolute():
        path = base / path
    if not path.is_dir():
        raise ConfigError(f"{key}: {str(path)!r} is not a directory")
    return path.resolve()


# --- building a FunctionConfig ---------------------------------------------------------------
def build_function(
    prefix: str,
    options: Mapping[str, Any],
    *,
    base: Path,
    environ: Mapping[str, str],
    names: Mapping[str, str] | None = None,
) -> FunctionConfig:
    """Validate one function's options (from flags or a TOML table).

    ``options`` keys: name, command, bootstrap, handler, python_handler, code_dir, timeout,
    memory, concurrency, max_queue, idle_timeout, init_timeout, env, env_file.  Errors name
    ``names[key]`` when given (a flag such as ``--timeout``), else ``prefix + key``.
    """

    def key(option: str) -> str:
        return (names or {}).get(option, prefix + option)

    name = _function_name(key("name"), options.get("name"))
    code_dir = code_directory(key("code_dir"), options.get("code_dir") or ".", base)
    env: dict[str, str] = {}
    if options.get("env_file"):
        env_file = Path(str(options["env_file"]))
        env.update(
            read_env_file(key("env_file"), env_file if env_file.is_absolute() else base / env_file)
        )
    for env_name, value in dict(options.get("env") or {}).items():
        env[_env_key(key("env"), str(env_name))] = str(value)
    handler = str(options.get("handler") or options.get("python_handler") or "")
    command = resolve_command(
        key("runtime"),
        code_dir,
        command=tuple(options.get("command") or ()),
        bootstrap=options.get("bootstrap"),
        python_handler=options.get("python_handler"),
        env={**environ, **env},
    )
    extensions_dir = options.get("extensions_dir")
    return FunctionConfig(
        extensions_dir=(
            code_directory(key("extensions_dir"), extensions_dir, base) if extensions_dir else None
        ),
        freeze=_boolean(key("freeze"), options.get("freeze", True)),
        url_port=(
            None
            if options.get("url_port") is None
            else _integer(key("url_port"), options["url_port"], 0, 65535)
        ),
        max_retry_attempts=_integer(
            key("max_retry_attempts"), options.get("max_retry_attempts", 2), 0, 2
        ),
        retry_backoff=_number(key("retry_backoff"), options.get("retry_backoff", 60), 0, 3600),
        max_event_age=_number(key("max_event_age"), options.get("max_event_age", 21600), 1, 21600),
        on_success=_destination(key("on_success"), options.get("on_success"), base),
        on_failure=_destination(key("on_failure"), options.get("on_failure"), base),
        name=name,
        command=command,
        code_dir=code_dir,
        handler=handler,
        timeout=_number(
            key("timeout"), options.get("timeout", DEFAULT_TIMEOUT), 0.1, limits.MAX_TIMEOUT
        ),
        memory=_integer(
            key("memory"),
            options.get("memory", DEFAULT_MEMORY),
            limits.MIN_MEMORY,
            limits.MAX_MEMORY,
        ),
        concurrency=_integer(
            key("concurrency"), options.get("concurrency", DEFAULT_CONCURRENCY), 1, 1000
        ),
        max_queue=_integer(
            key("max_queue"), options.get("max_queue", DEFAULT_MAX_QUEUE), 0, 100_000
        ),
        idle_timeout=_number(
            key("idle_timeout"), options.get("idle_timeout", DEFAULT_IDLE_TIMEOUT), 0.1, 86_400
        ),
        init_timeout=_number(
            key("init_timeout"), options.get("init_timeout", limits.INIT_TIMEOUT), 0.1, 900
        ),
        env=env,
    )


_FUNCTION_KEYS = frozenset(
    {
        "command",
        "bootstrap",
        "handler",
        "runtime",
        "code_dir",
        "timeout",
        "memory",
        "concurrency",
        "max_queue",
        "idle_timeout",
        "init_timeout",
        "env",
        "env_file",
        "extensions_dir",
        "freeze",
        "url_port",
        "max_retry_attempts",
        "retry_backoff",
        "max_event_age",
        "on_success",
        "on_failure",
    }
)
_SERVICE_KEYS = frozenset(
    {
        "host",
        "port",
        "log_format",
        "region",
        "account_id",
        "shutdown_timeout",
        "state_dir",
        "amqp_queue",
    }
)


def load_toml(path: Path) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        with path.open("rb") as file:
            document: dict[str, Any] = tomllib.load(file)
            return document
    except OSError as exc:
        raise ConfigError(f"--config: cannot read {str(path)!r}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"--config: {path} is not valid TOML: {exc}") from None


def functions_from_file(
    path: Path, document: Mapping[str, Any], environ: Mapping[str, str]
) -> dict[str, FunctionConfig]:
    """The ``[functions.NAME]`` tables of a ``lambdakit.toml``."""
    base = path.parent.resolve()
    unknown = set(document) - {"service", "functions"}
    if unknown:
        raise ConfigError(
            f"{path}: unknown section {sorted(unknown)[0]!r} "
            "(expected [service] and [functions.NAME])"
        )
    tables = document.get("functions")
    if not isinstance(tables, dict) or not tables:
        raise ConfigError(f"{path}: declares no functions (add a [functions.NAME] table)")
    functions: dict[str, FunctionConfig] = {}
    for name, table in tables.items():
        prefix = f"{path}: functions.{name}."
        if not isinstance(table, dict):
            raise ConfigError(f"{prefix[:-1]}: expected a table")
        extra = set(table) - _FUNCTION_KEYS
        if extra:
            raise ConfigError(
                f"{prefix}{sorted(extra)[0]}: unknown key "
                f"(known: {', '.join(sorted(_FUNCTION_KEYS))})"
            )
        options = dict(table, name=name)
        runtime = table.get("runtime", "")
        if runtime not in ("", "python", "provided"):
            raise ConfigError(f"{prefix}runtime: {runtime!r} is not 'python' or 'provided'")
        if isinstance(options.get("command"), str):
            options["command"] = [options["command"]]
        if runtime == "python" and table.get("handler"):
            options["python_handler"] = table["handler"]
        functions[name] = build_function(prefix, options, base=base, environ=environ)
    return functions


def service_options(path: Path, document: Mapping[str, Any]) -> dict[str, Any]:
    section = document.get("service", {})
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: [service] must be a table")
    if "amqp" in section:
        raise ConfigError(
            f"{path}: service.amqp: give the broker URL with --amqp or AMQP_URI, so that "
            "credentials stay out of files"
        )
    extra = set(section) - _SERVICE_KEYS
    if extra:
        raise ConfigError(
            f"{path}: service.{sorted(extra)[0]}: unknown key "
            f"(known: {', '.join(sorted(_SERVICE_KEYS))})"
        )
    options = dict(section)
    if "state_dir" in options:  # relative to the file, like every path in it
        options["state_dir"] = str(path.parent / str(options["state_dir"]))
    return options


def build_service(
    functions: Mapping[str, FunctionConfig], options: Mapping[str, Any]
) -> ServiceConfig:
    """Validate the service-wide options (``--host``, ``--port``, ``--log-format`` ...)."""
    log_format = str(options.get("log_format", "text")).lower()
    if log_format not in LOG_FORMATS:
        raise ConfigError(f"--log-format: {options.get('log_format')!r} is not 'text' or 'json'")
    for function in functions.values():
        for key, target in (
            ("on_success", function.on_success),
            ("on_failure", function.on_failure),
        ):
            name = target.split(":", 1)[1] if target.startswith("function:") else ""
            if name and name not in functions:
                raise ConfigError(
                    f"{function.name}: {key}: no function named {name!r} in this service"
                )
    amqp_queue = str(options.get("amqp_queue", DEFAULT_QUEUE_KIND))
    if amqp_queue not in QUEUE_KINDS:
        raise ConfigError(
            f"--amqp-queue / amqp_queue: {amqp_queue!r} is not one of {', '.join(QUEUE_KINDS)}"
        )
    amqp = options.get("amqp")
    if amqp is not None and not isinstance(amqp, BrokerAddress):
        raise ConfigError("amqp: give the broker URL with --amqp or AMQP_URI, not in the file")
    account = str(options.get("account_id", DEFAULT_ACCOUNT_ID))
    if not re.fullmatch(r"\d{12}", account):
        raise ConfigError(f"account_id: {account!r} is not a 12-digit AWS account id")
    return ServiceConfig(
        functions=dict(functions),
        host=str(options.get("host", DEFAULT_HOST)),
        port=_integer("--port", options.get("port", DEFAULT_PORT), 0, 65535),
        log_format=log_format,
        region=str(options.get("region", DEFAULT_REGION)),
        account_id=account,
        state_dir=Path(str(options.get("state_dir", ".lambdakit"))).resolve(),
        shutdown_timeout=_number(
            "shutdown_timeout", options.get("shutdown_timeout", DEFAULT_SHUTDOWN_TIMEOUT), 0, 3600
        ),
        amqp=amqp,
        amqp_queue=amqp_queue,
    )


def environ_default(
    environ: Mapping[str, str], flag_value: Any, variable: str, default: Any
) -> Any:
    """A flag's value, else the environment variable's, else the default."""
    if flag_value is not None:
        return flag_value
    return environ.get(variable, default)


__all__ = [
    "ConfigError",
    "FunctionConfig",
    "ServiceConfig",
    "build_function",
    "build_service",
    "environ_default",
    "functions_from_file",
    "load_toml",
    "parse_env_pair",
    "read_env_file",
    "service_options",
]
