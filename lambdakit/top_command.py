"""``lambdakit top``: the live view's figures in a terminal, for a machine without a browser.

It polls ``GET /_lambdakit/state`` of a running ``lambdakit serve`` (the model the live view's
page starts from, see lambdakit/emulator/live_view.py) and prints, per function, its environments
by state, its counters, the p50 and p99 of the time until the response and of the work after it
over the recent invocations, and the last few invocations.  On a terminal it redraws in place;
otherwise, and with ``--once``, it prints plain text.  Stdlib only.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import socket
import sys
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from lambdakit.command_support import EXIT_USAGE, Parser, UsageError, fail

DEFAULT_URL = "http://127.0.0.1:8080"
STATE_PATH = "/_lambdakit/state"
#: Invocations listed under each function.
RECENT = 4
_STATE_ORDER = ("starting", "busy", "after-response", "idle", "frozen", "stopping", "dead")


class TopError(Exception):
    """What went wrong, as one line (without the ``lambdakit top:`` prefix)."""


@dataclass(frozen=True, slots=True)
class Target:
    host: str
    port: int
    https: bool
    base: str
    url: str


def parse_url(url: str) -> Target:
    """``http://host[:port][/prefix]`` of a serve's Invoke API."""
    parsed = urllib.parse.urlsplit(url if "://" in url else f"http://{url}")
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise UsageError(f"--url: expected http://HOST[:PORT], got {url!r}")
    try:
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
    except ValueError as exc:
        raise UsageError(f"--url: {exc}") from None
    shown = urllib.parse.urlunsplit((parsed.scheme, parsed.netloc, parsed.path.rstrip("/"), "", ""))
    return Target(parsed.hostname, port, parsed.scheme == "https", parsed.path.rstrip("/"), shown)


def fetch_state(target: Target, timeout: float = 5.0) -> dict[str, Any]:
    """The live view's model, or :class:`TopError` saying why not."""
    kind = http.client.HTTPSConnection if target.https else http.client.HTTPConnection
    connection = kind(target.host, target.port, timeout=timeout)
    try:
        connection.request("GET", target.base + STATE_PATH, headers={"Accept": "application/json"})
        response = connection.getresponse()
        body = response.read()
    except ConnectionRefusedError:
        raise TopError(f"no lambdakit serve at {target.url} (connection refused)") from None
    except TimeoutError:
        raise TopError(f"no answer from {target.url} within {timeout:g} s") from None
    except socket.gaierror as exc:
        raise TopError(f"cannot resolve {target.host}: {exc.strerror}") from None
    except (OSError, http.client.HTTPException) as exc:
        raise TopError(
            f"cannot read {target.url}{STATE_PATH}: {exc or type(exc).__name__}"
        ) from None
    finally:
        connection.close()
    if response.status == 404:
        raise TopError(
            f"{target.url} has no live view ({STATE_PATH} answered 404): "
            "is it lambdakit serve, started without --no-observe?"
        )
    if response.status != 200:
        raise TopError(f"{target.url}{STATE_PATH} answered {response.status} {response.reason}")
    try:
        state = json.loads(body)
    except ValueError:
        raise TopError(f"{target.url}{STATE_PATH} did not answer JSON") from None
    if not isinstance(state, dict) or not isinstance(state.get("functions"), list):
        raise TopError(f"{target.url}{STATE_PATH} did not answer the live view's state")
    return state


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """The nearest-rank percentile of ``values`` (None when empty)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(math.ceil(fraction * len(ordered)), 1)
    return ordered[rank - 1]


def phases(invocation: Mapping[str, Any]) -> tuple[float | None, float | None]:
    """``(until response, after response)`` in milliseconds, None when not (yet) known."""
    started, responded, ended = (
        invocation.get("started"),
        invocation.get("responded"),
        invocation.get("ended"),
    )
    response = (responded - started) * 1000 if started and responded else None
    after = (ended - responded) * 1000 if responded and ended else None
    return response, after


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 10_000:
        return f"{value / 1000:.1f}s"
    return f"{value:.0f}ms" if value >= 100 else f"{value:.1f}ms"


def _clock(at: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(at)) + f".{int(at % 1 * 1000):03d}"


def render(state: Mapping[str, Any], url: str) -> list[str]:
    """The screen, as lines."""
    invocations: list[Mapping[str, Any]] = list(state.get("invocations") or [])
    now = float(state.get("now") or time.time())
    lines = [
        f"lambdakit top  {url}  {_clock(now)}  "
        f"({len(invocations)} recent invocations; p50/p99 over them)",
        "",
    ]
    functions: list[Mapping[str, Any]] = list(state.get("functions") or [])
    if not functions:
        lines.append("no functions")
    for function in functions:
        name = str(function.get("name", "?"))
        counters: Mapping[str, int] = function.get("counters") or {}
        by_state: dict[str, int] = {}
        for env in function.get("environments") or []:
            by_state[env.get("state", "?")] = by_state.get(env.get("state", "?"), 0) + 1
        ordered = sorted(by_state, key=lambda s: _STATE_ORDER.index(s) if s in _STATE_ORDER else 99)
        envs = ", ".join(f"{by_state[s]} {s}" for s in ordered if s != "dead") or "none"
        mine = [inv for inv in invocations if inv.get("function") == name]
        responses = [r for r, _ in map(phases, mine) if r is not None]
        afters = [a for _, a in map(phases, mine) if a is not None]
        lines.append(
            f"{name}  environments: {envs}   invocations {counters.get('invocations', 0)}"
            f"  errors {counters.get('errors', 0)}  throttles {counters.get('throttles', 0)}"
            f"  cold starts {counters.get('cold_starts', 0)}"
        )
        lines.append(
            f"  until response  p50 {_ms(percentile(responses, 0.5)):>8}"
            f"  p99 {_ms(percentile(responses, 0.99)):>8}      "
            f"after response  p50 {_ms(percentile(afters, 0.5)):>8}"
            f"  p99 {_ms(percentile(afters, 0.99)):>8}"
        )
        for inv in mine[-RECENT:][::-1]:
            response, after = phases(inv)
            cold = f"  cold {_ms(inv['init_ms'])}" if inv.get("init_ms") is not None else ""
            error = f"  {inv['error_type']}" if inv.get("error_type") else ""
            lines.append(
                f"  {_clock(float(inv.get('started') or 0))}  {str(inv.get('request_id'))[:8]}"
                f"  {inv.get('environment', ''):<14} {inv.get('status', ''):<8}"
                f"  response {_ms(response):>7}  after {_ms(after):>7}{cold}{error}"
            )
        lines.append("")
    return lines


def _draw(out: TextIO, lines: Sequence[str], tty: bool) -> None:
    if tty:  # home, each line over the old one, then clear what is left below
        out.write("\x1b[H" + "".join(f"{line}\x1b[K\n" for line in lines) + "\x1b[J")
    else:
        out.write("\n".join(lines) + "\n")
    out.flush()


def main(argv: Sequence[str], environ: Mapping[str, str]) -> int:
    parser = Parser(
        prog="lambdakit top",
        description="The live view's figures in the terminal: per function, its environments "
        "by state, invocations, errors, throttles, cold starts, p50/p99 of the time until the "
        "response and after it, and the last invocations (from GET /_lambdakit/state).",
    )
    parser.add_argument(
        "--url",
        default=environ.get("LAMBDAKIT_URL", DEFAULT_URL),
        help=f"lambdakit serve's Invoke API (default: $LAMBDAKIT_URL or {DEFAULT_URL})",
    )
    parser.add_argument(
        "--interval", type=float, default=1.0, metavar="SECONDS", help="between polls (1)"
    )
    parser.add_argument("--once", action="store_true", help="print once, as plain text, and exit")
    try:
        args = parser.parse_args(argv)
        if not args.interval > 0:
            raise UsageError("--interval: must be more than 0")
        target = parse_url(args.url)
    except UsageError as exc:
        fail(f"lambdakit top: error: {exc}")
        return EXIT_USAGE
    out = sys.stdout
    tty = not args.once and out.isatty()
    try:
        if tty:
            out.write("\x1b[?25l\x1b[2J")  # hide the cursor, clear once
        while True:
            _draw(out, render(fetch_state(target), target.url), tty)
            if args.once:
                return 0
            time.sleep(args.interval)
            if not tty:
                out.write("\n")
    except TopError as exc:
        fail(f"lambdakit top: {exc}")
        return 1
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:  # | head: nothing more to write, and nothing to flush at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())
        return 0
    finally:
        if tty:
            out.write("\x1b[?25h")
            out.flush()
