"""What watching costs: ``lambdakit serve`` with and without its metrics and live view.

Run: ``python -m bench.observe_cost [--quick]``. Writes bench/results/observe_cost.json and .md.

Three servers, the same minimal runtime (bench/minimal_runtime.py), sequential warm invocations
over one keep-alive connection, in rounds that rotate their order:

- ``off``: ``--no-observe``, nothing subscribes to the activity stream;
- ``on``: the default, ``/metrics`` aggregating every invocation (what every user runs);
- ``watched``: the default with a live view connected (an event-stream client reading
  ``/_lambdakit/events``, so that output lines are published too).

Reported: p50 and server CPU per invocation of each, and the ratios to ``off`` (issue #12's
goal: under 3% of p50).
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import load
from bench.machine import machine_info
from bench.procs import cpu_seconds, interrupt_on_signals
from bench.report import exit_with, met, num, write_results
from bench.servers import Server, start_serve

DESCRIPTION = "lambdakit serve with and without its metrics and live view, side by side."
RESULTS_DIR = Path(__file__).resolve().parent / "results"
KEYS = ("off", "on", "watched")
GOAL = 1.03


@dataclass(frozen=True)
class Plan:
    warmup: int = 500
    rounds: int = 9
    per_round: int = 2000

    @classmethod
    def quick(cls) -> Plan:
        return cls(warmup=100, rounds=3, per_round=400)


class _Watcher:
    """A live view: reads ``/_lambdakit/events`` on a thread until closed."""

    def __init__(self, port: int) -> None:
        self._connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self._connection.request("GET", "/_lambdakit/events")
        self._response = self._connection.getresponse()
        if self._response.status != 200:
            raise RuntimeError(f"/_lambdakit/events answered {self._response.status}")
        self.received = 0
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            while chunk := self._response.read1(65536):
                self.received += len(chunk)
        except (OSError, http.client.HTTPException, ValueError, AttributeError):
            pass  # closed by close() (http.client drops its file then: AttributeError)

    def close(self) -> None:
        self._connection.close()
        self._thread.join(5)


@contextmanager
def _servers() -> Iterator[dict[str, Server]]:
    servers: dict[str, Server] = {}
    try:
        servers["off"] = start_serve(0, "serve --no-observe", 1, ["--no-observe"])
        servers["on"] = start_serve(0, "serve", 1)
        servers["watched"] = start_serve(0, "serve, watched", 1)
        yield servers
    finally:
        for server in servers.values():
            server.stop()


def run(plan: Plan) -> dict[str, Any]:
    rows: dict[str, list[tuple[float, float]]] = {key: [] for key in KEYS}
    with _servers() as servers:
        for server in servers.values():
            load.sequential(server.port, server.invoke_path, plan.warmup, 60)
        watcher = _Watcher(servers["watched"].port)
        try:
            for rnd in range(plan.rounds):
                shift = rnd % len(KEYS)
                for key in (*KEYS[shift:], *KEYS[:shift]):
                    server = servers[key]
                    before = cpu_seconds(server.pid)
                    result = load.sequential(server.port, server.invoke_path, plan.per_round, 60)
                    cpu = (cpu_seconds(server.pid) - before) / max(len(result.latencies_ns), 1)
                    latencies = sorted(result.latencies_ns)
                    p50 = load.percentile(latencies, 50) / 1e6
                    rows[key].append((p50, cpu * 1e6))
                    print(f"[{key}] round {rnd + 1}: p50 {p50:.3f} ms", file=sys.stderr)
        finally:
            watcher.close()
        streamed = watcher.received
    figures: dict[str, dict[str, Any]] = {
        key: {
            "p50_ms": statistics.median(p for p, _ in rows[key]),
            "server_cpu_us_per_invoke": statistics.median(c for _, c in rows[key]),
            "rounds": rows[key],
        }
        for key in KEYS
    }
    off = figures["off"]
    for key in KEYS:
        figures[key]["p50_ratio"] = figures[key]["p50_ms"] / off["p50_ms"]
        figures[key]["cpu_ratio"] = (
            figures[key]["server_cpu_us_per_invoke"] / off["server_cpu_us_per_invoke"]
        )
    return {
        "machine": machine_info(),
        "plan": plan.__dict__,
        "figures": figures,
        "live_view_bytes": streamed,
    }


def render_markdown(results: dict[str, Any]) -> str:
    figures = results["figures"]
    lines = [
        "| | `--no-observe` | default (`/metrics`) | default, a live view open | goal | met |",
        "|---|---:|---:|---:|---|---|",
    ]
    p50 = [num(figures[k]["p50_ms"], ".3f") for k in KEYS]
    ratio = [f"{figures[k]['p50_ratio']:.3f}x" for k in KEYS]
    cpu = [num(figures[k]["server_cpu_us_per_invoke"], ".0f") for k in KEYS]
    cpu_ratio = [f"{figures[k]['cpu_ratio']:.3f}x" for k in KEYS]
    lines.append(f"| warm p50, ms | {' | '.join(p50)} | | |")
    ok = figures["on"]["p50_ratio"] <= GOAL
    lines.append(
        f"| p50 / `--no-observe` | {' | '.join(ratio)} | <= {GOAL}x (default) | {met(ok)} |"
    )
    lines.append(f"| server CPU per invoke, µs | {' | '.join(cpu)} | | |")
    lines.append(f"| server CPU / `--no-observe` | {' | '.join(cpu_ratio)} | | |")
    machine = results["machine"]
    plan = results["plan"]
    lines += [
        "",
        f"- Measured {machine['date']} on {machine['nproc']} CPUs, Python {machine['python']}, "
        f"lambdakit {machine.get('lambdakit_version')} ({machine.get('git_commit')}).",
        f"- {plan['rounds']} rounds of {plan['per_round']} sequential warm invocations per "
        "server over one keep-alive connection, the order rotating; medians over rounds. The "
        "live view's client read "
        f"{results['live_view_bytes']} bytes of events meanwhile.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.observe_cost", description=DESCRIPTION)
    parser.add_argument("--quick", action="store_true", help="fewer, shorter rounds")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="directory for the results")
    args = parser.parse_args(argv)
    interrupt_on_signals()
    results = run(Plan.quick() if args.quick else Plan())
    write_results(args.out, "observe_cost", results, render_markdown(results))
    return 0


if __name__ == "__main__":
    exit_with(main)
