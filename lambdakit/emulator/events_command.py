"""``lambdakit events``: the Event invocations a service has stored and not finished."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from lambdakit.command_support import EXIT_USAGE, Parser, UsageError, fail
from lambdakit.emulator.options import DEFAULTS


def main(argv: Sequence[str], environ: Mapping[str, str]) -> int:
    """List the stored Event invocations that are not done (pending, running, failed)."""
    import json
    import sqlite3

    from lambdakit.emulator.event_store import DATABASE, EventStore

    parser = Parser(
        prog="lambdakit events",
        description="List the Event (asynchronous) invocations that "
        "lambdakit serve has accepted and not yet run (pending, running) or given "
        "up on (failed). (lambdakit event, without an s, prints sample events of AWS "
        "sources.)",
    )
    default_dir = DEFAULTS["state_dir"]  # serve's, from the one table of its settings
    parser.add_argument(
        "--state-dir",
        default=default_dir,
        metavar="DIR",
        help=f"serve's --state-dir (default: {default_dir})",
    )
    parser.add_argument(
        "--state",
        choices=("pending", "running", "failed"),
        action="append",
        help="only these states (repeatable; default: all three)",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        fail(f"lambdakit events: error: {exc}")
        return EXIT_USAGE
    state_dir = Path(args.state_dir)
    if not (state_dir / DATABASE).exists():
        fail(f"lambdakit events: error: --state-dir: no {DATABASE} in {str(state_dir)!r}")
        return EXIT_USAGE
    try:
        store = EventStore(state_dir, read_only=True)
        events = store.listing(tuple(args.state or ("pending", "running", "failed")))
        store.close()
    except sqlite3.Error as exc:
        fail(f"lambdakit events: error: cannot read {state_dir / DATABASE}: {exc}")
        return 1
    out = sys.stdout
    if args.json:
        for event in events:
            out.write(
                json.dumps(
                    {
                        "requestId": event.request_id,
                        "function": event.function,
                        "state": event.state,
                        "attempts": event.attempts,
                        "acceptedAt": event.accepted_at,
                        "dueAt": event.due_at,
                        "condition": event.condition,
                        "lastError": event.last_error,
                        "payload": event.payload.decode("utf-8", "replace"),
                    }
                )
                + "\n"
            )
        return 0
    if not events:
        out.write("no pending or failed events\n")
        return 0
    out.write(f"{'REQUEST ID':36}  {'FUNCTION':16}  {'STATE':8}  TRIES  LAST ERROR\n")
    for event in events:
        error = (event.last_error or "").replace("\n", " ")[:60]
        out.write(
            f"{event.request_id:36}  {event.function[:16]:16}  {event.state:8}  "
            f"{event.attempts:5}  {error}\n"
        )
    return 0
