"""``lambdakit gateway --amqp URL``: the Invoke API in front of ``serve --amqp`` workers.

Bad flags, a bad URL or a broker that cannot be reached print one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lambdakit.command_support import EXIT_USAGE, Parser, UsageError, fail, setup_logging

if TYPE_CHECKING:
    from lambdakit.amqp.uri import BrokerAddress

_EPILOG = """\
The gateway knows no functions: it publishes each invocation to the queue named after the
function, where `lambdakit serve --amqp` workers (or Lambda Runtime API Daemons) take it.
Run as many gateways and workers as you like, on any machines that reach the broker.

examples:
  lambdakit gateway --amqp amqp://guest:guest@127.0.0.1:5672/ --port 8080
  AMQP_URI=amqp://rabbit.internal AMQP_USERNAME=lk AMQP_PASSWORD=... lambdakit gateway

Invoke with curl, boto3 (endpoint_url=http://HOST:PORT) or the AWS CLI (--endpoint-url).
See docs/scale-out.md.
"""


@dataclass(frozen=True)
class GatewayConfig:
    """Everything ``lambdakit gateway`` reads from its flags and environment."""

    address: BrokerAddress
    host: str
    port: int
    reply_timeout: float
    region: str
    account_id: str
    shutdown_timeout: float

    def function_arn(self, name: str) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account_id}:function:{name}"


def _parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="lambdakit gateway",
        description="A stateless Invoke API that runs invocations on serve --amqp workers.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add(
        "--amqp",
        metavar="URL",
        help="the broker (env AMQP_URI; AMQP_USERNAME/AMQP_PASSWORD fill in missing "
        "credentials; query: connection_attempts, retry_delay, heartbeat)",
    )
    add("--host", default="127.0.0.1", help="address of the Invoke API (default: 127.0.0.1)")
    add("--port", default="8080", help="port of the Invoke API; 0 picks a free one (default: 8080)")
    add(
        "--reply-timeout",
        metavar="SECONDS",
        default="960",
        help="longest wait for a worker's reply (default: 960, Lambda's 900 s limit plus queueing)",
    )
    add("--region", default="us-east-1", help="region in function ARNs (default: us-east-1)")
    add("--account-id", default="123456789012", help="account in function ARNs")
    add(
        "--shutdown-timeout",
        metavar="SECONDS",
        default="10",
        help="on SIGTERM, how long callers still waiting get to receive their reply (default: 10)",
    )
    add(
        "--log-level",
        default="info",
        choices=("debug", "info", "warning", "error"),
        help="diagnostics on stderr (default: info)",
    )
    return parser


def build_config(argv: Sequence[str], environ: Mapping[str, str]) -> tuple[GatewayConfig, str]:
    """Parse the flags; raises UsageError or BrokerUrlError naming the flag at fault."""
    import re

    from lambdakit.amqp.uri import BrokerUrlError, broker_address

    args = _parser().parse_args(list(argv))
    address = broker_address(args.amqp, environ)
    if address is None:
        raise BrokerUrlError("--amqp: give the broker URL (or set AMQP_URI)")
    if not re.fullmatch(r"\d{12}", args.account_id):
        raise UsageError(f"--account-id: {args.account_id!r} is not a 12-digit AWS account id")
    return (
        GatewayConfig(
            address=address,
            host=args.host,
            port=int(_number("--port", args.port, 0, 65535)),
            reply_timeout=_number("--reply-timeout", args.reply_timeout, 0.1, 86_400),
            region=args.region,
            account_id=args.account_id,
            shutdown_timeout=_number("--shutdown-timeout", args.shutdown_timeout, 0, 3600),
        ),
        args.log_level,
    )


def _number(flag: str, raw: str, low: float, high: float) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise UsageError(f"{flag}: expected a number, got {raw!r}") from None
    if not low <= value <= high:
        raise UsageError(f"{flag}: {raw} is out of range ({low:g} to {high:g})")
    return value


def main(argv: Sequence[str], environ: Mapping[str, str]) -> int:
    """Run ``lambdakit gateway ARGV``; the exit status."""
    from lambdakit.amqp.uri import BrokerUnavailable, BrokerUrlError

    try:
        config, level = build_config(argv, environ)
    except (UsageError, BrokerUrlError) as exc:
        fail(f"lambdakit gateway: error: {exc}")
        return EXIT_USAGE
    setup_logging(level)
    from lambdakit.undumpable import make_undumpable

    if config.address.password:
        make_undumpable()
    try:
        _run(_serve(config))
    except BrokerUnavailable as exc:
        fail(f"lambdakit gateway: error: --amqp: {exc}")
        return EXIT_USAGE
    except OSError as exc:
        fail(f"lambdakit gateway: error: {exc.strerror or exc}")
        return 1
    return 0


async def _serve(config: GatewayConfig) -> None:
    from lambdakit.emulator.doors.tracking import InFlight
    from lambdakit.emulator.http.server import HttpServer
    from lambdakit.emulator.service import signalled
    from lambdakit.gateway.api import Gateway
    from lambdakit.wire import limits

    in_flight = InFlight()
    gateway = Gateway(config.address, config.function_arn, in_flight, config.reply_timeout)
    await gateway.start()
    server = HttpServer(gateway, limits.MAX_SYNC_PAYLOAD)
    try:
        host, port = await server.start(config.host, config.port)
    except OSError as exc:
        await gateway.close()
        raise OSError(
            exc.errno, f"cannot listen on {config.host}:{config.port}: {exc.strerror or exc}"
        ) from None
    sys.stdout.write(
        f"lambdakit gateway: listening on http://{host}:{port} "
        f"(broker {config.address.redacted()})\n"
    )
    sys.stdout.flush()
    forced = asyncio.Event()
    await signalled(forced.set)
    # 1. Stop accepting: no new connections; new requests on open ones are refused.
    server.stop_accepting()
    in_flight.accepting = False
    # 2. Callers already waiting get their replies, within the shutdown timeout.
    draining = asyncio.ensure_future(in_flight.drained())
    force = asyncio.ensure_future(forced.wait())
    await asyncio.wait(
        (draining, force), timeout=config.shutdown_timeout, return_when=asyncio.FIRST_COMPLETED
    )
    draining.cancel()
    force.cancel()
    # 3. Disconnect: whoever still waits is told the gateway went away.
    await gateway.close()
    # 4. Let those answers leave, then close the callers' connections.
    await asyncio.sleep(0)
    server.close_connections()


def _run(main: object) -> None:
    from lambdakit.emulator.serve_command import _run as run_loop

    run_loop(main)
