"""``lambdakit serve``: flags and ``lambdakit.toml`` into a configuration, then the service.

``lambdakit serve [OPTIONS] [HANDLER] [-- COMMAND [ARGS...]]``.  Invalid flags or configuration
print one line naming the problem and exit with status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lambdakit.command_support import EXIT_USAGE, Parser, UsageError, fail, setup_logging
from lambdakit.emulator import config as cfg
from lambdakit.emulator import options
from lambdakit.emulator.config import FunctionConfig, ServiceConfig
from lambdakit.emulator.option_kinds import Given, Source

if TYPE_CHECKING:
    from lambdakit.emulator.sam_template import SamTemplate

logger = logging.getLogger("lambdakit.config")

_SERVE_EPILOG = """\
runtime selection (one of):
  HANDLER                 a Python handler such as app.handler, run by lambdakit's runtime
                          (or --handler app.handler --runtime python)
  --bootstrap PATH        a custom runtime's executable (as provided.al2023 runs it)
  -- COMMAND [ARGS...]    any command as the runtime (as AWS's RIE takes it)
  (none)                  the 'bootstrap' file in --code-dir, as Lambda looks for it

examples:
  lambdakit serve --code-dir examples/echo-bash --handler function.handler
  lambdakit serve --port 0 app.handler
  lambdakit serve --config lambdakit.toml
  lambdakit serve --template template.yaml --env-vars env.json
  lambdakit serve --function-name echo -- ./bootstrap
  lambdakit serve --config lambdakit.toml --amqp amqp://guest:guest@127.0.0.1:5672/
  lambdakit serve --api-port 3000 app.handler     (every request of port 3000 to app.handler)

Invoke with lambdakit invoke NAME, curl, boto3 (endpoint_url=http://HOST:PORT) or the AWS CLI
(--endpoint-url):
  curl -XPOST http://127.0.0.1:8080/2015-03-31/functions/NAME/invocations -d '{}'
"""


def _serve_parser(prog: str) -> argparse.ArgumentParser:
    """``serve``'s flags: the positional HANDLER, then one flag per setting of the table."""
    parser = Parser(
        prog=prog,
        description="Run Lambda functions on this machine, as Lambda runs them, without Docker.",
        epilog=_SERVE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "handler_arg", nargs="?", metavar="HANDLER", help="Python handler (module.function)"
    )
    options.add_arguments(parser)
    return parser


def _refuse_function_flags(
    args: argparse.Namespace, command: Sequence[str], file_flag: str = "--config"
) -> None:
    """With ``--config`` or ``--template``, the functions' settings are in the file (but for
    ``--no-freeze``)."""
    given = [
        option.flag
        for option in options.scoped("function")
        if option.flag and not option.all_functions and getattr(args, option.name) is not None
    ]
    given += ["HANDLER"] if args.handler_arg else []
    given += ["-- COMMAND"] if command else []
    if given:
        raise cfg.ConfigError(
            f"{given[0]}: cannot be combined with {file_flag}; set it per function in the file"
        )


def _for_every_function(
    functions: dict[str, FunctionConfig], args: argparse.Namespace, environ: Mapping[str, str]
) -> dict[str, FunctionConfig]:
    """The flags that apply to every function of the file (``--no-freeze``), applied."""
    base = Path.cwd()
    for option in options.scoped("function"):
        if option.all_functions and getattr(args, option.name) is not None:
            given = options.flag_values(args, (option,), base, environ)[option.name]
            value = options.read(option, given, given.source)
            functions = {
                name: dataclasses.replace(function, **{option.name: value})
                for name, function in functions.items()
            }
    return functions


@dataclass(frozen=True)
class Loaded:
    """What ``serve``'s arguments say: the configuration, and what was read beside it."""

    service: ServiceConfig
    log_level: str
    #: Settings read but not used (a template's unsupported properties, --env-vars names that
    #: no function declares): logged as warnings at start.
    warnings: tuple[str, ...] = ()
    #: The SAM template of ``--template`` (its API routes), if one was given.
    template: SamTemplate | None = None


def build_config(argv: Sequence[str], environ: Mapping[str, str]) -> tuple[ServiceConfig, str]:
    """Parse ``serve``'s arguments: (ServiceConfig, log level); raises ConfigError/UsageError."""
    loaded = load_config(argv, environ)
    return loaded.service, loaded.log_level


def load_config(argv: Sequence[str], environ: Mapping[str, str]) -> Loaded:
    """Parse ``serve``'s arguments into a :class:`Loaded`; raises ConfigError/UsageError."""
    argv = list(argv)
    command: list[str] = []
    if "--" in argv:
        split = argv.index("--")
        argv, command = argv[:split], argv[split + 1 :]
        if not command:
            raise cfg.ConfigError("-- COMMAND: expected a COMMAND after '--'")
    args = _serve_parser("lambdakit serve").parse_args(argv)
    file: dict[str, Given] = {}
    template: SamTemplate | None = None
    logical_ids: Mapping[str, str] = {}
    if args.template and args.config:
        raise cfg.ConfigError("--template: cannot be combined with --config")
    if args.parameter_overrides and not args.template:
        raise cfg.ConfigError("--parameter-overrides: only with --template")
    if args.template:
        _refuse_function_flags(args, command, "--template")
        template = _read_template(args, environ)
        functions = _for_every_function(dict(template.functions), args, environ)
        logical_ids = {detail.logical_id: name for name, detail in template.details.items()}
    elif args.config:
        _refuse_function_flags(args, command)
        path = Path(args.config)
        document = cfg.load_toml(path)
        functions = cfg.functions_from_file(path, document, environ)
        functions = _for_every_function(functions, args, environ)
        file = cfg.service_from_file(path, document, environ)
    else:
        function = cfg.function_from_flags(args, command, environ)
        functions = {function.name: function}
    given = cfg.service_settings(args, environ, file)
    warnings = list(template.warnings) if template else []
    if template is not None:
        warnings += _template_api(template, given, environ)
    if "env_vars" in given:
        option = options.BY_NAME["env_vars"]
        env_vars = given["env_vars"]
        sections = options.read(option, env_vars, env_vars.source)
        from lambdakit.emulator.env_overrides import apply_env_vars

        functions, more = apply_env_vars(
            functions, sections, f"{env_vars.source.name} {env_vars.value}", logical_ids
        )
        warnings += more
    service = cfg.build_service(functions, given, environ)
    level = args.log_level or options.DEFAULTS["log_level"]
    return Loaded(service, level, tuple(warnings), template)


def _template_api(
    template: SamTemplate, given: dict[str, Given], environ: Mapping[str, str]
) -> list[str]:
    """Serve the template's ``Api`` / ``HttpApi`` events on the API Gateway port (``--api-port``,
    else 3000); the API properties not served, as warnings."""
    from lambdakit.emulator.api_routes import DEFAULT_PORT
    from lambdakit.emulator.sam_apis import api_config

    where = str(template.path)
    port = DEFAULT_PORT
    if "api" in given:  # --api-port
        chosen = given["api"]
        port = options.read(options.BY_NAME["api"], chosen, chosen.source).port
    api = api_config(template.api_events, template.apis, where, port)
    if api is not None:
        given["api"] = Given(api, Source("--template", Path.cwd(), environ))
    return [
        f"{where} Resources.{api_id}.Properties.{key}: ignored (not served locally)"
        for api_id, settings in template.apis.items()
        for key in settings.unsupported
    ]


def _read_template(args: argparse.Namespace, environ: Mapping[str, str]) -> SamTemplate:
    """The template of ``--template``, read with the service's region and account and the
    parameters of ``--parameter-overrides``."""
    from lambdakit.emulator.sam_template import read_template

    given = cfg.service_settings(args, environ, {})
    base = Path.cwd()

    def setting(name: str) -> Any:
        option = options.BY_NAME[name]
        return options.read(option, given.get(name), Source(option.flag or name, base, environ))

    return read_template(
        Path(args.template),
        parameters=setting("parameter_overrides") or {},
        region=setting("region"),
        account_id=setting("account_id"),
        environ=environ,
    )


def main(argv: Sequence[str], environ: Mapping[str, str]) -> int:
    """Run ``lambdakit serve ARGV``; the exit status."""
    try:
        loaded = load_config(argv, environ)
    except (cfg.ConfigError, UsageError) as exc:
        fail(f"lambdakit serve: error: {exc}")
        return EXIT_USAGE
    config, level = loaded.service, loaded.log_level
    setup_logging(level)
    for warning in loaded.warnings:
        logger.warning("%s", warning)
    for function in config.functions.values():
        for warning in function.warnings:
            fail(f"lambdakit serve: warning: {warning}")
    if config.amqp is not None and config.amqp.password:
        from lambdakit.undumpable import make_undumpable

        make_undumpable()  # functions run as this user: keep the password out of their reach
    import sqlite3

    from lambdakit.emulator.environment import HOST_KEYS
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
        if service.api_address is not None and config.api is not None:
            api_host, api_port = service.api_address
            lines.append(f"lambdakit serve: API Gateway: http://{api_host}:{api_port}")
            for route in config.api.routes:
                kind = "REST API" if route.kind == "rest" else "HTTP API"
                lines.append(
                    f"lambdakit serve:   {route.route_key} -> {route.function} "
                    f"({kind}, payload {route.payload_format})"
                )
        given = [name for name in HOST_KEYS if name in environ]
        if config.aws_credentials == "host" and given:
            lines.append(
                f"lambdakit serve: functions get this shell's AWS credentials ({', '.join(given)});"
                " --aws-credentials none keeps them out"
            )
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
