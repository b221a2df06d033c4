"""The latency the post-runner's Runtime API proxy adds to an invocation.

Run: ``python -m bench.postrun_latency [--rounds N] [--per-round N] [--with-command]``.

Several ``lambdakit serve`` instances (one environment each, ``--concurrency 1``) run the same
lean raw-socket Python runtime, directly and behind ``lambdakit post-run``; the client invokes
them in alternating rounds over keep-alive sockets, so drift on the machine hits every variant
alike.  The post-runner variants run with ``AWS_LAMBDA_POST_RUNNER_MODE=AfterError`` against a
runtime that never fails: every call goes through the proxy and its hooks, the command never
runs.  ``--with-command`` adds a variant whose command (``true``) runs after every invocation,
to show what spawning it costs the *next* invocation.  Results go to
``bench/results/postrun_latency.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

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


def variants(runtime: Path, with_command: bool) -> dict[str, tuple[list[str], dict[str, str]]]:
    python = sys.executable
    post_run = [python, "-m", "lambdakit", "post-run"]
    never = {"AWS_LAMBDA_POST_RUNNER_COMMAND": "true", "AWS_LAMBDA_POST_RUNNER_MODE": "AfterError"}
    found: dict[str, tuple[list[str], dict[str, str]]] = {
        "direct": ([python, str(runtime)], {}),
        "post-run (asyncio)": ([*post_run, "--loop", "asyncio", "--", python, str(runtime)], never),
        "bare proxy, no hooks (asyncio)": (
            [python, "-m", "lambdakit.proxy", "--loop", "asyncio", "--", python, str(runtime)],
            {},
        ),
    }
    try:
        import uvloop  # noqa: F401
    except ImportError:
        pass
    else:
        found["post-run (uvloop)"] = (
            [*post_run, "--loop", "uvloop", "--", python, str(runtime)],
            never,
        )
        found["bare proxy, no hooks (uvloop)"] = (
            [python, "-m", "lambdakit.proxy", "--loop", "uvloop", "--", python, str(runtime)],
            {},
        )
    if with_command:
        every = {**never, "AWS_LAMBDA_POST_RUNNER_MODE": "AfterResponse"}
        found["post-run, command runs"] = (
            [*post_run, "--loop", "asyncio", "--", python, str(runtime)],
            every,
        )
    return found


def percentile(samples: list[int], fraction: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index] / 1e6


def measure(args: argparse.Namespace) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        runtime = Path(tmp) / "runtime.py"
        runtime.write_text(RUNTIME)
        configs = variants(runtime, args.with_command)
        samples: dict[str, list[int]] = {name: [] for name in configs}
        stack = []
        clients: dict[str, Client] = {}
        try:
            for index, (name, (command, env)) in enumerate(configs.items()):
                flags = ["--function-name", f"f{index}", "--concurrency", "1", "--timeout", "30"]
                if not args.freeze:
                    flags.append("--no-freeze")
                for key, value in env.items():
                    flags += ["--env", f"{key}={value}"]
                context = running_serve(*flags, "--code-dir", tmp, "--", *command)
                serve = context.__enter__()
                stack.append(context)
                clients[name] = Client(serve, f"f{index}")
            for client in clients.values():
                for _ in range(args.warmup):
                    client.invoke()
            for _ in range(args.rounds):
                for name, client in clients.items():
                    samples[name].extend(client.invoke() for _ in range(args.per_round))
        finally:
            for client in clients.values():
                client.close()
            for context in reversed(stack):
                context.__exit__(None, None, None)
    return summarize(samples, args)


def summarize(samples: dict[str, list[int]], args: argparse.Namespace) -> dict[str, object]:
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
            "raw-socket Python runtime echoing the event; variants interleaved in rounds"
        ),
        "rounds": args.rounds,
        "per_round": args.per_round,
        "target_added_p50_ms": 0.15,
        "freeze": args.freeze,
        "variants": stats,
    }


def write(result: dict[str, object]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "postrun_latency.json").write_text(json.dumps(result, indent=2) + "\n")
    variants = result["variants"]
    assert isinstance(variants, dict)
    lines = [
        "# Post-runner proxy: added invoke latency",
        "",
        f"{result['date']}, Python {result['machine']['python']}, "  # type: ignore[index]
        f"{result['machine']['cpus']} CPUs. {result['method']}.",  # type: ignore[index]
        "",
        "| variant | n | p50 ms | p99 ms | added p50 ms | added p99 ms |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in variants.items():
        lines.append(
            f"| {name} | {row['n']} | {row['p50_ms']:.3f} | {row['p99_ms']:.3f} | "
            f"{row['added_p50_ms']:+.3f} | {row['added_p99_ms']:+.3f} |"
        )
    lines += [
        "",
        "Target: at most 0.15 ms added at p50. The post-run variants use "
        "AWS_LAMBDA_POST_RUNNER_MODE=AfterError with a runtime that never fails, so every call "
        "passes the proxy and its hooks but the command never runs. Serve runs with "
        f"{'freezing on' if result.get('freeze') else '--no-freeze'} (SIGSTOP/SIGCONT between "
        "invocations would also stop and wake the proxy process). 'post-run, command runs' "
        "spawns `true` after every invocation, which the next invocation waits for.",
        "",
    ]
    (RESULTS / "postrun_latency.md").write_text("\n".join(lines))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--per-round", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--with-command", action="store_true")
    parser.add_argument(
        "--freeze",
        action="store_true",
        help="let serve freeze environments between invocations (SIGSTOP/SIGCONT), as Lambda does",
    )
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    result = measure(args)
    print(json.dumps(result["variants"], indent=2))
    if not args.no_write:
        write(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
