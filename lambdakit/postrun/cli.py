"""``lambdakit post-run [OPTIONS] [--] RUNTIME_COMMAND [ARGS...]``.

Options come first; the first argument that is not an option (or everything after ``--``) is
the runtime's command line.  Every option has an environment variable, which it overrides.
A configuration problem is one line on stderr naming the variable, reported to Lambda as an
init error (``/runtime/init/error``) when the Runtime API is known; the exit status is then 2.
Otherwise the exit status is the runtime's (128 + N if a signal N killed it).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Mapping, Sequence

from lambdakit.postrun import config as cfg
from lambdakit.postrun.runner import PostRunner
from lambdakit.proxy.server import RuntimeApiProxy
from lambdakit.proxy.supervise import report_init_error, run_runtime

logger = logging.getLogger("lambdakit.postrun")

EXIT_CONFIG = 2
PROG = "lambdakit post-run"

_EPILOG = f"""\
environment (each option overrides its variable):
  {cfg.COMMAND}    the command (required), run as SHELL -c COMMAND
  {cfg.SHELL}      default /bin/bash, or /bin/sh where there is no bash
  {cfg.MODE}       AfterResponse, AfterError (comma-separated; default both)
  {cfg.LOG_LEVEL}  trace, debug, info (default), warn, error, off
  {cfg.TIMEOUT}    seconds the command may run (default: until the deadline)
  {cfg.PORT}       the proxy's port on 127.0.0.1 (default 0: a free one)

the command's environment also has POST_RUNNER_REQUEST_ID, POST_RUNNER_FUNCTION_ARN,
POST_RUNNER_OUTCOME (response|error), POST_RUNNER_EVENT_FILE, POST_RUNNER_RESULT_FILE and
POST_RUNNER_DEADLINE_MS.

example:
  {cfg.COMMAND}='sleep 2 && echo done' lambdakit post-run -- ./bootstrap
"""


class _UsageError(Exception):
    pass


class _Exit(Exception):
    def __init__(self, status: int) -> None:
        self.status = status


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise _UsageError(message)

    def exit(self, status: int = 0, message: str | None = None) -> None:  # type: ignore[override]
        if message:
            sys.stderr.write(message)
        raise _Exit(status)  # --help: return from main() instead of exiting the process


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        usage=f"{PROG} [OPTIONS] [--] RUNTIME_COMMAND [ARGS...]",
        description="Run a runtime behind a Runtime API proxy that runs a command after each "
        "invocation, once the caller has the response.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--command", help=f"the command to run ({cfg.COMMAND})")
    add("--shell", help=f"the shell that runs it ({cfg.SHELL})")
    add("--mode", help=f"when to run it ({cfg.MODE})")
    add("--log-level", help=f"the post-runner's own logging ({cfg.LOG_LEVEL})")
    add("--timeout", metavar="SECONDS", help=f"stop the command after this long ({cfg.TIMEOUT})")
    add("--port", help=f"the proxy's port ({cfg.PORT})")
    return parser


def split_argv(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """(options, runtime command): options end at ``--`` or the first non-option argument."""
    index = 0
    while index < len(argv):
        arg = argv[index]
        if arg == "--":
            return list(argv[:index]), list(argv[index + 1 :])
        if not arg.startswith("-"):
            break
        index += 1 if "=" in arg or arg in ("-h", "--help") else 2
    return list(argv[:index]), list(argv[index:])


def main(argv: Sequence[str], environ: Mapping[str, str]) -> int:
    options, command = split_argv(argv)
    try:
        args = _parser().parse_args(options)
        flags = {
            name: getattr(args, flag[2:].replace("-", "_")) for name, flag in cfg.FLAGS.items()
        }
        config = cfg.load(flags, command, environ)
    except _Exit as exc:
        return exc.status
    except (cfg.PostRunConfigError, _UsageError) as exc:
        return _config_error(str(exc), environ)
    _configure_logging(config.log_level)
    return _serve(config, environ)


def _serve(config: cfg.PostRunConfig, environ: Mapping[str, str]) -> int:
    proxy = RuntimeApiProxy(config.runtime_api, PostRunner(config, environ))
    try:
        proxy.start("127.0.0.1", config.port)
    except OSError as exc:
        proxy.close()
        where = f"{cfg.PORT} / --port" if config.port else "a free port"
        return _config_error(
            f"cannot listen on 127.0.0.1:{config.port} ({where}): {exc.strerror or exc}", environ
        )
    logger.debug("proxy on %s for %s", proxy.address, " ".join(config.runtime_command))
    return run_runtime(config.runtime_command, proxy, environ)


def _config_error(message: str, environ: Mapping[str, str]) -> int:
    sys.stderr.write(f"{PROG}: error: {message}\n")
    sys.stderr.flush()
    try:
        api = cfg.runtime_api(environ)
    except cfg.PostRunConfigError:
        return EXIT_CONFIG  # nowhere to report it; the message above is all there is
    report_init_error(api, cfg.CONFIG_ERROR_TYPE, message)  # logs its own failure
    return EXIT_CONFIG


def _configure_logging(level: int) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("post-runner %(levelname)s: %(message)s"))
    root = logging.getLogger("lambdakit")
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False
