"""A long soak of ``lambdakit serve``: do its memory, file descriptors and tail latency stay flat?

Run: ``python -m bench.soak [--count N] [--windows W]`` (on demand: not part of ``bench.run``
nor of ``make test``). Writes bench/results/soak.json and soak.md.

One ``lambdakit serve`` (``--concurrency 1``, otherwise its defaults) runs the minimal runtime
(bench/minimal_runtime.py); one client sends ``--count`` sequential warm invocations (default
1,000,000) over one keep-alive connection (bench/load.py's ``Invoker``, which checks every answer:
200, no function error, the event echoed back). The run is cut into ``--windows`` equal windows;
at the end of each the harness samples serve's VmRSS, its open file descriptors
(``/proc/PID/fd``) and threads, the summed VmRSS of serve's descendants (the runtime), and the
window's p50, p99 and max latency and invokes/s.

Each window also records how many CPUs other processes kept busy meanwhile (all CPUs' busy
time from /proc/stat, less this harness, serve and its runtime): on a shared 2-CPU machine a
window's p99 moves with what else runs.

"Flat" compares the end of the run with its start (after a warm-up, which is not measured):
serve's RSS and fd count in the last window against the first (RSS may grow by at most
``RSS_GROWTH_MB``, fds by at most ``FD_GROWTH``), and the median p99 of late windows against
that of early ones (at most ``P99_RATIO`` times). Early and late are the first and last quarter
of the windows; when each half of the run has windows that other processes left quiet (under
``BUSY_CPUS``), the earlier half of the first half's quiet windows and the later half of the
second half's are compared instead, so that the verdict is about serve, not the neighbours.
A drift is also visible in the per-window table.
"""

from __future__ import annotations

import argparse
import http.client
import os
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench import load
from bench.machine import machine_info
from bench.procs import (
    cpu_seconds,
    descendants,
    interrupt_on_signals,
    machine_busy_seconds,
    own_cpu_seconds,
    rss_mb,
    thread_count,
)
from bench.report import exit_with, met, num, write_results
from bench.servers import start_serve

DESCRIPTION = "Soak lambdakit serve with warm invocations; sample RSS, fds and p99 per window."
RESULTS_DIR = Path(__file__).resolve().parent / "results"
DEFAULT_COUNT = 1_000_000
DEFAULT_WINDOWS = 20
WARMUP = 2_000
#: Flatness thresholds, last window against the first.
RSS_GROWTH_MB = 5.0
FD_GROWTH = 2
P99_RATIO = 1.5
#: Other processes' load (CPUs) above which a window is "busy" (as the other benchmarks flag).
BUSY_CPUS = 0.3
#: A window whose invocations fail this often stops the run (serve is broken, not soaking).
MAX_ERRORS = 10


@dataclass(frozen=True)
class Window:
    index: int
    invocations: int
    errors: int
    seconds: float
    invokes_per_s: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    serve_rss_mb: float
    serve_fds: int
    serve_threads: int
    runtime_rss_mb: float
    serve_cpu_s: float
    #: CPUs other processes kept busy meanwhile (not this harness, serve nor its runtime).
    others_cpus: float


def fd_count(pid: int) -> int:
    """Open file descriptors of the process."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def _descendants_cpu_s(pid: int) -> float:
    total = 0.0
    for child, _start in descendants(pid):
        try:
            total += cpu_seconds(child)
        except ProcessLookupError:
            continue
    return total


def _descendants_rss_mb(pid: int) -> float:
    total = 0.0
    for child, _start in descendants(pid):
        try:
            total += rss_mb(child)
        except (OSError, ProcessLookupError):
            continue  # gone meanwhile
    return total


def _event(i: int) -> bytes:
    return b'{"n": %d, "soak": "lambdakit"}' % i


def _window(
    inv: load.Invoker, index: int, first: int, size: int, pid: int, errors_left: int
) -> tuple[Window, load.Invoker, list[str]]:
    latencies: list[int] = []
    errors: list[str] = []
    clock = time.perf_counter_ns
    cpu_before = cpu_seconds(pid)
    ours_before = own_cpu_seconds() + _descendants_cpu_s(pid)
    busy_before = machine_busy_seconds()
    start = time.perf_counter()
    for i in range(first, first + size):
        t0 = clock()
        try:
            inv.invoke(_event(i))
        except (OSError, http.client.HTTPException, load.InvokeError) as exc:
            errors.append(f"invocation {i}: {type(exc).__name__}: {exc}")
            inv.close()
            inv = load.Invoker(inv.conn.port, inv.path)
            if len(errors) >= errors_left:
                break
            continue
        latencies.append(clock() - t0)
    seconds = time.perf_counter() - start
    serve_cpu = cpu_seconds(pid) - cpu_before
    ours = own_cpu_seconds() + _descendants_cpu_s(pid) - ours_before + serve_cpu
    others = max(0.0, machine_busy_seconds() - busy_before - ours) / seconds
    latencies.sort()
    window = Window(
        index=index,
        invocations=len(latencies),
        errors=len(errors),
        seconds=seconds,
        invokes_per_s=len(latencies) / seconds if seconds > 0 else 0.0,
        p50_ms=load.percentile(latencies, 50) / 1e6,
        p99_ms=load.percentile(latencies, 99) / 1e6,
        max_ms=(latencies[-1] / 1e6) if latencies else float("nan"),
        serve_rss_mb=rss_mb(pid),
        serve_fds=fd_count(pid),
        serve_threads=thread_count(pid),
        runtime_rss_mb=_descendants_rss_mb(pid),
        serve_cpu_s=serve_cpu,
        others_cpus=others,
    )
    return window, inv, errors


def run(count: int, windows: int, serve_args: list[str]) -> dict[str, Any]:
    size = max(1, count // windows)
    server = start_serve(0, "serve (soak)", 1, serve_args)
    rows: list[Window] = []
    error_samples: list[str] = []
    started = time.time()
    try:
        warm = load.sequential(server.port, server.invoke_path, WARMUP, 120)
        if warm.errors:
            raise RuntimeError(f"warm-up failed: {warm.errors}")
        inv = load.Invoker(server.port, server.invoke_path)
        try:
            for index in range(windows):
                left = MAX_ERRORS - sum(w.errors for w in rows)
                window, inv, errors = _window(inv, index, index * size, size, server.pid, left)
                rows.append(window)
                error_samples += errors[: max(0, 10 - len(error_samples))]
                print(
                    f"[soak] window {index + 1}/{windows}: {window.invocations} ok, "
                    f"p99 {window.p99_ms:.3f} ms, serve RSS {window.serve_rss_mb:.1f} MiB, "
                    f"{window.serve_fds} fds, {window.invokes_per_s:.0f}/s",
                    file=sys.stderr,
                    flush=True,
                )
                if sum(w.errors for w in rows) >= MAX_ERRORS:
                    break
        finally:
            inv.close()
        serve_alive = server.process.alive()
    finally:
        server.stop()
    first, last = rows[0], rows[-1]
    quarter = max(1, len(rows) // 4)
    early, late = rows[:quarter], rows[-quarter:]
    quiet_early = [w for w in rows[: len(rows) // 2] if w.others_cpus <= BUSY_CPUS]
    quiet_late = [w for w in rows[len(rows) // 2 :] if w.others_cpus <= BUSY_CPUS]
    quiet = bool(quiet_early and quiet_late)
    if quiet:  # windows where other processes left the CPUs alone, from each half
        early, late = (
            quiet_early[: max(1, len(quiet_early) // 2)],
            quiet_late[-max(1, len(quiet_late) // 2) :],
        )
    early_p99 = statistics.median(w.p99_ms for w in early)
    late_p99 = statistics.median(w.p99_ms for w in late)
    rss_growth = last.serve_rss_mb - first.serve_rss_mb
    fd_growth = last.serve_fds - first.serve_fds
    p99_ratio = late_p99 / early_p99 if early_p99 > 0 else float("nan")
    flat: dict[str, Any] = {
        "p99_windows": [[w.index + 1 for w in early], [w.index + 1 for w in late]],
        "p99_quiet_windows_only": quiet,
        "rss_growth_mb": rss_growth,
        "fd_growth": fd_growth,
        "early_p99_ms": early_p99,
        "late_p99_ms": late_p99,
        "p99_ratio": p99_ratio,
        "runtime_rss_growth_mb": last.runtime_rss_mb - first.runtime_rss_mb,
    }
    flat["rss_flat"] = rss_growth <= RSS_GROWTH_MB
    flat["fds_flat"] = fd_growth <= FD_GROWTH
    flat["p99_flat"] = p99_ratio <= P99_RATIO
    return {
        "machine": machine_info(),
        "plan": {
            "count": count,
            "windows": windows,
            "window_size": size,
            "warmup": WARMUP,
            "serve_args": serve_args,
        },
        "invocations": sum(w.invocations for w in rows),
        "errors": sum(w.errors for w in rows),
        "error_samples": error_samples,
        "serve_alive_at_end": serve_alive,
        "wall_s": time.time() - started,
        "windows": [asdict(w) for w in rows],
        "flat": flat,
        "thresholds": {
            "rss_growth_mb": RSS_GROWTH_MB,
            "fd_growth": FD_GROWTH,
            "p99_ratio": P99_RATIO,
        },
    }


def _windows(indexes: list[int]) -> str:
    return ", ".join(str(i) for i in indexes)


def render_markdown(results: dict[str, Any]) -> str:
    flat = results["flat"]
    plan = results["plan"]
    machine = results["machine"]
    lines = [
        "| window | invocations | errors | invokes/s | p50 ms | p99 ms | max ms | serve RSS MiB "
        "| serve fds | serve threads | runtime RSS MiB | serve CPU µs/invoke "
        "| other load, CPUs |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for w in results["windows"]:
        cpu_us = w["serve_cpu_s"] / w["invocations"] * 1e6 if w["invocations"] else float("nan")
        lines.append(
            f"| {w['index'] + 1} | {w['invocations']} | {w['errors']} "
            f"| {num(w['invokes_per_s'], '.0f')} | {num(w['p50_ms'], '.3f')} "
            f"| {num(w['p99_ms'], '.3f')} | {num(w['max_ms'], '.1f')} "
            f"| {num(w['serve_rss_mb'], '.1f')} | {w['serve_fds']} | {w['serve_threads']} "
            f"| {num(w['runtime_rss_mb'], '.1f')} | {num(cpu_us, '.0f')} "
            f"| {num(w['others_cpus'], '.2f')} |"
        )
    thresholds = results["thresholds"]
    lines += [
        "",
        "| end of the run against its start | figure | flat if | flat |",
        "|---|---:|---|---|",
        f"| serve RSS growth (last window - first), MiB | {flat['rss_growth_mb']:+.1f} "
        f"| <= {thresholds['rss_growth_mb']} | {met(flat['rss_flat'])} |",
        f"| serve fd growth | {flat['fd_growth']:+d} | <= {thresholds['fd_growth']} "
        f"| {met(flat['fds_flat'])} |",
        f"| p99, median of late windows / early ones "
        f"({flat['late_p99_ms']:.3f} / {flat['early_p99_ms']:.3f} ms; windows "
        f"{_windows(flat['p99_windows'][1])} / {_windows(flat['p99_windows'][0])}"
        + (", quiet ones" if flat["p99_quiet_windows_only"] else ", busy machine")
        + ") "
        f"| {flat['p99_ratio']:.2f}x | <= {thresholds['p99_ratio']}x "
        f"| {met(flat['p99_flat'])} |",
        f"| runtime RSS growth, MiB | {flat['runtime_rss_growth_mb']:+.1f} | | |",
        "",
        f"- Measured {machine['date']} on {machine['nproc']} CPUs, Python {machine['python']}, "
        f"lambdakit {machine.get('lambdakit_version')} ({machine.get('git_commit')}).",
        f"- {results['invocations']} sequential warm invocations ({plan['count']} planned, "
        f"{plan['windows']} windows of {plan['window_size']}) after {plan['warmup']} of warm-up, "
        "one keep-alive connection, `serve --concurrency 1"
        + "".join(f" {a}" for a in plan["serve_args"])
        + "` with bench/minimal_runtime.py; every answer checked (200, the event echoed). "
        f"{results['errors']} failed; serve "
        + ("still running" if results["serve_alive_at_end"] else "**had exited**")
        + f" at the end. Wall time {results['wall_s'] / 60:.1f} min.",
        "",
    ]
    if results["error_samples"]:
        lines += ["Errors:", "", *(f"- `{e}`" for e in results["error_samples"]), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=DESCRIPTION)
    parser.add_argument(
        "--count",
        type=int,
        default=DEFAULT_COUNT,
        help=f"warm invocations to send (default {DEFAULT_COUNT:,})",
    )
    parser.add_argument(
        "--windows",
        type=int,
        default=DEFAULT_WINDOWS,
        help=f"sampling windows the run is cut into (default {DEFAULT_WINDOWS})",
    )
    parser.add_argument(
        "--serve-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="an extra option for lambdakit serve (repeatable), e.g. --serve-arg=--no-freeze",
    )
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="directory for the results")
    args = parser.parse_args(argv)
    if args.count < 1:
        parser.error("--count must be at least 1")
    if not 1 <= args.windows <= args.count:
        parser.error("--windows must be between 1 and --count")
    interrupt_on_signals()
    results = run(args.count, args.windows, args.serve_arg)
    write_results(args.out, "soak", results, render_markdown(results))
    flat = results["flat"]
    ok = results["errors"] == 0 and flat["rss_flat"] and flat["fds_flat"] and flat["p99_flat"]
    return 0 if ok else 1


if __name__ == "__main__":
    exit_with(main)
