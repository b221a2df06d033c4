"""``lambdakit serve``: flags and ``lambdakit.toml`` into a configuration, then the service.

``lambdakit serve [OPTIONS] [HANDLER] [-- COMMAND [ARGS...]]``.  Invalid flags or configuration
print one line naming the problem and exit with status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lambdakit.commandline import EXIT_USAGE, Parser, UsageError, fail, setup_logging

_SERVE_EPILOG = """\
runtime selection (one of):
  HANDLER                 a Python handler such as app.handler, run by lambdakit's runtime
  --bootstrap PATH        a custom runtime's executable (as provided.al2023 runs it)
  -- COMMAND [ARGS...]    any command as the runtime (as AWS's RIE takes it)
  (none)                  the 'bootstrap' file in --code-dir, as Lambda looks for it

examples:
  lambdakit serve --code-dir examples/echo-bash --handler function.handler
  lambdakit serve --port 0 app.handler
  lambdakit serve --config lambdakit.toml
  lambdakit serve --function-name echo -- ./bootstrap
  lambdakit serve --config lambdakit.toml --amqp amqp://guest:guest@127.0.0.1:5672/

Invoke with curl, boto3 (endpoint_url=http://HOST:PORT) or the AWS CLI (--endpoint-url):
  curl -XPOST http://127.0.0.1:8080/2015-03-31/functions/NAME/invocations -d '{}'
"""


def _serve_parser(prog: str) -> argparse.ArgumentParser:
    parser = Parser(
        prog=prog,
        description="Run Lambda functions on this machine, as Lambda runs them, without Docker.",
        epilog=_SERVE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("handler_arg", nargs="?", metavar="HANDLER", help="Python handler (module.function)")
    function = parser.add_argument_group("function (single-function mode)")
    fadd = function.add_argument
    fadd(
        "--function-name",
        help="name in the Invoke API path (env AWS_LAMBDA_FUNCTION_NAME; default: function)",
    )
    fadd("--handler", help="value of _HANDLER for the runtime")
    fadd("--bootstrap", metavar="PATH", help="custom runtime executable")
    fadd("--code-dir", metavar="DIR", help="LAMBDA_TASK_ROOT and working directory (default: .)")
    fadd(
        "--timeout",
        metavar="SECONDS",
        help="function timeout (env AWS_LAMBDA_FUNCTION_TIMEOUT; default: 3)",
    )
    fadd(
        "--memory",
        metavar="MB",
        help="memory size reported to the function "
        "(env AWS_LAMBDA_FUNCTION_MEMORY_SIZE; default: 128)",
    )
    fadd(
        "--concurrency",
        metavar="N",
        help="most environments at once (env MAX_CONCURRENCY; default: 10)",
    )
    fadd(
        "--max-queue",
        metavar="N",
        help="invocations that may wait for a busy function before "
        "429 TooManyRequestsException (default: 100)",
    )
    fadd(
        "--idle-timeout", metavar="SECONDS", help="stop environments idle this long (default: 600)"
    )
    fadd(
        "--env",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help="environment variable for the function (repeatable)",
    )
    fadd("--env-file", metavar="FILE", help="KEY=VALUE lines for the function's environment")
    fadd(
        "--extensions-dir",
        metavar="DIR",
        help="start every executable in DIR as an external extension (the local /opt/extensions)",
    )
    fadd(
        "--url-port",
        metavar="PORT",
        help="serve the function's Function URL on this port (0: a free one)",
    )
    events = parser.add_argument_group("Event (asynchronous) invocations")
    eadd = events.add_argument
    eadd("--max-retry-attempts", metavar="N", help="retries after a failed Event, 0-2 (default: 2)")
    eadd(
        "--retry-backoff",
        metavar="SECONDS",
        help="wait before the first retry, doubling (default: 60)",
    )
    eadd(
        "--max-event-age",
        metavar="SECONDS",
        help="give up on Events older than this (default: 21600)",
    )
    eadd(
        "--on-success",
        metavar="DEST",
        help="destination of successful Events: function:NAME or a .jsonl file",
    )
    eadd(
        "--on-failure",
        metavar="DEST",
        help="destination of failed Events: function:NAME or a .jsonl file",
    )
    fadd(
        "--no-freeze",
        dest="freeze",
        action="store_false",
        help="do not freeze (SIGSTOP) environments between invocations",
    )
    service = parser.add_argument_group("service")
    sadd = service.add_argument
    sadd("--config", metavar="FILE", help="a lambdakit.toml declaring several functions")
    sadd("--host", help="address of the Invoke API (default: 127.0.0.1)")
    sadd(
        "--state-dir",
        metavar="DIR",
        help="where accepted Event invocations are stored (default: .lambdakit)",
    )
    sadd("--port", help="port of the Invoke API; 0 picks a free one (default: 8080)")
    sadd(
        "--log-format",
        choices=("text", "json"),
        help="START/END/REPORT and function lines as text or JSON (default: text)",
    )
    amqp = parser.add_argument_group("scale-out over RabbitMQ (see docs/scale-out.md)")
    aadd = amqp.add_argument
    aadd(
        "--amqp",
        metavar="URL",
        help="also consume each function's queue on this broker, as the Lambda Runtime API "
        "Daemon does (env AMQP_URI; AMQP_USERNAME/AMQP_PASSWORD fill in missing credentials; "
        "query: connection_attempts, retry_delay, heartbeat)",
    )
    aadd(
        "--amqp-queue",
        choices=("transient", "durable", "quorum"),
        help="how function queues are declared: transient (the daemon's: auto-delete), "
        "durable (survives broker restarts) or quorum (default: transient)",
    )
    sadd(
        "--log-level",
        default="info",
        choices=("debug", "info", "warning", "error"),
        help="lambdakit's own diagnostics on stderr (default: info)",
    )
    return parser


def _function_options(
    args: argparse.Namespace, command: Sequence[str], environ: Mapping[str, str]
) -> dict[str, Any]:
    from lambdakit.emulator.config import (
        DEFAULT_CONCURRENCY,
        DEFAULT_MEMORY,
        DEFAULT_TIMEOUT,
        environ_default,
        parse_env_pair,
    )

    env = dict(parse_env_pair("--env", pair) for pair in args.env)
    options: dict[str, Any] = {
        "name": environ_default(
            environ, args.function_name, "AWS_LAMBDA_FUNCTION_NAME", "function"
        ),
        "handler": args.handler or args.handler_arg or "",
        "python_handler": args.handler_arg,
        "bootstrap": args.bootstrap,
        "command": tuple(command),
        "code_dir": args.code_dir or ".",
        "timeout": environ_default(
            environ, args.timeout, "AWS_LAMBDA_FUNCTION_TIMEOUT", DEFAULT_TIMEOUT
        ),
        "memory": environ_default(
            environ, args.memory, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", DEFAULT_MEMORY
        ),
        "concurrency": environ_default(
            environ, args.concurrency, "MAX_CONCURRENCY", DEFAULT_CONCURRENCY
        ),
        "env": env,
        "env_file": args.env_file,
        "extensions_dir": args.extensions_dir,
        "freeze": args.freeze,
        "url_port": args.url_port,
    }
    for option in (
        "max_queue",
        "max_retry_attempts",
        "retry_backoff",
        "max_event_age",
        "on_success",
        "on_failure",
    ):
        if getattr(args, option) is not None:
            options[option] = getattr(args, option)
    if args.idle_timeout is not None:
        options["idle_timeout"] = args.idle_timeout
    return options


_FLAG_NAMES = {
    "name": "--function-name / AWS_LAMBDA_FUNCTION_NAME",
    "code_dir": "--code-dir",
    "timeout": "--timeout / AWS_LAMBDA_FUNCTION_TIMEOUT",
    "memory": "--memory / AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "concurrency": "--concurrency / MAX_CONCURRENCY",
    "max_queue": "--max-queue",
    "idle_timeout": "--idle-timeout",
    "env": "--env",
    "env_file": "--env-file",
    "extensions_dir": "--extensions-dir",
    "url_port": "--url-port",
    "max_retry_attempts": "--max-retry-attempts",
    "retry_backoff": "--retry-backoff",
    "max_event_age": "--max-event-age",
    "on_success": "--on-success",
    "on_failure": "--on-failure",
    "runtime": "runtime",
}

_SINGLE_FUNCTION_FLAGS = (
    "function_name",
    "handler",
    "bootstrap",
    "code_dir",
    "timeout",
    "memory",
    "concurrency",
    "max_queue",
    "idle_timeout",
    "env_file",
    "extensions_dir",
    "url_port",
    "max_retry_attempts",
    "retry_backoff",
    "max_event_age",
    "on_success",
    "on_failure",
)


def build_config(argv: Sequence[str], environ: Mapping[str, str]) -> tuple[Any, str]:
    """Parse ``serve``'s arguments: (ServiceConfig, log level); raises ConfigError/UsageError."""
    from lambdakit.emulator import config as cfg

    argv = list(argv)
    command: list[str] = []
    if "--" in argv:
        split = argv.index("--")
        argv, command = argv[:split], argv[split + 1 :]
        if not command:
            raise cfg.ConfigError("--: expected a COMMAND after '--'")
    args = _serve_parser("lambdakit serve").parse_args(argv)
    service_options: dict[str, Any] = {}
    if args.config:
        given = [f"--{n.replace('_', '-')}" for n in _SINGLE_FUNCTION_FLAGS if getattr(args, n)]
        if args.env or command or args.handler_arg:
            given.append("--env/HANDLER/COMMAND")
        if given:
            raise cfg.ConfigError(
                f"{given[0]}: cannot be combined with --config; set it per function in the file"
            )
        path = Path(args.config)
        document = cfg.load_toml(path)
        functions = cfg.functions_from_file(path, document, environ)
        if not args.freeze:  # --no-freeze applies to every function of the file
            functions = {n: dataclasses.replace(f, freeze=False) for n, f in functions.items()}
        service_options.update(cfg.service_options(path, document))
    else:
        options = _function_options(args, command, environ)
        function = cfg.build_function(
            "", options, base=Path.cwd(), environ=environ, names=_FLAG_NAMES
        )
        functions = {function.name: function}
    for key in ("host", "port", "log_format", "state_dir", "amqp_queue"):
        value = getattr(args, key)
        if value is not None:
            service_options[key] = value
    from lambdakit.amqp.uri import BrokerUrlError, broker_address

    try:
        service_options["amqp"] = broker_address(args.amqp, environ)
    except BrokerUrlError as exc:
        raise cfg.ConfigError(str(exc)) from None
    return cfg.build_service(functions, service_options), args.log_level


def main(argv: Sequence[str], environ: Mapping[str, str]) -> int:
    """Run ``lambdakit serve ARGV``; the exit status."""
    from lambdakit.emulator.config import ConfigError

    try:
        config, level = build_config(argv, environ)
    except (ConfigError, UsageError) as exc:
        fail(f"lambdakit serve: error: {exc}")
        return EXIT_USAGE
    setup_logging(level)
    if config.amqp is not None and config.amqp.password:
        from lambdakit.undumpable import make_undumpable

        make_undumpable()  # functions run as this user: keep the password out of their reach
    import sqlite3

    from lambdakit.emulator.service import BrokerUnavailable, Service, serve

    try:
        service = Service(config, environ)
    except (OSError, sqlite3.Error) as exc:
        fail(f"lambdakit serve: error: --state-dir: cannot use {str(config.state_dir)!r}: {exc}")
        return EXIT_USAGE

    def ready(address: tuple[str, int]) -> None:
        host, port = address
        names = ", ".join(sorted(config.functions))
        lines = [f"lambdakit serve: listening on http://{host}:{port} (functions: {names})"]
        for name, (url_host, url_port) in sorted(service.url_addresses.items()):
            lines.append(f"lambdakit serve: function URL of {name}: http://{url_host}:{url_port}/")
        if config.amqp is not None:
            lines.append(
                f"lambdakit serve: consuming queues {names} on {config.amqp.redacted()} "
                f"({config.amqp_queue})"
            )
        sys.stdout.write("\n".join(lines) + "\n")
        sys.stdout.flush()

    try:
        _run(serve(service, ready))
    except BrokerUnavailable as exc:
        fail(f"lambdakit serve: error: --amqp: {exc}")
        return EXIT_USAGE
    except OSError as exc:
        fail(f"lambdakit serve: error: {exc.strerror or exc}")
        return 1
    return 0


def _run(main: Any) -> None:
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
        return
    uvloop.run(main)
