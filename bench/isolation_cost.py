"""What isolation costs: ``lambdakit serve`` with and without its per-connection peer check.

Run: ``python -m bench.isolation_cost [--quick]``. Writes bench/results/isolation_cost.json and .md.

Each environment's Runtime API admits a connection only from the environment's own processes
(docs/isolation.md): once per accepted connection, serve asks the kernel for the socket at the
other end (netlink ``sock_diag``) and compares its cgroup with the environment's. Six servers,
the same minimal runtime (bench/minimal_runtime.py), sequential warm invocations over one
keep-alive client connection, in rounds that rotate their order within each pair:

- ``keep-alive``: the runtime keeps one connection, as lambdakit's runtime, awslambdaric and
  AWS's runtime clients do: the check runs once per environment;
  ``off`` is ``--no-isolation``, ``on`` the default, and a second ``off`` shows how far two
  identical serves differ on this machine (the check is not on this path at all);
- ``churn``: the runtime opens a new connection for every call (``GET next`` and ``POST
  response``: two per invocation), as a bash+curl runtime does: the check runs twice per
  invocation; ``off``, ``on``, and ``on, --no-cgroups`` (no cgroup id to compare: the socket's
  inode is looked for among the environment's processes' file descriptors).

Reported: p50 and serve's CPU per invocation (utime+stime of the serve process, the runtime
excluded), the ratios to ``off``; and, in this process, the cost of one lookup of the peer
socket and of the file-descriptor scan.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import load
from bench.machine import machine_info
from bench.procs import cpu_seconds, interrupt_on_signals
from bench.report import exit_with, num, write_results
from bench.servers import Server, start_serve
from lambdakit.emulator.peer import SocketDiag, held_by

DESCRIPTION = "lambdakit serve with and without the Runtime API's peer check, side by side."
RESULTS_DIR = Path(__file__).resolve().parent / "results"
#: (scenario, setting) -> serve's extra options, and whether the runtime churns connections.
CONFIGS: dict[tuple[str, str], tuple[tuple[str, ...], bool]] = {
    ("keep-alive", "off"): (("--no-isolation",), False),
    ("keep-alive", "on"): ((), False),
    ("keep-alive", "off, a second serve"): (("--no-isolation",), False),
    ("churn", "off"): (("--no-isolation",), True),
    ("churn", "on"): ((), True),
    ("churn", "on, --no-cgroups"): (("--no-cgroups",), True),
}


@dataclass(frozen=True)
class Plan:
    warmup: int = 500
    rounds: int = 7
    per_round: int = 2000
    lookups: int = 20000

    @classmethod
    def quick(cls) -> Plan:
        return cls(warmup=100, rounds=3, per_round=300, lookups=2000)


def _key(config: tuple[str, str]) -> str:
    return f"{config[0]} / {config[1]}"


@contextmanager
def _servers() -> Iterator[dict[tuple[str, str], Server]]:
    servers: dict[tuple[str, str], Server] = {}
    try:
        for config, (extra, churn) in CONFIGS.items():
            options = ["--no-freeze", "--env", f"BENCH_CONNECTION_PER_REQUEST={int(churn)}"]
            servers[config] = start_serve(0, f"serve {_key(config)}", 1, [*options, *extra])
        yield servers
    finally:
        for server in servers.values():
            server.stop()


def _lookup_costs(count: int) -> dict[str, float]:
    """Microseconds per sock_diag lookup and per file-descriptor scan of this process."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        with socket.create_connection(listener.getsockname()) as client:
            accepted, remote = listener.accept()
            with accepted:
                local = listener.getsockname()
                diag = SocketDiag()
                try:
                    start = time.perf_counter()
                    for _ in range(count):
                        peer = diag.peer_of(local, remote)
                    lookup = (time.perf_counter() - start) / count * 1e6
                finally:
                    diag.close()
                assert peer is not None and peer.inode == os.fstat(client.fileno()).st_ino
                scans = max(count // 20, 10)
                start = time.perf_counter()
                for _ in range(scans):
                    held_by(peer.inode, [os.getpid()])
                scan = (time.perf_counter() - start) / scans * 1e6
                fds = len(os.listdir("/proc/self/fd"))
    return {"sock_diag_us": lookup, "fd_scan_us": scan, "fds_scanned": fds}


def run(plan: Plan) -> dict[str, Any]:
    rows: dict[tuple[str, str], list[tuple[float, float]]] = {c: [] for c in CONFIGS}
    scenarios = sorted({scenario for scenario, _ in CONFIGS}, reverse=True)
    with _servers() as servers:
        for server in servers.values():
            load.sequential(server.port, server.invoke_path, plan.warmup, 60)
        for rnd in range(plan.rounds):
            for scenario in scenarios:
                configs = [c for c in CONFIGS if c[0] == scenario]
                shift = rnd % len(configs)
                for config in (*configs[shift:], *configs[:shift]):
                    server = servers[config]
                    before = cpu_seconds(server.pid)
                    result = load.sequential(server.port, server.invoke_path, plan.per_round, 60)
                    cpu = (cpu_seconds(server.pid) - before) / max(len(result.latencies_ns), 1)
                    p50 = load.percentile(sorted(result.latencies_ns), 50) / 1e6
                    rows[config].append((p50, cpu * 1e6))
                    print(f"[{_key(config)}] round {rnd + 1}: p50 {p50:.3f} ms", file=sys.stderr)
    figures: dict[str, dict[str, Any]] = {}
    for config in CONFIGS:
        off = (config[0], "off")
        p50 = statistics.median(p for p, _ in rows[config])
        cpu = statistics.median(c for _, c in rows[config])
        figures[_key(config)] = {
            "scenario": config[0],
            "setting": config[1],
            "p50_ms": p50,
            "server_cpu_us_per_invoke": cpu,
            "p50_ratio": p50 / statistics.median(p for p, _ in rows[off]),
            "cpu_ratio": cpu / statistics.median(c for _, c in rows[off]),
            "rounds": rows[config],
        }
    return {
        "machine": machine_info(),
        "plan": plan.__dict__,
        "figures": figures,
        "lookups": _lookup_costs(plan.lookups),
    }


def render_markdown(results: dict[str, Any]) -> str:
    lines = [
        "| runtime's connections | isolation | warm p50, ms | p50 / off | serve CPU per invoke, µs "
        "| CPU / off |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for row in results["figures"].values():
        lines.append(
            f"| {row['scenario']} | {row['setting']} | {num(row['p50_ms'], '.3f')} | "
            f"{row['p50_ratio']:.3f}x | {num(row['server_cpu_us_per_invoke'], '.0f')} | "
            f"{row['cpu_ratio']:.3f}x |"
        )
    machine, plan, lookups = results["machine"], results["plan"], results["lookups"]
    lines += [
        "",
        f"- One peer lookup (`sock_diag`, in this process): "
        f"{lookups['sock_diag_us']:.1f} µs; one scan of a process's file descriptors "
        f"({lookups['fds_scanned']} of them, the fallback without cgroups): "
        f"{lookups['fd_scan_us']:.1f} µs.",
        f"- Measured {machine['date']} on {machine['nproc']} CPUs, Python {machine['python']}, "
        f"lambdakit {machine.get('lambdakit_version')} ({machine.get('git_commit')}).",
        f"- {plan['rounds']} rounds of {plan['per_round']} sequential warm invocations per "
        "server over one keep-alive client connection, `--concurrency 1 --no-freeze`, the order "
        "rotating within each scenario; medians over rounds. keep-alive: the runtime keeps one "
        "connection (one check per environment); churn: a new connection for each `GET next` "
        "and each `POST response` (two checks per invocation).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.isolation_cost", description=DESCRIPTION)
    parser.add_argument("--quick", action="store_true", help="fewer, shorter rounds")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="directory for the results")
    args = parser.parse_args(argv)
    interrupt_on_signals()
    results = run(Plan.quick() if args.quick else Plan())
    write_results(args.out, "isolation_cost", results, render_markdown(results))
    return 0


if __name__ == "__main__":
    exit_with(main)
