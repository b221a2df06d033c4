"""Configuration of the local Lambda service, read once from flags, a TOML file and the environment.

Which settings there are, how each is spelled and what it may be: the one table of
:mod:`lambdakit.emulator.options`.  This module reads them into the frozen
:class:`FunctionConfig` and :class:`ServiceConfig`: one function given by flags (and the
variables AWS's RIE reads: ``AWS_LAMBDA_FUNCTION_NAME``, ``AWS_LAMBDA_FUNCTION_TIMEOUT``,
``AWS_LAMBDA_FUNCTION_MEMORY_SIZE``, ``MAX_CONCURRENCY``), or the ``[functions.NAME]`` tables of
a ``lambdakit.toml``; then the service, from flags over the file's ``[service]`` table over the
environment.  Sources, strongest first: flags, the file, the environment, the table's defaults.
The environment is an injectable mapping, and every error starts with the flag, key or variable
at fault (:class:`ConfigError`): ``--timeout``, ``lambdakit.toml [functions.a] timeout``,
``AWS_LAMBDA_FUNCTION_TIMEOUT``.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import os
import shutil
import sys
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lambdakit.amqp.uri import BrokerAddress
from lambdakit.emulator.api_kinds import PortOverride
from lambdakit.emulator.api_routes import ApiConfig, ApiError, ApiRoute, check_api
from lambdakit.emulator.handler_check import check_python_handler
from lambdakit.emulator.layers import layer_environment
from lambdakit.emulator.option_kinds import (
    ConfigError,
    Given,
    Source,
    parse_env_pair,
    read_env_file,
)
from lambdakit.emulator.options import (
    DEFAULTS,
    Option,
    environ_values,
    file_values,
    flag_values,
    in_file,
    read,
    scoped,
)


@dataclass(frozen=True)
class FunctionConfig:
    """One function: how to start its runtime and the limits it runs under."""

    name: str
    #: The runtime's command line (a bootstrap, any command, or the Python runtime).
    command: tuple[str, ...]
    code_dir: Path
    handler: str = DEFAULTS["handler"]
    timeout: float = DEFAULTS["timeout"]
    memory: int = DEFAULTS["memory"]
    concurrency: int = DEFAULTS["concurrency"]
    #: Lambda Managed Instances: invocations at once per environment; None: one (classic).
    max_concurrency: int | None = DEFAULTS["max_concurrency"]
    max_queue: int = DEFAULTS["max_queue"]
    idle_timeout: float = DEFAULTS["idle_timeout"]
    init_timeout: float = DEFAULTS["init_timeout"]
    env: Mapping[str, str] = field(default_factory=dict)
    version: str = "$LATEST"
    #: The local stand-in for /opt/extensions: every executable in it is started before the runtime.
    extensions_dir: Path | None = DEFAULTS["extensions_dir"]
    #: Layer directories, each laid out as ``/opt`` would be, in Lambda's order (a later layer
    #: wins): their ``python``, ``bin`` and ``lib`` on the paths, their ``extensions`` started.
    layers: tuple[Path, ...] = DEFAULTS["layers"]
    #: Freeze the environment's processes (SIGSTOP) between invocations, as Lambda does.
    freeze: bool = DEFAULTS["freeze"]
    #: Serve a Function URL on this port (0: a free one); None: no URL.
    url_port: int | None = DEFAULTS["url_port"]
    #: Event invocations: retries after the first attempt, first backoff (doubling), max age.
    max_retry_attempts: int = DEFAULTS["max_retry_attempts"]
    retry_backoff: float = DEFAULTS["retry_backoff"]
    max_event_age: float = DEFAULTS["max_event_age"]
    #: Event destinations: ``function:NAME`` or a ``.jsonl`` file path; "" for none.
    on_success: str = DEFAULTS["on_success"]
    on_failure: str = DEFAULTS["on_failure"]
    #: What serve says at start about this function (a handler its module may not define).
    warnings: tuple[str, ...] = ()

    @property
    def capacity(self) -> int:
        """Invocations the function runs at once: environments times invocations in each."""
        return self.concurrency * (self.max_concurrency or 1)


@dataclass(frozen=True)
class ServiceConfig:
    """The whole service: where it listens, how it logs, and its functions by name."""

    functions: Mapping[str, FunctionConfig]
    host: str = DEFAULTS["host"]
    port: int = DEFAULTS["port"]
    log_format: str = DEFAULTS["log_format"]
    #: Whether functions get serve's AWS credentials (``host``) or placeholders (``none``).
    aws_credentials: str = DEFAULTS["aws_credentials"]
    #: Serve ``/metrics`` and the live view (``/_lambdakit/``).
    observe: bool = DEFAULTS["observe"]
    #: Listen on the functions' Function URL ports (``--no-urls``: none).
    urls: bool = DEFAULTS["urls"]
    #: Each environment's APIs answer only its own processes (docs/isolation.md).
    isolation: bool = DEFAULTS["isolation"]
    #: Each environment's processes in a cgroup v2 of their own, where the system allows.
    cgroups: bool = DEFAULTS["cgroups"]
    region: str = DEFAULTS["region"]
    account_id: str = DEFAULTS["account_id"]
    shutdown_timeout: float = DEFAULTS["shutdown_timeout"]
    #: Where Event invocations are stored (``events.sqlite3``).
    state_dir: Path = Path(DEFAULTS["state_dir"])
    #: The broker whose function queues this service consumes (``--amqp``); None: no AMQP door.
    amqp: BrokerAddress | None = DEFAULTS["amqp"]
    #: How the function queues are declared: transient (the daemon's), durable or quorum.
    amqp_queue: str = DEFAULTS["amqp_queue"]
    #: Restart a function's environments when its code changes (``--watch``).
    watch: bool = DEFAULTS["watch"]
    #: Debugging (``--debug``): the functions run as :func:`for_debugging` makes them.
    debug: bool = DEFAULTS["debug"]
    #: API Gateway routes served on their own port (``--api-port``, ``[api]``); None: none.
    api: ApiConfig | None = DEFAULTS["api"]

    def function_arn(self, name: str) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account_id}:function:{name}"


_FUNCTION_FIELDS = frozenset(f.name for f in dataclasses.fields(FunctionConfig))
_SERVICE_FIELDS = frozenset(f.name for f in dataclasses.fields(ServiceConfig))
#: How a source names each setting, given or not (for defaults and errors across settings).
Spelling = Callable[[Option], Source]


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


@dataclass(frozen=True)
class Runtime:
    """The runtime a function names (at most one of three), each part named as its source does."""

    command: tuple[str, ...]
    bootstrap: str
    python_handler: str
    #: "command", "bootstrap", "python_handler" and "code_dir" as the source spells them.
    names: Mapping[str, str]
    #: What to give when there is no runtime, in the source's words.
    hint: str
    #: What a relative bootstrap is read against: the working directory for a flag, the
    #: file's directory for ``lambdakit.toml``.
    bootstrap_base: Path = Path()


def resolve_command(runtime: Runtime, code_dir: Path, env: Mapping[str, str]) -> tuple[str, ...]:
    """Choose the runtime command as Lambda would; errors name the part at fault."""
    names = runtime.names
    chosen = [
        part
        for part, value in (
            ("command", runtime.command),
            ("bootstrap", runtime.bootstrap),
            ("python_handler", runtime.python_handler),
        )
        if value
    ]
    if len(chosen) > 1:
        first = names[chosen[0]]
        table = first.rpartition("] ")[0]  # keys of the same TOML table by their key alone
        others = [names[part].removeprefix(f"{table}] ") for part in chosen[1:]]
        raise ConfigError(
            f"{first}: give one runtime: a bootstrap, a command, or a Python handler "
            f"(also given: {', '.join(others)})"
        )
    if runtime.command:
        program = runtime.command[0]
        if shutil.which(program, path=_search_path(code_dir, env)) is None:
            raise ConfigError(
                f"{names['command']}: command {program!r} not found or not executable"
            )
        return runtime.command
    if runtime.python_handler:
        return _python_runtime(names["python_handler"], runtime.python_handler, env)
    return _bootstrap(runtime, code_dir)


def _python_runtime(key: str, handler: str, env: Mapping[str, str]) -> tuple[str, ...]:
    if importlib.util.find_spec("lambdakit.runtime") is None:
        raise ConfigError(
            f"{key}: the Python runtime (python -m lambdakit.runtime) is not yet available "
            "in this version of lambdakit; use --bootstrap PATH or -- COMMAND"
        )
    wrapper = env.get("AWS_LAMBDA_EXEC_WRAPPER")
    if wrapper and not (os.path.isfile(wrapper) and os.access(wrapper, os.X_OK)):
        problem = "does not exist" if not os.path.exists(wrapper) else "is not an executable"
        raise ConfigError(f"{key}: AWS_LAMBDA_EXEC_WRAPPER {wrapper!r} {problem}")
    return python_runtime_command(handler, env)


def _bootstrap(runtime: Runtime, code_dir: Path) -> tuple[str, ...]:
    """The bootstrap given (relative to its source's base), else ``code_dir/bootstrap``."""
    given = runtime.bootstrap
    path = Path.cwd() / runtime.bootstrap_base / given if given else code_dir / "bootstrap"
    key = runtime.names["bootstrap" if given else "code_dir"]
    if not path.exists():
        if given:
            raise ConfigError(f"{key}: bootstrap {str(path)!r} does not exist")
        raise ConfigError(
            f"{key}: no runtime given and no 'bootstrap' in {str(code_dir)!r}; {runtime.hint}"
        )
    if not os.access(path, os.X_OK) or path.is_dir():
        raise ConfigError(f"{key}: bootstrap {str(path)!r} is not an executable file")
    return (str(path.resolve()),)


def _search_path(code_dir: Path, env: Mapping[str, str]) -> str:
    return os.pathsep.join([str(code_dir), env.get("PATH", os.defpath)])


# --- building a FunctionConfig ---------------------------------------------------------------
def build_function(
    given: Mapping[str, Given],
    spelling: Spelling,
    *,
    environ: Mapping[str, str],
    hint: str,
    names: Collection[str] = (),
    python_handler: Given | None = None,
) -> FunctionConfig:
    """Check one function's settings (from flags or a TOML table) and choose its runtime.

    ``spelling`` names the settings that were not given, as this source would; ``names`` are
    the functions of the service (Event destinations must be among them; the function itself
    always is); ``python_handler`` is the command line's ``HANDLER``.
    """
    sources = {
        o.name: given[o.name].source if o.name in given else spelling(o) for o in scoped("function")
    }
    values = {o.name: read(o, given.get(o.name), sources[o.name]) for o in scoped("function")}
    if python_handler is None and values["runtime"] == "python":
        if not values["handler"]:
            raise ConfigError(
                f"{sources['runtime'].name}: python needs a handler: give "
                f"{sources['handler'].name} MODULE.FUNCTION"
            )
        python_handler = Given(values["handler"], sources["handler"])
    if python_handler is None:
        _runtime_for_handler(values, sources)
    env = {**(values["env_file"] or {}), **values["env"]}
    runtime = Runtime(
        command=values["command"],
        bootstrap=values["bootstrap"] or "",
        python_handler=str(python_handler.value) if python_handler else "",
        names={
            "command": sources["command"].name,
            "bootstrap": sources["bootstrap"].name,
            "code_dir": sources["code_dir"].name,
            "python_handler": python_handler.source.name if python_handler else "",
        },
        hint=hint,
        bootstrap_base=sources["bootstrap"].base,
    )
    for key in ("on_success", "on_failure"):
        target = values[key]
        wanted = target.split(":", 1)[1] if target.startswith("function:") else ""
        if wanted and wanted not in {*names, values["name"]}:
            raise ConfigError(f"{sources[key].name}: no function named {wanted!r} in this service")
    settings = {name: value for name, value in values.items() if name in _FUNCTION_FIELDS}
    settings.update(
        command=resolve_command(runtime, values["code_dir"], {**environ, **env}),
        env=env,
        handler=values["handler"] or runtime.python_handler,
    )
    if runtime.python_handler:
        seen = {**environ, **env}
        settings["warnings"] = check_python_handler(
            runtime.python_handler,
            values["code_dir"],
            {**seen, **layer_environment(values["layers"], seen)},  # a module may be a layer's
            key=runtime.names["python_handler"],
            code_dir_key=sources["code_dir"].name,
        )
    return FunctionConfig(**settings)


def _runtime_for_handler(values: Mapping[str, Any], sources: Mapping[str, Source]) -> None:
    """A handler given with no runtime, where none can be chosen: say which setting to add."""
    code_dir: Path = values["code_dir"]
    if (
        not values["handler"]
        or values["runtime"]
        or values["command"]
        or values["bootstrap"]
        or (code_dir / "bootstrap").exists()
    ):
        return
    on_command_line = sources["runtime"].name.startswith("--")
    add = (
        "add --runtime python to run it on lambdakit's Python runtime (or give it as HANDLER), "
        "or give --bootstrap PATH or -- COMMAND"
        if on_command_line
        else f'add {sources["runtime"].name.rpartition("] ")[2]} = "python" to run it on '
        "lambdakit's Python runtime, or set bootstrap or command"
    )
    raise ConfigError(
        f"{sources['handler'].name}: {values['handler']} names no runtime, and "
        f"{str(code_dir)!r} has no 'bootstrap': {add}"
    )


def function_from_flags(
    args: argparse.Namespace, command: Sequence[str], environ: Mapping[str, str]
) -> FunctionConfig:
    """The one function of ``lambdakit serve [FLAGS] [HANDLER] [-- COMMAND]``.

    A setting's flag wins over its variable (``--timeout`` over ``AWS_LAMBDA_FUNCTION_TIMEOUT``).
    """
    base = Path.cwd()

    def spelling(option: Option) -> Source:
        return Source(option.flag or option.argument or option.name, base, environ)

    options = scoped("function")
    given = {
        **environ_values(options, base, environ),
        **flag_values(args, options, base, environ),
    }
    if command:
        given["command"] = Given(tuple(command), Source("-- COMMAND", base, environ))
    handler = args.handler_arg
    return build_function(
        given,
        spelling,
        environ=environ,
        hint="pass a Python HANDLER, --bootstrap PATH, or -- COMMAND",
        python_handler=Given(handler, Source("HANDLER", base, environ)) if handler else None,
    )


# --- lambdakit.toml ---------------------------------------------------------------------------
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


_SECTIONS = ("service", "functions", "api")


def functions_from_file(
    path: Path, document: Mapping[str, Any], environ: Mapping[str, str]
) -> dict[str, FunctionConfig]:
    """The ``[functions.NAME]`` tables of a ``lambdakit.toml``; their paths are relative to it."""
    for section in document:
        if section not in _SECTIONS:
            raise ConfigError(
                f"{path}: unknown section {section!r} "
                f"(expected [service], [functions.NAME] and [api])"
                f"{_did_you_mean(section, _SECTIONS)}"
            )
    tables = document.get("functions")
    if not isinstance(tables, dict) or not tables:
        raise ConfigError(f"{path}: declares no functions (add a [functions.NAME] table)")
    base = path.parent.resolve()
    functions: dict[str, FunctionConfig] = {}
    for name, table in tables.items():
        where = f"functions.{name}"
        if not isinstance(table, dict):
            raise ConfigError(f"{in_file(path, where)}: expected a table")

        def spelling(option: Option, where: str = where) -> Source:
            return Source(in_file(path, where, option.toml or option.name), base, environ)

        given = file_values(path, where, table, "function", environ)
        given["name"] = Given(name, Source(in_file(path, where), base, environ))
        functions[name] = build_function(
            given,
            spelling,
            environ=environ,
            hint='set bootstrap, command, or runtime = "python" with a handler',
            names=tables.keys(),
        )
    return functions


def service_from_file(
    path: Path, document: Mapping[str, Any], environ: Mapping[str, str]
) -> dict[str, Given]:
    """The settings of the ``[service]`` table of a ``lambdakit.toml``."""
    section = document.get("service", {})
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: [service] must be a table")
    given = file_values(path, "service", section, "service", environ)
    base = path.parent.resolve()
    for option in scoped("service"):
        if option.own_table and option.toml and option.toml in document:
            source = Source(in_file(path, option.toml), base, environ)
            given[option.name] = Given(document[option.toml], source)
    return given


def _did_you_mean(word: str, choices: Sequence[str]) -> str:
    import difflib

    close = difflib.get_close_matches(word, choices, n=1)
    return f"; did you mean [{close[0]}]?" if close else ""


# --- building the ServiceConfig ---------------------------------------------------------------
def build_service(
    functions: Mapping[str, FunctionConfig], given: Mapping[str, Given], environ: Mapping[str, str]
) -> ServiceConfig:
    """Check the service-wide settings; those not given take the table's defaults."""
    base = Path.cwd()
    settings = {
        option.name: read(
            option,
            given.get(option.name),
            Source(option.flag or option.toml or option.name, base, environ),
        )
        for option in scoped("service")
        if option.name in _SERVICE_FIELDS
    }
    if settings["debug"]:
        functions = {name: for_debugging(function) for name, function in functions.items()}
    if settings["api"] is not None:
        settings["api"] = _api_routes(settings["api"], functions)
    return ServiceConfig(functions=dict(functions), **settings)


#: Seconds an invocation, an Init or an idle environment may last under ``--debug``: a day.
DEBUG_TIMEOUT = 86_400.0


def for_debugging(function: FunctionConfig) -> FunctionConfig:
    """``function`` as ``--debug`` runs it: one environment, never frozen, no timeouts.

    A debugger attached to the runtime (debugpy) stops it at breakpoints for as long as a
    person looks: the invocation and Init must not time out, SIGSTOP must not freeze the
    debugger's own thread between invocations, and one environment means one process to
    attach to (one port for ``debugpy --listen``).
    """
    return dataclasses.replace(
        function,
        concurrency=1,
        freeze=False,
        timeout=DEBUG_TIMEOUT,
        init_timeout=DEBUG_TIMEOUT,
        idle_timeout=DEBUG_TIMEOUT,
    )


def _api_routes(api: ApiConfig, functions: Mapping[str, FunctionConfig]) -> ApiConfig:
    """``api`` checked against the functions; without routes, one function takes every request
    (the ``$default`` route of an HTTP API)."""
    if not api.routes:
        if len(functions) != 1:
            raise ConfigError(
                f"{api.source}: no routes: add [[api.routes]] tables to lambdakit.toml, "
                "each naming its function"
            )
        (name,) = functions
        api = dataclasses.replace(api, routes=(ApiRoute(function=name, source=api.source),))
    try:
        check_api(api, functions)
    except ApiError as exc:
        raise ConfigError(str(exc)) from None
    return api


def service_settings(
    args: argparse.Namespace, environ: Mapping[str, str], file: Mapping[str, Given]
) -> dict[str, Given]:
    """The service settings given: by flag, else in the file, else by variable."""
    base = Path.cwd()
    options = scoped("service")
    flags = flag_values(args, options, base, environ)
    given = {**environ_values(options, base, environ), **file, **flags}
    for option in options:  # a flag for a table of the file: the table, with the flag's value
        if option.own_table and option.name in file and option.name in flags:
            override = PortOverride(file[option.name], flags[option.name])
            given[option.name] = Given(override, flags[option.name].source)
    return given


__all__ = [
    "ConfigError",
    "FunctionConfig",
    "ServiceConfig",
    "build_function",
    "build_service",
    "for_debugging",
    "function_from_flags",
    "functions_from_file",
    "load_toml",
    "parse_env_pair",
    "python_runtime_command",
    "read_env_file",
    "resolve_command",
    "service_from_file",
    "service_settings",
]
