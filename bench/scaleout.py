"""Scale-out over RabbitMQ: the AMQP path beside HTTP, 2 workers against 1, a gateway against serve.

``python -m bench.scaleout [--quick]`` against the broker on 127.0.0.1:5672 (``make broker``);
every worker runs ``bench/minimal_runtime.py``, as ``serve_vs_rie`` does.  In one run:

1. **AMQP vs HTTP, one serve, one function** (``--concurrency 1``, the runtime answering at
   once): sequential warm invocations, alternating rounds over HTTP (one keep-alive connection)
   and over AMQP (an aiormq client: publish with ``reply_to`` = direct reply-to, wait for the
   reply); p50, p99 and serve's CPU per invocation for each path.
2. **2 workers vs 1**, runtime sleeping 20 ms, ``--concurrency 4`` each: an AMQP client keeps
   32 requests outstanding on the function's queue; replies/s with one worker consuming, then
   two, then one again (the two one-worker figures are averaged).  Goal: >= 1.8x.
3. **A gateway and 2 workers vs one serve**, 20 ms handler: 8 HTTP clients (``bench/load.py``)
   against ``serve --concurrency 8``, then against ``lambdakit gateway`` in front of two
   ``--concurrency 4`` workers; invokes/s; and sequential p50 through each (0 ms handler).

Results: ``bench/results/scaleout.{json,md}``.  Every process is stopped (SIGTERM, grace,
SIGKILL) and reaped on every exit path; every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench import load
from bench.machine import machine_info
from bench.procs import (
    Managed,
    cpu_seconds,
    interrupt_on_signals,
    machine_busy_seconds,
    own_cpu_seconds,
)
from bench.rie import REPO
from bench.servers import RUNTIME_ARGV, START_TIMEOUT_S, _base_env, serve_argv

BROKER = "amqp://guest:guest@127.0.0.1:5672/"
RESULTS_DIR = REPO / "bench" / "results"
NS_PER_MS = 1_000_000
SLEEP_MS = 20
WINDOW = 32


@dataclass(frozen=True)
class Plan:
    rounds: int = 6
    per_round: int = 1000
    warmup: int = 300
    throughput_requests: int = 1200
    concurrent_seconds: float = 6.0
    gateway_sequential: int = 2000

    @classmethod
    def quick(cls) -> Plan:
        return cls(2, 150, 50, 240, 2.0, 200)


@dataclass
class Worker:
    process: Managed
    port: int
    function: str

    @property
    def path(self) -> str:
        return f"/2015-03-31/functions/{self.function}/invocations"


@contextlib.contextmanager
def worker(function: str, concurrency: int, sleep_ms: int, name: str) -> Iterator[Worker]:
    """``lambdakit serve --amqp`` with the minimal runtime, consuming ``function``'s queue."""
    state = Path(f"/tmp/lambdakit-bench-{uuid.uuid4().hex[:8]}")
    argv = [
        *serve_argv(),
        "--port",
        "0",
        "--function-name",
        function,
        "--concurrency",
        str(concurrency),
        "--timeout",
        "30",
        "--state-dir",
        str(state),
        "--env",
        f"BENCH_SLEEP_MS={sleep_ms}",
        "--amqp",
        BROKER,
        "--",
        *RUNTIME_ARGV,
    ]
    proc = Managed(name, argv, _base_env(sleep_ms), cwd=REPO)
    try:
        match = proc.wait_for_line(r"listening on http://127\.0\.0\.1:(\d+)", START_TIMEOUT_S)
        proc.wait_for_line(r"consuming queues", START_TIMEOUT_S)
        yield Worker(proc, int(match.group(1)), function)
    finally:
        proc.stop()
        import shutil

        shutil.rmtree(state, ignore_errors=True)


@contextlib.contextmanager
def gateway() -> Iterator[int]:
    argv = [sys.executable, "-m", "lambdakit", "gateway", "--port", "0", "--amqp", BROKER]
    proc = Managed("gateway", argv, _base_env(0), cwd=REPO)
    try:
        match = proc.wait_for_line(r"listening on http://127\.0\.0\.1:(\d+)", START_TIMEOUT_S)
        yield int(match.group(1))
    finally:
        proc.stop()


# --- the AMQP client -----------------------------------------------------------------------------
class AmqpClient:
    """One aiormq connection: requests on the default exchange, replies by direct reply-to."""

    def __init__(self) -> None:
        self._pending: dict[str, asyncio.Future[bytes]] = {}

    async def open(self) -> None:
        import aiormq

        self._connection = await aiormq.connect(BROKER)
        self._channel = await self._connection.channel(publisher_confirms=False)
        await self._channel.basic_consume("amq.rabbitmq.reply-to", self._on_reply, no_ack=True)

    async def _on_reply(self, message: Any) -> None:
        future = self._pending.pop(message.header.properties.correlation_id or "", None)
        if future is not None and not future.done():
            future.set_result(message.body)

    async def call(self, queue: str, body: bytes, timeout: float = 35.0) -> bytes:
        from pamqp import commands as spec

        correlation_id = uuid.uuid4().hex
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._pending[correlation_id] = future
        await self._channel.basic_publish(
            body,
            routing_key=queue,
            properties=spec.Basic.Properties(
                correlation_id=correlation_id,
                reply_to="amq.rabbitmq.reply-to",
                content_type="application/json",
            ),
        )
        try:
            return await asyncio.wait_for(future, timeout)
        finally:
            self._pending.pop(correlation_id, None)

    async def sequential(self, queue: str, count: int, max_seconds: float) -> list[int]:
        latencies: list[int] = []
        deadline = time.monotonic() + max_seconds
        for i in range(count):
            body = b'{"n": %d, "bench": "lambdakit"}' % i
            t0 = time.perf_counter_ns()
            reply = await self.call(queue, body)
            latencies.append(time.perf_counter_ns() - t0)
            if reply != body:
                raise RuntimeError(f"echo mismatch: {reply[:80]!r}")
            if time.monotonic() > deadline:
                break
        return latencies

    async def throughput(self, queue: str, count: int, window: int) -> float:
        """Replies per second with ``window`` requests outstanding."""
        semaphore = asyncio.Semaphore(window)

        async def one(i: int) -> None:
            async with semaphore:
                await self.call(queue, b'{"n": %d}' % i)

        start = time.perf_counter()
        await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(count))), 300)
        return count / (time.perf_counter() - start)

    async def close(self) -> None:
        await self._connection.close()


def _percentiles(values_ns: list[int]) -> dict[str, float]:
    ordered = sorted(values_ns)
    return {
        "invokes": len(ordered),
        "p50_ms": load.percentile(ordered, 50) / NS_PER_MS,
        "p99_ms": load.percentile(ordered, 99) / NS_PER_MS,
    }


# --- 1. AMQP vs HTTP ------------------------------------------------------------------------------
async def amqp_vs_http(plan: Plan) -> dict[str, Any]:
    function = f"bench-{uuid.uuid4().hex[:8]}"
    client = AmqpClient()
    with worker(function, 1, 0, "serve-amqp") as srv:
        await client.open()
        try:
            load.sequential(srv.port, srv.path, plan.warmup, 60)
            await client.sequential(function, plan.warmup, 60)
            latencies: dict[str, list[int]] = {"http": [], "amqp": []}
            cpu: dict[str, float] = {"http": 0.0, "amqp": 0.0}
            rounds: list[dict[str, float]] = []
            for rnd in range(plan.rounds):
                order = ("http", "amqp") if rnd % 2 == 0 else ("amqp", "http")
                row: dict[str, float] = {}
                for path in order:
                    before = cpu_seconds(srv.process.pid)
                    if path == "http":
                        got = load.sequential(srv.port, srv.path, plan.per_round, 120)
                        values = got.latencies_ns
                    else:
                        values = await client.sequential(function, plan.per_round, 120)
                    cpu[path] += cpu_seconds(srv.process.pid) - before
                    latencies[path] += values
                    row[f"{path}_p50_ms"] = load.percentile(sorted(values), 50) / NS_PER_MS
                rounds.append(row)
                print(f"[amqp vs http] round {rnd + 1}: {row}", file=sys.stderr)
        finally:
            await client.close()
    out: dict[str, Any] = {"rounds": rounds}
    for path, values in latencies.items():
        out[path] = _percentiles(values)
        out[path]["serve_cpu_us_per_invoke"] = cpu[path] / max(1, len(values)) * 1e6
    out["p50_ratio"] = out["amqp"]["p50_ms"] / out["http"]["p50_ms"]
    out["p50_ratio_median_of_rounds"] = statistics.median(
        r["amqp_p50_ms"] / r["http_p50_ms"] for r in rounds
    )
    out["cpu_ratio"] = (
        out["amqp"]["serve_cpu_us_per_invoke"] / out["http"]["serve_cpu_us_per_invoke"]
    )
    return out


# --- 2. two workers vs one ------------------------------------------------------------------------
async def two_workers_vs_one(plan: Plan) -> dict[str, Any]:
    function = f"bench-{uuid.uuid4().hex[:8]}"
    client = AmqpClient()
    figures: dict[str, list[float]] = {"one": [], "two": []}
    count = plan.throughput_requests
    with worker(function, 4, SLEEP_MS, "worker-1"):
        await client.open()
        try:
            await client.throughput(function, 4 * WINDOW, WINDOW)  # warm: all 4 environments
            figures["one"].append(await client.throughput(function, count, WINDOW))
            with worker(function, 4, SLEEP_MS, "worker-2"):
                await client.throughput(function, 4 * WINDOW, WINDOW)
                figures["two"].append(await client.throughput(function, count, WINDOW))
            await asyncio.sleep(0.5)
            figures["one"].append(await client.throughput(function, count, WINDOW))
        finally:
            await client.close()
    one = statistics.fmean(figures["one"])
    two = statistics.fmean(figures["two"])
    print(f"[workers] one {figures['one']} two {figures['two']}", file=sys.stderr)
    return {
        "handler_sleep_ms": SLEEP_MS,
        "concurrency_per_worker": 4,
        "outstanding": WINDOW,
        "one_worker_per_s": one,
        "one_worker_runs": figures["one"],
        "two_workers_per_s": two,
        "scaling": two / one,
        "ideal_per_worker_per_s": 4 * 1000 / SLEEP_MS,
    }


# --- 3. a gateway and two workers vs one serve ----------------------------------------------------
def gateway_vs_serve(plan: Plan) -> dict[str, Any]:
    out: dict[str, Any] = {}
    function = f"bench-{uuid.uuid4().hex[:8]}"
    with worker(function, 8, SLEEP_MS, "serve-direct") as srv:
        load.concurrent(srv.port, srv.path, 8, 1.0, 200)  # start the 8 environments
        res = load.concurrent(srv.port, srv.path, 8, plan.concurrent_seconds, 100_000)
        out["serve_8_clients_per_s"] = res.invokes_per_s
        out["serve_errors"] = res.errors
    function = f"bench-{uuid.uuid4().hex[:8]}"
    with (
        worker(function, 4, SLEEP_MS, "worker-a"),
        worker(function, 4, SLEEP_MS, "worker-b"),
        gateway() as port,
    ):
        path = f"/2015-03-31/functions/{function}/invocations"
        load.concurrent(port, path, 8, 1.0, 200)
        res = load.concurrent(port, path, 8, plan.concurrent_seconds, 100_000)
        out["gateway_8_clients_per_s"] = res.invokes_per_s
        out["gateway_errors"] = res.errors
    out["throughput_ratio"] = out["gateway_8_clients_per_s"] / out["serve_8_clients_per_s"]
    # Sequential latency, 0 ms handler: one serve over HTTP, and a gateway and one worker.
    function = f"bench-{uuid.uuid4().hex[:8]}"
    with worker(function, 1, 0, "serve-seq") as srv, gateway() as port:
        path = f"/2015-03-31/functions/{function}/invocations"
        load.sequential(srv.port, srv.path, plan.warmup, 60)
        load.sequential(port, path, plan.warmup, 60)
        direct: list[int] = []
        through: list[int] = []
        for rnd in range(max(2, plan.rounds // 2)):
            for target in ("direct", "gateway") if rnd % 2 == 0 else ("gateway", "direct"):
                if target == "direct":
                    direct += load.sequential(
                        srv.port, srv.path, plan.gateway_sequential // 2, 120
                    ).latencies_ns
                else:
                    through += load.sequential(
                        port, path, plan.gateway_sequential // 2, 120
                    ).latencies_ns
    out["serve_sequential"] = _percentiles(direct)
    out["gateway_sequential"] = _percentiles(through)
    out["sequential_p50_ratio"] = (
        out["gateway_sequential"]["p50_ms"] / out["serve_sequential"]["p50_ms"]
    )
    return out


# --- report ---------------------------------------------------------------------------------------
def render_markdown(results: dict[str, Any]) -> str:
    first, second, third = results["amqp_vs_http"], results["workers"], results["gateway"]
    lines = [
        "# Scale-out over RabbitMQ (`python -m bench.scaleout`)",
        "",
        f"Machine: {results['machine'].get('cpu_model')}, {results['machine'].get('nproc')} CPUs; "
        f"busy during the run: {results['busy_cpus_during_run']:.2f} CPUs (this benchmark's "
        "processes and the broker included). "
        f"Commit {results['machine'].get('git_commit')}.",
        "",
        "## 1. The AMQP path beside the HTTP path (same serve, same function, same run)",
        "",
        "| | HTTP Invoke API | AMQP (direct reply-to) | ratio |",
        "|---|---:|---:|---:|",
        f"| p50, ms | {first['http']['p50_ms']:.3f} | {first['amqp']['p50_ms']:.3f} | "
        f"{first['p50_ratio']:.2f}x |",
        f"| p99, ms | {first['http']['p99_ms']:.3f} | {first['amqp']['p99_ms']:.3f} | "
        f"{first['amqp']['p99_ms'] / first['http']['p99_ms']:.2f}x |",
        f"| serve CPU per invocation, µs | {first['http']['serve_cpu_us_per_invoke']:.0f} | "
        f"{first['amqp']['serve_cpu_us_per_invoke']:.0f} | {first['cpu_ratio']:.2f}x |",
        "",
        f"Median of the per-round p50 ratios: {first['p50_ratio_median_of_rounds']:.2f}x. The "
        "AMQP figure includes the broker's two hops (request and reply).",
        "",
        f"## 2. Two workers vs one ({second['handler_sleep_ms']} ms handler, concurrency "
        f"{second['concurrency_per_worker']} each, {second['outstanding']} requests outstanding)",
        "",
        "| | replies/s | ideal |",
        "|---|---:|---:|",
        f"| 1 worker | {second['one_worker_per_s']:.0f} | {second['ideal_per_worker_per_s']:.0f} |",
        f"| 2 workers | {second['two_workers_per_s']:.0f} | "
        f"{2 * second['ideal_per_worker_per_s']:.0f} |",
        f"| **scaling** | **{second['scaling']:.2f}x** | goal >= 1.8x |",
        "",
        "## 3. A gateway and two workers vs one serve",
        "",
        "| | one serve | gateway + 2 workers | ratio |",
        "|---|---:|---:|---:|",
        f"| 8 HTTP clients, {SLEEP_MS} ms handler, invokes/s | "
        f"{third['serve_8_clients_per_s']:.0f} | {third['gateway_8_clients_per_s']:.0f} | "
        f"{third['throughput_ratio']:.2f}x |",
        f"| sequential p50, 0 ms handler, ms | {third['serve_sequential']['p50_ms']:.3f} | "
        f"{third['gateway_sequential']['p50_ms']:.3f} | {third['sequential_p50_ratio']:.2f}x |",
        f"| sequential p99, ms | {third['serve_sequential']['p99_ms']:.3f} | "
        f"{third['gateway_sequential']['p99_ms']:.3f} | |",
        "",
        "serve: `--concurrency 8`; gateway: `lambdakit gateway` in front of two "
        "`serve --amqp --concurrency 4` workers (the sequential row uses one worker).",
        "",
    ]
    return "\n".join(lines)


def run(plan: Plan) -> dict[str, Any]:
    results: dict[str, Any] = {"machine": machine_info(), "plan": asdict(plan)}
    busy0, own0, wall0 = machine_busy_seconds(), own_cpu_seconds(), time.monotonic()
    results["amqp_vs_http"] = asyncio.run(amqp_vs_http(plan))
    results["workers"] = asyncio.run(two_workers_vs_one(plan))
    results["gateway"] = gateway_vs_serve(plan)
    # The machine's busyness includes ours (workers, runtimes, the broker, the clients): it is
    # reported, not subtracted, so a run on a busy machine shows as one.
    phase = time.monotonic() - wall0
    results["busy_cpus_during_run"] = (machine_busy_seconds() - busy0) / phase
    results["client_cpus"] = (own_cpu_seconds() - own0) / phase
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scaleout", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer invocations (a smoke run)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="directory for the results")
    args = parser.parse_args(argv)
    interrupt_on_signals()
    results = run(Plan.quick() if args.quick else Plan())
    table = render_markdown(results)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "scaleout.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    (args.out / "scaleout.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted; every server was stopped", file=sys.stderr)
        sys.exit(130)
