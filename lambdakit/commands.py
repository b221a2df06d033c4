"""The ``lambdakit`` command line: one command per package, each imported when it runs.

``lambdakit serve`` runs the local Lambda service, ``lambdakit invoke`` invokes a function once
(on a running serve or one-shot), ``lambdakit event`` prints sample events of AWS sources,
``lambdakit gateway`` an Invoke API in front of ``serve --amqp`` workers, ``lambdakit events``
lists its stored Event invocations,
``lambdakit top`` shows its live view's figures in the terminal, ``lambdakit post-run`` and
``lambdakit layer`` are the post-runner's, and ``lambdakit extension`` runs a Python external
extension.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
from collections.abc import Mapping, Sequence

from lambdakit import __version__
from lambdakit.command_support import EXIT_USAGE, Parser, UsageError, fail

#: Every command: name -> (module with ``main(argv, environ) -> int``, one-line summary).
COMMANDS = {
    "serve": (
        "lambdakit.emulator.serve_command",
        "run Lambda functions locally, as Lambda runs them",
    ),
    "invoke": (
        "lambdakit.invoke_command",
        "invoke a function once (on a running serve, or started just for it)",
    ),
    "event": (
        "lambdakit.event_command",
        "print a sample event of an AWS source (SQS, S3, API Gateway...) to invoke with",
    ),
    "events": (
        "lambdakit.emulator.events_command",
        "list the Event (asynchronous) invocations serve has stored, pending or failed",
    ),
    "top": (
        "lambdakit.top_command",
        "serve's live view in the terminal: environments, invocations, phases",
    ),
    "gateway": (
        "lambdakit.gateway.command",
        "a stateless Invoke API in front of serve --amqp workers",
    ),
    "post-run": ("lambdakit.postrun.cli", "run a command after each response, for any runtime"),
    "layer": ("lambdakit.postrun.layer", "build the post-runner's Lambda layer zip"),
    "extension": ("lambdakit.extensions.cli", "run a Python external extension"),
}


def _main_parser() -> argparse.ArgumentParser:
    listing = "".join(f"  {name:<10} {summary}\n" for name, (_, summary) in COMMANDS.items())
    parser = Parser(
        prog="lambdakit",
        description="A toolkit for the AWS Lambda execution environment.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"commands:\n{listing}\nlambdakit COMMAND --help describes each one.\n",
    )
    parser.add_argument("--version", action="version", version=f"lambdakit {__version__}")
    parser.add_argument("command", choices=tuple(COMMANDS), help="what to run")
    return parser


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    environ = os.environ if environ is None else environ
    if argv and argv[0] in COMMANDS:
        module = importlib.import_module(COMMANDS[argv[0]][0])
        return int(module.main(argv[1:], environ))
    if not argv:  # `lambdakit` alone: what there is to run
        _main_parser().print_help()
        return 0
    try:
        _main_parser().parse_args(argv[:1] if argv else [])
    except UsageError as exc:
        fail(f"lambdakit: error: {exc}")
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
