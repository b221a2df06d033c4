"""The latency the post-runner's Runtime API proxy adds to an invocation.

Run: ``python -m bench.postrun_latency [--runs N] [--rounds N] [--per-round N]
[--baseline-rev REV] [--with-command]``.

Several ``lambdakit serve`` instances (one environment each, ``--concurrency 1``) run the same
lean raw-socket Python runtime, directly and behind ``lambdakit post-run``; the client invokes
them in rounds over keep-alive sockets, rotating the order each round, so drift on the machine
hits every variant alike.  Each run starts fresh processes; the figures reported are medians
over runs.  The post-runner variants run with ``AWS_LAMBDA_POST_RUNNER_MODE=AfterError``
against a runtime that never fails: every call goes through the proxy and its hooks, the
command never runs.  ``--baseline-rev REV`` adds the post-runner as it was at git revision REV
(``git archive``), for example the asyncio layer the thread layer replaced, under asyncio and
uvloop.  ``--with-command`` adds a variant whose command (``true``) runs after every
invocation, to show what spawning it costs the *next* invocation.  Results go to
``bench/results/postrun_latency.{json,md}``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.serving import REPO, Serve, running_serve

RESULTS = REPO / "bench" / "results"

#: A minimal custom runtime: one keep-alive socket, no HTTP library, echoes the event.
RUNTIME = r"""
import os, socket
host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].rsplit(":", 1)
sock = socket.create_connection((host, int(port)))
sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
buf = b""

def read_message():
    global buf
    while b"\r\n\r\n" not in buf:
        buf += sock.recv(65536)
    head, _, buf = buf.partition(b"\r\n\r\n")
    fields = {}
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        fields[name.strip().lower()] = value.strip()
    length = int(fields.get(b"content-length", b"0"))
    while len(buf) < length:
        buf += sock.recv(65536)
    body, buf = buf[:length], buf[length:]
    return fields, body

NEXT = b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: runtime\r\n\r\n"
while True:
    sock.sendall(NEXT)
    fields, event = read_message()
    request_id = fields[b"lambda-runtime-aws-request-id"]
    sock.sendall(
        b"POST /2018-06-01/runtime/invocation/" + request_id + b"/response HTTP/1.1\r\n"
        b"Host: runtime\r\nContent-Length: %d\r\n\r\n" % len(event) + event
    )
    read_message()
"""

PAYLOAD = b'{"hello": "world"}'


class Client:
    """A keep-alive raw-socket Invoke API client."""

    def __init__(self, serve: Serve, name: str) -> None:
        self.sock = socket.create_connection((serve.host, serve.port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.request = (
            f"POST /2015-03-31/functions/{name}/invocations HTTP/1.1\r\n"
            f"Host: bench\r\nContent-Length: {len(PAYLOAD)}\r\n\r\n"
        ).encode() + PAYLOAD
        self.buf = b""

    def invoke(self) -> int:
        """One invocation; returns its latency in nanoseconds."""
        started = time.perf_counter_ns()
        self.sock.sendall(self.request)
        while b"\r\n\r\n" not in self.buf:
            self.buf += self.sock.recv(65536)
        head, _, rest = self.buf.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(rest) < length:
            rest += self.sock.recv(65536)
        elapsed = time.perf_counter_ns() - started
        if not head.startswith(b"HTTP/1.1 200") or rest[:length] != PAYLOAD:
            raise RuntimeError(f"bad reply: {head[:60]!r} {rest[:60]!r}")
        self.buf = rest[length:]
        return elapsed

    def close(self) -> None:
        self.sock.close()


Variant = tuple[list[str], dict[str, str]]


def variants(
    runtime: Path, baseline: Path | None, rev: str, with_command: bool
) -> dict[str, Variant]:
    """The command lines (and serve --env) of each variant; ``baseline``: an older checkout."""
    python = sys.executable
    never = {"AWS_LAMBDA_POST_RUNNER_COMMAND": "true", "AWS_LAMBDA_POST_RUNNER_MODE": "AfterError"}
    post_run = [python, "-m", "lambdakit", "post-run"]
    bare = [python, "-m", "lambdakit.proxy"]
    runtime_command = [python, str(runtime)]
    found: dict[str, Variant] = {
        "direct": (runtime_command, {}),
        "post-run, threads": ([*post_run, "--", *runtime_command], never),
        "bare proxy, threads": ([*bare, "--", *runtime_command], {}),
    }
    if baseline is not None:
        # The asyncio layer as it was at ``rev``, with its --loop flag.
        old = {"PYTHONPATH": str(baseline)}
        loops = ["asyncio"]
        try:
            import uvloop  # noqa: F401
        except ImportError:
            pass
        else:
            loops.append("uvloop")
        for loop in loops:
            found[f"post-run, {loop} ({rev})"] = (
                [*post_run, "--loop", loop, "--", *runtime_command],
                {**never, **old},
            )
        found[f"bare proxy, asyncio ({rev})"] = (
            [*bare, "--loop", "asyncio", "--", *runtime_command],
            old,
        )
    if with_command:
        every = {**never, "AWS_LAMBDA_POST_RUNNER_MODE": "AfterResponse"}
        found["post-run, threads, command runs"] = ([*post_run, "--", *runtime_command], every)
    return found


def percentile(samples: list[int], fraction: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index] / 1e6


def export_revision(rev: str, into: Path) -> Path:
    """``lambdakit/`` as it was at git revision ``rev``, unpacked under ``into``."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", rev, "lambdakit"],
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def measure_once(
    configs: dict[str, Variant], code_dir: str, args: argparse.Namespace
) -> dict[str, list[int]]:
    """One run: a fresh serve per variant; rounds rotate the order in which variants go."""
    samples: dict[str, list[int]] = {name: [] for name in configs}
    with contextlib.ExitStack() as stack:
        clients: dict[str, Client] = {}
        for index, (name, (command, env)) in enumerate(configs.items()):
            flags = ["--function-name", f"f{index}", "--concurrency", "1", "--timeout", "30"]
            if not args.freeze:
                flags.append("--no-freeze")
            for key, value in env.items():
                flags += ["--env", f"{key}={value}"]
            serve = stack.enter_context(
                running_serve(*flags, "--code-dir", code_dir, "--", *command)
            )
            client = Client(serve, f"f{index}")
            stack.callback(client.close)
            clients[name] = client
        for client in clients.values():
            for _ in range(args.warmup):
                client.invoke()
        order = list(clients)
        for round_index in range(args.rounds):
            shift = round_index % len(order)
            for name in order[shift:] + order[:shift]:
                client = clients[name]
                samples[name].extend(client.invoke() for _ in range(args.per_round))
    return samples


def stats_of(samples: dict[str, list[int]]) -> dict[str, dict[str, float]]:
    stats = {
        name: {
            "n": len(values),
            "p50_ms": percentile(values, 0.50),
            "p99_ms": percentile(values, 0.99),
            "mean_ms": statistics.fmean(values) / 1e6,
        }
        for name, values in samples.items()
    }
    base = stats["direct"]
    for row in stats.values():
        row["added_p50_ms"] = row["p50_ms"] - base["p50_ms"]
        row["added_p99_ms"] = row["p99_ms"] - base["p99_ms"]
    return stats


def measure(args: argparse.Namespace) -> dict[str, object]:
    runs: list[dict[str, dict[str, float]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        runtime = Path(tmp) / "runtime.py"
        runtime.write_text(RUNTIME)
        baseline = None
        if args.baseline_rev:
            baseline = export_revision(args.baseline_rev, Path(tmp) / "baseline")
        configs = variants(runtime, baseline, args.baseline_rev, args.with_command)
        for run in range(args.runs):
            runs.append(stats_of(measure_once(configs, tmp, args)))
            print(f"run {run + 1}/{args.runs}:", _brief(runs[-1]), file=sys.stderr)
    names = list(runs[0])
    median = {
        name: {
            key: statistics.median(run[name][key] for run in runs)
            for key in ("p50_ms", "p99_ms", "added_p50_ms", "added_p99_ms")
        }
        for name in names
    }
    return {
        "benchmark": "postrun_latency",
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
        "method": (
            "sequential invokes over a keep-alive socket to lambdakit serve (--concurrency 1), "
            "raw-socket Python runtime echoing the event; in each run, one fresh serve per "
            "variant and variants interleaved in rounds (rotating order); figures are medians "
            "over runs"
        ),
        "runs": args.runs,
        "rounds": args.rounds,
        "per_round": args.per_round,
        "baseline_rev": args.baseline_rev,
        "target_added_p50_ms": 0.15,
        "freeze": args.freeze,
        "median": median,
        "per_run": runs,
    }


def _brief(stats: dict[str, dict[str, float]]) -> str:
    return ", ".join(
        f"{name} {row['added_p50_ms']:+.3f}/{row['added_p99_ms']:+.3f}"
        for name, row in stats.items()
        if name != "direct"
    )


def write(result: dict[str, Any]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "postrun_latency.json").write_text(json.dumps(result, indent=2) + "\n")
    median, runs = result["median"], result["per_run"]
    machine = result["machine"]
    lines = [
        "# Post-runner proxy: added invoke latency",
        "",
        f"{result['date']}, Python {machine['python']}, {machine['cpus']} CPUs. "
        f"{result['method']}. {result['runs']} runs x {result['rounds']} rounds x "
        f"{result['per_round']} invokes per variant.",
        "",
        "| variant | p50 ms | p99 ms | added p50 ms | added p99 ms | added p50 per run |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in median.items():
        per_run = " ".join(f"{run[name]['added_p50_ms']:+.3f}" for run in runs)
        lines.append(
            f"| {name} | {row['p50_ms']:.3f} | {row['p99_ms']:.3f} | "
            f"{row['added_p50_ms']:+.3f} | {row['added_p99_ms']:+.3f} | {per_run} |"
        )
    rev = result["baseline_rev"]
    lines += [
        "",
        "Target: at most 0.15 ms added at p50. 'threads' is lambdakit.proxy as it is now "
        "(blocking sockets, a thread per runtime connection, synchronous hooks)"
        + (
            f"; the '({rev})' variants are the asyncio layer it replaced, run from git revision "
            f"{rev} under asyncio and uvloop"
            if rev
            else ""
        )
        + ". The post-run variants use AWS_LAMBDA_POST_RUNNER_MODE=AfterError with a runtime "
        "that never fails, so every call passes the proxy and its hooks but the command never "
        "runs; 'bare proxy' is `python -m lambdakit.proxy`, no hooks. Serve runs with "
        f"{'freezing on' if result.get('freeze') else '--no-freeze'} (SIGSTOP/SIGCONT between "
        "invocations would also stop and wake the proxy process). 'command runs' spawns `true` "
        "after every invocation, which the next invocation waits for.",
        "",
    ]
    (RESULTS / "postrun_latency.md").write_text("\n".join(lines))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="fresh processes each run")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--per-round", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--with-command", action="store_true")
    parser.add_argument(
        "--freeze",
        action="store_true",
        help="let serve freeze environments between invocations (SIGSTOP/SIGCONT), as Lambda does",
    )
    parser.add_argument(
        "--baseline-rev",
        default="",
        metavar="REV",
        help="also run the post-runner as it was at git revision REV (e.g. the asyncio layer)",
    )
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    result = measure(args)
    print(json.dumps(result["median"], indent=2))
    if not args.no_write:
        write(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
