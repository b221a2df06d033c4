"""``lambdakit invoke NAME``: invoke a function once and print its response.

Against a running ``lambdakit serve`` (``--endpoint URL``, else ``LAMBDAKIT_ENDPOINT``, else
http://127.0.0.1:8080), or, given ``--config lambdakit.toml`` or serve's function flags
(``--code-dir``, ``--handler``, ``--runtime``, ``--bootstrap``, a ``HANDLER``, ``-- COMMAND``...),
one-shot without a server, as ``sam local invoke`` does: the function is started, invoked once
and stopped.

The one-shot mode runs ``lambdakit serve --port 0`` as an owned child (:mod:`lambdakit.one_shot`)
rather than the service in this process.  The invocation then goes through exactly what a
running serve does (the same configuration checks, Init, log lines, timeouts, Shutdown phase and
reaping of every process), the function's log reaches our stderr while stdout carries only the
payload, and a crash or Ctrl-C in the function's machinery cannot leave our terminal in a bad
state; the price is one more interpreter start (about 0.1 s), only in that mode.  Against a
running serve, the command imports only the stdlib's ``http.client`` and starts at once.

Exit statuses (``EXIT_*`` below): 0 the function returned (or an Event was accepted, or DryRun
said yes); 1 the function failed (its error JSON on stdout, a summary on stderr); 2 a usage
error (flags, the event file, the configuration); 3 the Invoke API refused the request (no such
function, throttled, payload too large, a broken stream); 4 no service: nothing listens at the
endpoint, or the one-shot serve did not start; 130 interrupted (Ctrl-C: a one-shot serve is
stopped at once, its grace periods skipped).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from lambdakit.command_support import EXIT_USAGE, Parser, UsageError, fail
from lambdakit.invoke_client import (
    Endpoint,
    Reply,
    ServiceError,
    Unreachable,
    invoke,
    invoke_stream,
)

EXIT_OK = 0
EXIT_FUNCTION_ERROR = 1
EXIT_SERVICE_ERROR = 3
EXIT_NO_SERVICE = 4
#: Ctrl-C, as a shell reports it (128 + SIGINT).
EXIT_INTERRUPTED = 130

DEFAULT_ENDPOINT = "http://127.0.0.1:8080"
ENDPOINT_VARIABLE = "LAMBDAKIT_ENDPOINT"
INVOCATION_TYPES = ("RequestResponse", "Event", "DryRun")
#: Seconds beyond the function's timeout the one-shot mode waits for the invocation's REPORT.
REPORT_MARGIN = 5.0
#: serve's flags that the one-shot mode sets itself.
_ONE_SHOT_OWNS = ("--function-name", "--port", "--host")

_EPILOG = f"""\
payload: --payload JSON, --event FILE, or --event - (stdin); {{}} if none.

one-shot, without a running serve (the function is started, invoked once, stopped):
  add --config lambdakit.toml, --template template.yaml, or serve's function flags
  (see lambdakit serve --help):
  lambdakit invoke NAME --config lambdakit.toml
  lambdakit invoke NAME --template template.yaml --env-vars env.json   (a SAM template)
  lambdakit invoke NAME --code-dir DIR app.handler         (a Python handler)
  lambdakit invoke NAME --code-dir DIR --handler app.handler --runtime python
  lambdakit invoke NAME --code-dir DIR                     (its 'bootstrap')
  lambdakit invoke NAME --timeout 10 -- ./bootstrap
  the function's log goes to stderr, its response to stdout.

examples:
  lambdakit invoke echo --payload '{{"hello": "world"}}'
  lambdakit event sqs --body hi | lambdakit invoke orders --event -
  lambdakit invoke echo --log-tail --endpoint http://127.0.0.1:9000
  lambdakit invoke streamer --stream

exit status: 0 ok; 1 the function failed; 2 usage error; 3 the Invoke API refused the
request (e.g. no such function); 4 no service at the endpoint ({ENDPOINT_VARIABLE}, default
{DEFAULT_ENDPOINT}), or the one-shot serve did not start; 130 Ctrl-C.
"""


def _parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="lambdakit invoke",
        description="Invoke a function once: its response to stdout, its errors named.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("name", metavar="NAME", help="the function's name (or ARN)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--payload", metavar="JSON", help="the event, as JSON text")
    source.add_argument(
        "--event", metavar="FILE", help="read the event from FILE ('-': from stdin)"
    )
    parser.add_argument(
        "--invocation-type",
        choices=INVOCATION_TYPES,
        default="RequestResponse",
        help="RequestResponse (wait for the response; the default), Event (asynchronous: "
        "202 once accepted) or DryRun (only check that it could run)",
    )
    parser.add_argument(
        "--log-tail",
        action="store_true",
        help="ask for the last 4 KB of the invocation's log (X-Amz-Log-Type: Tail) and "
        "print it to stderr",
    )
    parser.add_argument(
        "--stream",
        action="store_true",
        help="InvokeWithResponseStream: print the response as the function streams it",
    )
    parser.add_argument(
        "--endpoint",
        metavar="URL",
        help=f"a running serve's Invoke API (default: ${ENDPOINT_VARIABLE}, "
        f"else {DEFAULT_ENDPOINT})",
    )
    return parser


def main(argv: Sequence[str], environ: Mapping[str, str]) -> int:
    """Run ``lambdakit invoke ARGV``; the exit status (see the module's docstring)."""
    try:
        return _main(list(argv), environ)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def _main(argv: list[str], environ: Mapping[str, str]) -> int:
    command: list[str] = []
    if "--" in argv:
        split = argv.index("--")
        argv, command = argv[:split], argv[split:]
    try:
        own, serve_args = _split(argv)
        args = _parser().parse_args(own)
        payload = _payload(args)
        if args.stream and args.invocation_type == "Event":
            raise UsageError("--stream: InvokeWithResponseStream has no Event invocation type")
        if serve_args or command:
            return _one_shot(args, payload, serve_args + command, environ)
        url = args.endpoint or environ.get(ENDPOINT_VARIABLE) or DEFAULT_ENDPOINT
        flag = "--endpoint" if args.endpoint else ENDPOINT_VARIABLE
        try:
            endpoint = Endpoint.parse(url, flag)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    except UsageError as exc:
        fail(f"lambdakit invoke: error: {exc}")
        return EXIT_USAGE
    return _invoke(args, payload, endpoint)


#: invoke's own flags that take a value, and those that do not.
_OWN_VALUED = frozenset(("--payload", "--event", "--invocation-type", "--endpoint"))
_OWN_SWITCHES = frozenset(("--log-tail", "--stream", "-h", "--help"))


def _split(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """invoke's own arguments (its flags and NAME) apart from serve's (for the one-shot mode).

    NAME is the first argument that is neither a flag nor a flag's value; only when serve's
    flags come before it are they looked up (in serve's table) to know which take a value.
    """
    own: list[str] = []
    rest: list[str] = []
    tokens = iter(argv)
    for token in tokens:
        if token in _OWN_VALUED:
            value = next(tokens, None)
            own += [token] if value is None else [token, value]
        elif token.split("=", 1)[0] in _OWN_VALUED or token in _OWN_SWITCHES:
            own.append(token)
        else:
            rest.append(token)
    position = _first_positional(rest)
    if position is not None:
        own.append(rest.pop(position))
    return own, rest


def _first_positional(tokens: Sequence[str]) -> int | None:
    if not tokens:
        return None
    if not tokens[0].startswith("-"):
        return 0
    from lambdakit.emulator.options import OPTIONS

    no_value = {"store_const", "store_true", "store_false"}
    valued = {
        option.flag
        for option in OPTIONS
        if option.flag and option.kind.arguments().get("action") not in no_value
    }
    skip = False
    for index, token in enumerate(tokens):
        if skip:
            skip = False
        elif not token.startswith("-"):
            return index
        else:
            skip = token in valued
    return None


def _payload(args: argparse.Namespace) -> bytes:
    """The event from ``--payload``, ``--event FILE`` or stdin, checked to be JSON."""
    data: bytes
    if args.payload is not None:
        data, where = str(args.payload).encode("utf-8"), "--payload"
    elif args.event == "-":
        data, where = sys.stdin.buffer.read(), "--event - (stdin)"
    elif args.event is not None:
        try:
            data = Path(args.event).read_bytes()
        except OSError as exc:
            raise UsageError(f"--event: cannot read {args.event!r}: {exc.strerror}") from None
        where = f"--event {args.event}"
    else:
        return b"{}"
    try:
        json.loads(data)
    except ValueError as exc:
        raise UsageError(f"{where}: the event is not JSON ({exc})") from None
    return data


def _one_shot(
    args: argparse.Namespace, payload: bytes, serve_args: list[str], environ: Mapping[str, str]
) -> int:
    """Check serve's flags here (errors in our words), then invoke through an owned serve."""
    if args.endpoint:
        raise UsageError(
            f"--endpoint: cannot be combined with serve's flags ({serve_args[0]}): "
            "give either a running serve or the function to start"
        )
    if args.invocation_type == "Event":
        raise UsageError(
            "--invocation-type Event: needs a running serve (its retries and destinations "
            "outlive one invocation); start lambdakit serve and give --endpoint"
        )
    for flag in _ONE_SHOT_OWNS:
        if any(arg == flag or arg.startswith(flag + "=") for arg in serve_args):
            raise UsageError(f"{flag}: chosen by the one-shot mode (the function is NAME)")
    import os

    from lambdakit.emulator import config as cfg
    from lambdakit.emulator.serve_command import build_config

    with_config = any(
        arg == flag or arg.startswith(f"{flag}=")
        for arg in serve_args
        for flag in ("--config", "--template")
    )
    if not with_config:
        _add_serve_flags(serve_args, "--function-name", args.name)
    try:
        config, _ = build_config(serve_args, {**os.environ, **environ})
    except cfg.ConfigError as exc:
        raise UsageError(str(exc)) from None
    if args.name not in config.functions:
        names = ", ".join(sorted(config.functions))
        raise UsageError(
            f"NAME: no function named {args.name!r} in the configuration (functions: {names})"
        )
    if config.api is not None and not any(a.startswith("--api-port") for a in serve_args):
        # The routes of a template or [api] table are not what is invoked: a free port, so a
        # one-shot never collides with a serve already running on 3000.
        _add_serve_flags(serve_args, "--api-port", "0")
    if any(f.url_port is not None for f in config.functions.values()):
        # Function URLs are not what is invoked, and their fixed ports may be a running serve's.
        _add_serve_flags(serve_args, "--no-urls")
    if not any(arg.startswith("--log-level") for arg in serve_args):
        serve_args[:0] = ["--log-level", "warning"]
    from lambdakit.one_shot import ServeFailed, owned_serve

    with owned_serve(serve_args, {**os.environ, **environ}) as serve:
        try:
            url = serve.wait_listening()
        except ServeFailed as exc:
            fail(f"lambdakit invoke: error: {exc}")
            return EXIT_NO_SERVICE
        timeout = config.functions[args.name].timeout + REPORT_MARGIN

        def then(reply: Reply) -> None:
            if reply.request_id and reply.status != 204:
                serve.wait_report(reply.request_id, timeout)

        return _invoke(args, payload, Endpoint.parse(url), then)


def _add_serve_flags(serve_args: list[str], *flags: str) -> None:
    """Put ``flags`` among serve's own, before any ``-- COMMAND``."""
    split = serve_args.index("--") if "--" in serve_args else len(serve_args)
    serve_args[split:split] = flags


def _invoke(
    args: argparse.Namespace,
    payload: bytes,
    endpoint: Endpoint,
    then: Callable[[Reply], None] | None = None,
) -> int:
    """Invoke, print, and say what happened; ``then`` (the one-shot mode's) sees the reply
    before it is printed."""
    out = sys.stdout.buffer
    last = [b""]

    def write_chunk(chunk: bytes) -> None:
        out.write(chunk)
        out.flush()
        last[0] = chunk or last[0]

    try:
        if args.stream:
            reply = invoke_stream(endpoint, args.name, payload, write_chunk, args.log_tail)
        else:
            reply = invoke(endpoint, args.name, payload, args.invocation_type, args.log_tail)
    except Unreachable as exc:
        fail(f"lambdakit invoke: error: {exc}")
        if then is None:
            fail(
                "lambdakit invoke: start `lambdakit serve` there, give --endpoint URL, or run "
                "the function once without a server: add --config lambdakit.toml, --template "
                "template.yaml or serve's function flags (see lambdakit invoke --help)"
            )
        return EXIT_NO_SERVICE
    except ServiceError as exc:
        fail(f"lambdakit invoke: error: {exc}")
        return EXIT_SERVICE_ERROR
    if then is not None:
        then(reply)
    if reply.log_tail:
        sys.stderr.write(_for_terminal(reply.log_tail))
        sys.stderr.flush()
    if reply.payload:
        out.write(reply.payload)
        last[0] = reply.payload
    if last[0] and not last[0].endswith(b"\n") and sys.stdout.isatty():
        out.write(b"\n")
    out.flush()
    if reply.status == 202:
        fail(f"lambdakit invoke: accepted (Event), request id {reply.request_id}")
    elif reply.status == 204:
        fail(f"lambdakit invoke: DryRun: {args.name} may be invoked")
    if reply.function_error:
        fail(f"lambdakit invoke: function error ({reply.function_error}){_summary(reply)}")
        return EXIT_FUNCTION_ERROR
    return EXIT_OK


def _summary(reply: Reply) -> str:
    """``: errorType: errorMessage`` of the error JSON (or the stream's ErrorDetails)."""
    if reply.error_details:
        return f": {reply.error_details}"
    try:
        error = json.loads(reply.payload)
    except ValueError:
        return ""
    if not isinstance(error, dict) or "errorType" not in error:
        return ""
    return f": {error.get('errorType')}: {error.get('errorMessage', '')}"


def _for_terminal(tail: str) -> str:
    """The log tail as terminal lines: Lambda's ``\\r`` within a record becomes a new line."""
    text = tail.replace("\r", "\n  ")
    return text if text.endswith("\n") else text + "\n"
