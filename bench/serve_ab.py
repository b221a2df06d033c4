"""``lambdakit serve`` at a git revision beside serve as it is now: is a change faster?

``python -m bench.serve_ab --base REV [--clients N] [--blocks N] [--seconds S | --per-block N]``
``python -m bench.serve_ab --base-python PYTHON [...]``: the same code on another interpreter
(``bench/interpreters.py``), to see what the interpreter's build is worth.

Both servers run at once, each with its own minimal runtime (``bench/minimal_runtime.py``); the
load goes to one, then the other, in blocks whose order alternates, so that drift on the machine
(other tenants, CPU frequency, the caches) falls on both alike.  Without ``--clients``, a block is
``--per-block`` sequential invocations over one keep-alive connection and the figure is their p50;
with ``--clients N``, a block is ``--seconds`` of N concurrent clients and the figure is invokes/s.
Reported: each figure and serve's CPU per invocation (every thread's ``/proc/PID/task/*/schedstat``,
in nanoseconds), as the median over blocks of the ratio now / base.

``--base HEAD`` on an unchanged tree shows the noise floor: on the shared 2-CPU VM of session 7,
two servers of the same code came out 1-2% apart over 16 blocks when nothing else ran, up to 5%
with fewer blocks or other processes about, so a change must do better than that to count.  The
full comparison with the peers is ``bench.serve_vs_rie``.
The base runs from ``git archive REV lambdakit`` on ``PYTHONPATH`` (the console script's own
directory comes first on its path, so the checkout's editable install does not win).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench import load
from bench.interpreters import interpreter_python
from bench.postrun_latency import export_revision
from bench.rie import REPO
from bench.servers import Server, start_serve

#: Two servers of the same code came out this far apart on the 2-CPU VM (see the docstring).
NOISE = 0.05


def _cpu_ns(pid: int) -> int:
    """CPU time of every thread of ``pid`` so far, in nanoseconds."""
    total = 0
    with contextlib.suppress(FileNotFoundError):
        for thread in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{thread}/schedstat") as f:
                total += int(f.read().split()[0])
    return total


def _sequential_block(server: Server, per_block: int) -> tuple[float, int]:
    """(p50 in ms, invocations) of one block of sequential invocations."""
    result = load.sequential(server.port, server.invoke_path, per_block, 120.0)
    if result.errors:
        raise SystemExit(f"{server.kind}: {result.errors[0]}")
    return statistics.median(result.latencies_ns) / 1e6, len(result.latencies_ns)


def _concurrent_block(server: Server, clients: int, seconds: float) -> tuple[float, int]:
    """(invokes/s, invocations) of one block of ``clients`` concurrent clients."""
    result = load.concurrent(server.port, server.invoke_path, clients, seconds, 10**9)
    if result.errors:
        raise SystemExit(f"{server.kind}: {result.error_samples[:1]}")
    return result.invokes_per_s, result.ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.serve_ab", description=__doc__)
    base = parser.add_mutually_exclusive_group(required=True)
    base.add_argument("--base", help="git revision to compare with, e.g. HEAD~1")
    base.add_argument(
        "--base-python",
        metavar="PYTHON",
        help="the same code on this interpreter (a venv of it is made under .cache/bench-python)",
    )
    parser.add_argument("--clients", type=int, default=0, help="concurrent clients (0: sequential)")
    parser.add_argument("--blocks", type=int, default=20, help="blocks per server (default 20)")
    parser.add_argument("--per-block", type=int, default=500, help="sequential invokes per block")
    parser.add_argument("--seconds", type=float, default=1.0, help="seconds per concurrent block")
    parser.add_argument(
        "--serve-arg", action="append", default=[], help="extra option for both serves"
    )
    args = parser.parse_args(argv)
    if args.blocks < 2 or args.per_block < 10 or args.seconds <= 0 or args.clients < 0:
        parser.error("--blocks must be at least 2, --per-block at least 10, --seconds above 0")
    block: Callable[[Server], tuple[float, int]]
    if args.clients:
        figure, higher_is_better = f"invokes/s, {args.clients} clients", True
        block = lambda server: _concurrent_block(server, args.clients, args.seconds)  # noqa: E731
    else:
        figure, higher_is_better = "sequential p50, ms", False
        block = lambda server: _sequential_block(server, args.per_block)  # noqa: E731
    with (
        tempfile.TemporaryDirectory(prefix="lambdakit-ab-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        if args.base_python:
            python = interpreter_python(args.base_python)
            base_label = f"on {args.base_python}"
            base_server = start_serve(
                0,
                "serve-base",
                8,
                args.serve_arg,
                extra_env={"PYTHONPATH": str(REPO)},
                command=[str(python), "-m", "lambdakit", "serve"],
            )
        else:
            try:
                base_tree = export_revision(args.base, Path(tmp) / "base")
            except subprocess.CalledProcessError as exc:  # git says what is wrong with it
                detail = exc.stderr.decode(errors="replace").strip() if exc.stderr else str(exc)
                raise SystemExit(f"cannot export revision {args.base!r}: {detail}") from exc
            base_label = f"at {args.base}"
            base_server = start_serve(
                0, "serve-base", 8, args.serve_arg, extra_env={"PYTHONPATH": str(base_tree)}
            )
        stack.callback(base_server.stop)
        now_server = start_serve(0, "serve-now", 8, args.serve_arg)
        stack.callback(now_server.stop)
        servers = {"base": base_server, "now": now_server}
        for server in servers.values():  # warm-up: their environments start
            block(server)
        figures: dict[str, list[float]] = {name: [] for name in servers}
        cpus: dict[str, list[float]] = {name: [] for name in servers}
        names = list(servers)
        started = time.perf_counter()
        for index in range(args.blocks):
            for name in names if index % 2 == 0 else names[::-1]:
                server = servers[name]
                before = _cpu_ns(server.pid)
                value, count = block(server)
                figures[name].append(value)
                cpus[name].append((_cpu_ns(server.pid) - before) / max(1, count) / 1e3)
    ratio = statistics.median(n / b for n, b in zip(figures["now"], figures["base"], strict=True))
    cpu = statistics.median(n / b for n, b in zip(cpus["now"], cpus["base"], strict=True))
    gain = ratio - 1 if higher_is_better else 1 - ratio
    verdict = "within the noise" if abs(gain) < NOISE else ("better" if gain > 0 else "worse")
    print(f"serve now ({sys.executable}) beside serve {base_label}, {args.blocks} blocks each")
    print(f"{'':24} {'base':>10} {'now':>10} {'now / base':>11}")
    print(
        f"{figure:24} {statistics.median(figures['base']):10.3f} "
        f"{statistics.median(figures['now']):10.3f} {ratio:10.3f}x "
        f"({verdict})"
    )
    print(
        f"{'serve CPU per invoke, µs':24} {statistics.median(cpus['base']):10.1f} "
        f"{statistics.median(cpus['now']):10.1f} {cpu:10.3f}x"
    )
    print(f"({time.perf_counter() - started:.0f} s; 'noise': under {NOISE:.0%}, see --help)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
