"""Scale-out over RabbitMQ, in one run: the AMQP path beside HTTP, 2 workers vs 1, gateway vs serve.

Run: ``python -m bench.amqp_scaleout [--quick]`` with the broker on 127.0.0.1:5672 (guest/guest;
``make broker``).  Writes bench/results/amqp_scaleout.json and .md.  Every ``lambdakit serve``
runs ``bench/minimal_runtime.py`` (the echo runtime of serve_vs_rie) with ``--no-freeze``, and
every run uses fresh function names (``bench-<8 hex>``), so its queues collide with nothing.

1. **One serve, one function, four paths**: sequential warm invocations, the paths taking turns
   in rounds (the order rotating): serve's HTTP Invoke API (``bench/load.py``'s keep-alive
   client), AMQP-RPC with an aiormq client (one connection, one channel, direct reply-to, a
   ``correlation_id`` per request), the same with a pika ``BlockingConnection`` client, and
   HTTP through ``lambdakit gateway``.  p50, p99, and the CPU per invocation of serve, the
   gateway, the broker and this client (``/proc/PID/stat``).
2. **2 workers vs 1**, runtime sleeping 20 ms, ``--concurrency 4`` each: an aiormq client keeps
   32 requests outstanding on the function's queue and sends a fixed number; replies/s with one
   worker, then two (same queue), then one again (the two one-worker runs are averaged, so
   drift cancels).  Before timing, a warm-up burst, then a check that every worker runs all 4
   environments.  For reference, the one worker over HTTP with 4 clients.  Goal: >= 1.8x.
3. **Gateway + 2 workers vs one serve**, 20 ms handler, 8 HTTP clients (``load.concurrent``), a
   fixed count per round: (a) ``serve --concurrency 8`` over its Invoke API, (b) a gateway in
   front of two ``--concurrency 4`` workers, and (c) a gateway in front of one
   ``--concurrency 8`` worker (to tell the gateway's cost from the split); rounds in the order
   a b c c b a.  Invokes/s, p50 and p99, CPU per invocation.

Every process is stopped (SIGTERM, a grace period, SIGKILL) and reaped on every exit path,
Ctrl-C included; every loop is bounded in count and time; every call has a timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from bench import load
from bench.machine import machine_info, package_version
from bench.procs import (
    Managed,
    cmdline,
    cpu_seconds,
    descendants,
    interrupt_on_signals,
    machine_busy_seconds,
    own_cpu_seconds,
)
from bench.report import BUSY_MACHINE_CPUS, exit_with, met, num, write_results
from bench.rie import REPO
from bench.servers import RUNTIME_ARGV, START_TIMEOUT_S, _base_env, serve_argv

DESCRIPTION = (
    "Scale-out over RabbitMQ: the AMQP path beside HTTP, 2 workers vs 1, gateway vs serve."
)
RESULTS_DIR = Path(__file__).resolve().parent / "results"
BROKER = "amqp://guest:guest@127.0.0.1:5672/"
DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"
SLEEP_MS = 20
WORKER_CONCURRENCY = 4
OUTSTANDING = 32
CLIENTS = 8
TARGET_SCALING = 1.8
CALL_TIMEOUT_S = 30.0
NS_PER_MS = 1e6
PATHS = ("http", "amqp", "pika", "gateway")
PATH_NAMES = {
    "http": "HTTP Invoke API",
    "amqp": "AMQP, aiormq",
    "pika": "AMQP, pika",
    "gateway": "HTTP via gateway",
}
#: Lines of a process's log that say something went wrong (checked in its last LOG_TAIL lines).
PROBLEM = re.compile(r"\b(WARNING|ERROR|CRITICAL)\b|Traceback|Exception")
LOG_TAIL = 400
T = TypeVar("T")


@dataclass(frozen=True)
class Plan:
    warmup: int = 300
    rounds: int = 6
    per_round: int = 1000
    round_max_s: float = 60.0
    throughput_requests: int = 800
    http_reference_requests: int = 800
    gateway_requests: int = 1600
    gateway_rounds: int = 2
    phase_max_s: float = 120.0

    @classmethod
    def quick(cls) -> Plan:
        return cls(
            warmup=50,
            rounds=2,
            per_round=200,
            throughput_requests=200,
            http_reference_requests=200,
            gateway_requests=400,
            gateway_rounds=1,
        )


# --- processes -----------------------------------------------------------------------------------
def new_function() -> str:
    return f"bench-{uuid.uuid4().hex[:8]}"


def invoke_path(function: str) -> str:
    return f"/2015-03-31/functions/{function}/invocations"


@dataclass
class Started:
    """A running ``serve`` or ``gateway``: its process and its Invoke API port."""

    label: str
    process: Managed
    port: int

    @property
    def pid(self) -> int:
        return self.process.pid


class Fleet:
    """Every process this run started, for CPU accounting; each is stopped by its context."""

    def __init__(self) -> None:
        self.live: dict[str, Started] = {}
        #: Warnings, errors and tracebacks each process logged (from its last lines), by label.
        self.problems: dict[str, list[str]] = {}

    def _stop(self, label: str, proc: Managed) -> None:
        self.live.pop(label, None)
        code = proc.stop()
        seen = [line for line in proc.tail(LOG_TAIL) if PROBLEM.search(line)]
        if seen:
            self.problems.setdefault(label, []).extend(seen[:10])
        print(f"[{label}] stopped (exit status {code})", file=sys.stderr)

    @contextlib.contextmanager
    def serve(
        self, label: str, function: str, concurrency: int, sleep_ms: int, amqp: bool = True
    ) -> Iterator[Started]:
        """``lambdakit serve --no-freeze`` running the minimal runtime (``--amqp`` if asked)."""
        state = Path(tempfile.mkdtemp(prefix="lambdakit-bench-"))
        argv = [
            *serve_argv("serve"),
            "--port",
            "0",
            "--function-name",
            function,
            "--concurrency",
            str(concurrency),
            "--timeout",
            "30",
            "--log-format",
            "text",
            "--no-freeze",
            "--state-dir",
            str(state),
            "--env",
            f"BENCH_SLEEP_MS={sleep_ms}",
            *(["--amqp", BROKER] if amqp else []),
            "--",
            *RUNTIME_ARGV,
        ]
        try:
            proc = Managed(label, argv, _base_env(sleep_ms), cwd=REPO)
            try:
                match = proc.wait_for_line(
                    r"listening on http://127\.0\.0\.1:(\d+)", START_TIMEOUT_S
                )
                if amqp:
                    proc.wait_for_line(r"consuming queues", START_TIMEOUT_S)
                started = Started(label, proc, int(match.group(1)))
                self.live[label] = started
                yield started
            finally:
                self._stop(label, proc)
        finally:
            shutil.rmtree(state, ignore_errors=True)

    @contextlib.contextmanager
    def gateway(self, label: str) -> Iterator[Started]:
        argv = [*serve_argv("gateway"), "--port", "0", "--amqp", BROKER]
        proc = Managed(label, argv, _base_env(0), cwd=REPO)
        try:
            match = proc.wait_for_line(r"listening on http://127\.0\.0\.1:(\d+)", START_TIMEOUT_S)
            started = Started(label, proc, int(match.group(1)))
            self.live[label] = started
            yield started
        finally:
            self._stop(label, proc)


def environments(started: Started) -> int:
    """How many runtimes (execution environments) a serve runs now."""
    return sum(
        any("minimal_runtime" in arg for arg in cmdline(pid)) for pid, _ in descendants(started.pid)
    )


def _listening_inodes(port: int) -> set[str]:
    """Socket inodes listening on TCP ``port`` (any address), from /proc/net/tcp and tcp6."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if (
                len(fields) > 9
                and fields[3] == "0A"
                and int(fields[1].rsplit(":", 1)[1], 16) == port
            ):
                inodes.add(fields[9])
    return inodes


def find_broker_pid(port: int = 5672) -> int | None:
    """The broker's pid, for its CPU time: the process listening on ``port`` (else the only
    ``beam.smp``); None if it cannot be told (another user's process, several nodes)."""
    sockets = {f"socket:[{inode}]" for inode in _listening_inodes(port)}
    beams = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):
            if Path(f"/proc/{entry}/comm").read_text().strip() == "beam.smp":
                beams.append(int(entry))
                for fd in os.scandir(f"/proc/{entry}/fd"):
                    with contextlib.suppress(OSError):
                        if os.readlink(fd.path) in sockets:
                            return int(entry)
    return beams[0] if len(beams) == 1 else None


def _cpu_or_zero(pid: int) -> float:
    try:
        return cpu_seconds(pid)
    except ProcessLookupError:
        return 0.0


class Ledger:
    """CPU seconds spent in measured segments: by process, by this harness, by the machine.

    A segment runs while the set of processes is constant; "ours" is this process, every
    process of the fleet with its descendants (the runtimes), and the broker; "other" is what
    the rest of the machine kept busy (another user's work makes a run unrepresentative).
    """

    def __init__(self, fleet: Fleet, broker_pid: int | None) -> None:
        self.fleet = fleet
        self.broker_pid = broker_pid
        self.wall_s = 0.0
        self.busy_s = 0.0
        self.ours_s = 0.0

    def _ours(self) -> dict[str, float]:
        spent = {"client": own_cpu_seconds()}
        for label, started in list(self.fleet.live.items()):
            spent[label] = _cpu_or_zero(started.pid)
            spent[label + "/runtimes"] = sum(
                _cpu_or_zero(pid) for pid, _ in descendants(started.pid)
            )
        if self.broker_pid is not None:
            spent["broker"] = _cpu_or_zero(self.broker_pid)
        return spent

    @contextlib.contextmanager
    def segment(self) -> Iterator[dict[str, float]]:
        """Yields a dict filled, on exit, with CPU seconds by process over the segment."""
        spent: dict[str, float] = {}
        before, busy0, wall0 = self._ours(), machine_busy_seconds(), time.monotonic()
        yield spent
        after, busy1, wall1 = self._ours(), machine_busy_seconds(), time.monotonic()
        for key, value in after.items():
            spent[key] = value - before.get(key, 0.0)
        self.wall_s += wall1 - wall0
        self.busy_s += busy1 - busy0
        self.ours_s += sum(spent.values())

    def summary(self) -> dict[str, float | None]:
        if self.wall_s <= 0:
            return {"measured_s": 0.0, "busy_cpus": None, "ours_cpus": None, "other_cpus": None}
        return {
            "measured_s": self.wall_s,
            "busy_cpus": self.busy_s / self.wall_s,
            "ours_cpus": self.ours_s / self.wall_s,
            "other_cpus": max(0.0, (self.busy_s - self.ours_s) / self.wall_s),
        }


# --- AMQP clients --------------------------------------------------------------------------------
class ClientLoop:
    """An event loop (uvloop when installed, as serve's) for the aiormq client, closed after."""

    def __init__(self) -> None:
        try:
            import uvloop

            self.loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
            self.kind = "uvloop"
        except ImportError:
            self.loop = asyncio.new_event_loop()
            self.kind = "asyncio"

    def run(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        return self.loop.run_until_complete(asyncio.wait_for(coro, timeout))

    def close(self) -> None:
        pending = asyncio.all_tasks(self.loop)
        for task in pending:
            task.cancel()
        if pending:
            with contextlib.suppress(BaseException):
                self.loop.run_until_complete(
                    asyncio.wait_for(asyncio.gather(*pending, return_exceptions=True), 5)
                )
        self.loop.close()


class CallError(Exception):
    """A reply that is not the echoed event, or none in time."""


def _event(i: int) -> bytes:
    return b'{"n": %d, "bench": "lambdakit"}' % i


def _check(body: bytes, reply: bytes, headers: dict[str, Any] | None) -> None:
    if headers and any(k.lower() == "x-amz-function-error" for k in headers):
        raise CallError(f"function error: {reply[:200]!r}")
    if reply != body:
        raise CallError(f"echo mismatch: sent {body[:80]!r}, got {reply[:80]!r}")


@dataclass
class Saturation:
    """A fixed number of requests with a fixed number outstanding."""

    sent: int
    ok: int
    wall_s: float
    latencies_ns: list[int]
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)

    @property
    def per_s(self) -> float:
        return self.ok / self.wall_s if self.wall_s > 0 else 0.0


class AiormqClient:
    """One connection, one channel: publish on the default exchange, replies by direct reply-to."""

    def __init__(self) -> None:
        self._pending: dict[str, asyncio.Future[tuple[bytes, dict[str, Any] | None]]] = {}
        self.broker_version: str | None = None

    async def open(self) -> None:
        import aiormq
        from pamqp import commands as spec

        self._spec = spec
        self._connection = await aiormq.connect(BROKER + "?name=bench.amqp_scaleout")
        version = self._connection.server_properties.get("version")
        self.broker_version = version.decode() if isinstance(version, bytes) else str(version)
        self._channel = await self._connection.channel(publisher_confirms=False)
        await self._channel.basic_consume(DIRECT_REPLY_TO, self._on_reply, no_ack=True)

    async def _on_reply(self, message: Any) -> None:
        props = message.header.properties
        future = self._pending.pop(props.correlation_id or "", None)
        if future is not None and not future.done():
            future.set_result((message.body, props.headers))

    async def call(self, queue: str, body: bytes, timeout: float = CALL_TIMEOUT_S) -> bytes:
        correlation_id = uuid.uuid4().hex
        future: asyncio.Future[tuple[bytes, dict[str, Any] | None]]
        future = asyncio.get_running_loop().create_future()
        self._pending[correlation_id] = future
        try:
            await self._channel.basic_publish(
                body,
                routing_key=queue,
                properties=self._spec.Basic.Properties(
                    correlation_id=correlation_id,
                    reply_to=DIRECT_REPLY_TO,
                    content_type="application/json",
                ),
            )
            try:
                reply, headers = await asyncio.wait_for(future, timeout)
            except asyncio.TimeoutError:
                raise CallError(f"no reply within {timeout:g} s") from None
        finally:
            self._pending.pop(correlation_id, None)
        _check(body, reply, headers)
        return reply

    async def sequential(self, queue: str, count: int, max_seconds: float) -> load.SequentialResult:
        latencies: list[int] = []
        errors: list[str] = []
        clock = time.perf_counter_ns
        start = time.perf_counter()
        deadline = start + max_seconds
        for i in range(count):
            body = _event(i)
            t0 = clock()
            try:
                await self.call(queue, body)
            except CallError as exc:
                errors.append(str(exc))
                if len(errors) >= load.MAX_ERRORS_KEPT:
                    break
                continue
            latencies.append(clock() - t0)
            if time.perf_counter() > deadline:
                break
        return load.SequentialResult(latencies, time.perf_counter() - start, errors)

    async def saturate(self, queue: str, count: int, outstanding: int) -> Saturation:
        """``count`` requests, ``outstanding`` of them in flight at any time."""
        numbers = iter(range(count))
        result = Saturation(count, 0, 0.0, [])
        clock = time.perf_counter_ns

        async def lane() -> None:
            for i in numbers:  # shared by the lanes: each request is sent once
                body = _event(i)
                t0 = clock()
                try:
                    await self.call(queue, body)
                except CallError as exc:
                    result.errors += 1
                    if len(result.error_samples) < load.MAX_ERRORS_KEPT:
                        result.error_samples.append(str(exc))
                    continue
                result.latencies_ns.append(clock() - t0)
                result.ok += 1

        start = time.perf_counter()
        await asyncio.gather(*(lane() for _ in range(outstanding)))
        result.wall_s = time.perf_counter() - start
        return result

    async def close(self) -> None:
        await self._connection.close()


class PikaClient:
    """The same protocol with pika's BlockingConnection (what the daemon's examples use)."""

    def __init__(self) -> None:
        import pika

        self._pika = pika
        self._connection = pika.BlockingConnection(pika.URLParameters(BROKER))
        self._channel = self._connection.channel()
        self._channel.basic_consume(DIRECT_REPLY_TO, self._on_reply, auto_ack=True)
        self._expected = ""
        self._reply: tuple[bytes, dict[str, Any] | None] | None = None

    def _on_reply(self, channel: Any, method: Any, props: Any, body: bytes) -> None:
        if props.correlation_id == self._expected:
            self._reply = (body, props.headers)

    def call(self, queue: str, body: bytes, timeout: float = CALL_TIMEOUT_S) -> bytes:
        self._expected, self._reply = uuid.uuid4().hex, None
        self._channel.basic_publish(
            "",
            queue,
            body,
            self._pika.BasicProperties(
                correlation_id=self._expected,
                reply_to=DIRECT_REPLY_TO,
                content_type="application/json",
            ),
        )
        deadline = time.monotonic() + timeout
        while self._reply is None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise CallError(f"no reply within {timeout:g} s")
            self._connection.process_data_events(time_limit=left)
        reply, headers = self._reply
        _check(body, reply, headers)
        return reply

    def sequential(self, queue: str, count: int, max_seconds: float) -> load.SequentialResult:
        latencies: list[int] = []
        errors: list[str] = []
        clock = time.perf_counter_ns
        start = time.perf_counter()
        deadline = start + max_seconds
        for i in range(count):
            body = _event(i)
            t0 = clock()
            try:
                self.call(queue, body)
            except CallError as exc:
                errors.append(str(exc))
                if len(errors) >= load.MAX_ERRORS_KEPT:
                    break
                continue
            latencies.append(clock() - t0)
            if time.perf_counter() > deadline:
                break
        return load.SequentialResult(latencies, time.perf_counter() - start, errors)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._connection.close()


@contextlib.contextmanager
def aiormq_client(loop: ClientLoop) -> Iterator[AiormqClient]:
    client = AiormqClient()
    loop.run(client.open(), 30)
    try:
        yield client
    finally:
        with contextlib.suppress(Exception):
            loop.run(client.close(), 10)


@contextlib.contextmanager
def client_loop() -> Iterator[ClientLoop]:
    loop = ClientLoop()
    try:
        yield loop
    finally:
        loop.close()


# --- figures -------------------------------------------------------------------------------------
def latency_figures(values_ns: list[int]) -> dict[str, Any]:
    ordered = sorted(values_ns)
    return {
        "invokes": len(ordered),
        "p50_ms": load.percentile(ordered, 50) / NS_PER_MS,
        "p90_ms": load.percentile(ordered, 90) / NS_PER_MS,
        "p99_ms": load.percentile(ordered, 99) / NS_PER_MS,
        "max_ms": ordered[-1] / NS_PER_MS if ordered else float("nan"),
    }


def per_invoke_us(seconds: float, invokes: int) -> float:
    return seconds / invokes * 1e6 if invokes else float("nan")


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or not b or math.isnan(a) or math.isnan(b):
        return None
    return a / b


# --- 1. four paths to one serve ------------------------------------------------------------------
def paths_phase(plan: Plan, fleet: Fleet, ledger: Ledger) -> dict[str, Any]:
    """Sequential warm invocations of one function over HTTP, AMQP (aiormq, pika), a gateway."""
    function = new_function()
    queue = function
    path = invoke_path(function)
    lat: dict[str, list[int]] = {p: [] for p in PATHS}
    cpu: dict[str, dict[str, float]] = {p: {} for p in PATHS}
    errors: dict[str, list[str]] = {p: [] for p in PATHS}
    rounds: list[dict[str, Any]] = []
    out: dict[str, Any] = {"function": function, "concurrency": 1}
    with contextlib.ExitStack() as stack:
        srv = stack.enter_context(fleet.serve("serve", function, 1, 0))
        gw = stack.enter_context(fleet.gateway("gateway"))
        loop = stack.enter_context(client_loop())
        amqp = stack.enter_context(aiormq_client(loop))
        pika_client = PikaClient()
        stack.callback(pika_client.close)
        out["client_loop"] = loop.kind
        out["broker_version"] = amqp.broker_version

        def run_path(name: str, count: int) -> load.SequentialResult:
            if name == "http":
                return load.sequential(srv.port, path, count, plan.round_max_s)
            if name == "gateway":
                return load.sequential(gw.port, path, count, plan.round_max_s)
            if name == "pika":
                return pika_client.sequential(queue, count, plan.round_max_s)
            return loop.run(amqp.sequential(queue, count, plan.round_max_s), plan.round_max_s + 30)

        for name in PATHS:  # warm-up: the environment, every connection, both clients' code
            errors[name] += run_path(name, plan.warmup).errors
        out["environments_after_warmup"] = environments(srv)
        for rnd in range(plan.rounds):
            order = PATHS[rnd % len(PATHS) :] + PATHS[: rnd % len(PATHS)]
            row: dict[str, Any] = {"order": list(order)}
            for name in order:
                with ledger.segment() as spent:
                    res = run_path(name, plan.per_round)
                n = len(res.latencies_ns)
                lat[name] += res.latencies_ns
                errors[name] += res.errors
                for key, value in spent.items():
                    cpu[name][key] = cpu[name].get(key, 0.0) + value
                row[name] = {
                    "invokes": n,
                    "p50_ms": load.percentile(sorted(res.latencies_ns), 50) / NS_PER_MS,
                    "serve_cpu_us_per_invoke": per_invoke_us(spent.get("serve", 0.0), n),
                }
            rounds.append(row)
            brief = ", ".join(f"{p} {row[p]['p50_ms']:.3f}" for p in PATHS)
            print(f"[paths] round {rnd + 1}/{plan.rounds}: p50 ms {brief}", file=sys.stderr)
    for name in PATHS:
        figures = latency_figures(lat[name])
        n = figures["invokes"]
        spent = cpu[name]
        figures["errors"] = errors[name][:10]
        figures["error_count"] = len(errors[name])
        figures["cpu_us_per_invoke"] = {
            "serve": per_invoke_us(spent.get("serve", 0.0), n),
            "runtime": per_invoke_us(spent.get("serve/runtimes", 0.0), n),
            "gateway": per_invoke_us(spent.get("gateway", 0.0), n) if name == "gateway" else None,
            "broker": per_invoke_us(spent["broker"], n) if "broker" in spent else None,
            "client": per_invoke_us(spent.get("client", 0.0), n),
        }
        out[name] = figures
    http = out["http"]
    for name in ("amqp", "pika", "gateway"):
        out[f"{name}_vs_http"] = {
            "p50": ratio(out[name]["p50_ms"], http["p50_ms"]),
            "p99": ratio(out[name]["p99_ms"], http["p99_ms"]),
            "serve_cpu": ratio(
                out[name]["cpu_us_per_invoke"]["serve"], http["cpu_us_per_invoke"]["serve"]
            ),
            "p50_median_of_rounds": statistics.median(
                r[name]["p50_ms"] / r["http"]["p50_ms"] for r in rounds
            )
            if rounds
            else None,
        }
    out["rounds"] = rounds
    return out


# --- 2. two workers vs one -----------------------------------------------------------------------
def _warm_workers(
    loop: ClientLoop, client: AiormqClient, queue: str, workers: list[Started], plan: Plan
) -> dict[str, Any]:
    """Bursts until every worker runs all its environments (at most 5 bursts)."""
    want = WORKER_CONCURRENCY
    bursts, counts = 0, [environments(w) for w in workers]
    while bursts < 5 and any(c < want for c in counts):
        loop.run(client.saturate(queue, 4 * OUTSTANDING, OUTSTANDING), plan.phase_max_s)
        bursts += 1
        counts = [environments(w) for w in workers]
    return {"bursts": bursts, "environments": counts, "warm": all(c >= want for c in counts)}


def _saturation_figures(
    res: Saturation, spent: dict[str, float], workers: list[str]
) -> dict[str, Any]:
    figures = latency_figures(res.latencies_ns)
    figures.update(
        {
            "sent": res.sent,
            "ok": res.ok,
            "errors": res.errors,
            "error_samples": res.error_samples,
            "wall_s": res.wall_s,
            "replies_per_s": res.per_s,
            "worker_cpu_us_per_invoke": per_invoke_us(
                sum(spent.get(w, 0.0) for w in workers), res.ok
            ),
            "broker_cpu_us_per_invoke": per_invoke_us(spent["broker"], res.ok)
            if "broker" in spent
            else None,
            "client_cpu_us_per_invoke": per_invoke_us(spent.get("client", 0.0), res.ok),
        }
    )
    return figures


def workers_phase(plan: Plan, fleet: Fleet, ledger: Ledger) -> dict[str, Any]:
    function = new_function()
    queue = function
    out: dict[str, Any] = {
        "function": function,
        "handler_sleep_ms": SLEEP_MS,
        "concurrency_per_worker": WORKER_CONCURRENCY,
        "outstanding": OUTSTANDING,
        "requests": plan.throughput_requests,
        "ideal_per_worker_per_s": WORKER_CONCURRENCY * 1000 / SLEEP_MS,
    }
    runs: list[dict[str, Any]] = []

    def measure(label: str, workers: list[Started]) -> None:
        lines = {w.label: w.process.lines_seen for w in workers}
        with ledger.segment() as spent:
            res = loop.run(
                client.saturate(queue, plan.throughput_requests, OUTSTANDING), plan.phase_max_s
            )
        figures = _saturation_figures(res, spent, [w.label for w in workers])
        figures["workers"] = label
        # serve logs START, END and REPORT per invocation: a worker's share, from its log.
        done = {w.label: (w.process.lines_seen - lines[w.label]) / 3 for w in workers}
        total = sum(done.values())
        figures["share_by_worker"] = {k: v / total for k, v in done.items()} if total else {}
        runs.append(figures)
        print(
            f"[workers] {label}: {res.per_s:.1f} replies/s, {res.errors} errors, "
            f"p50 {figures['p50_ms']:.2f} ms",
            file=sys.stderr,
        )

    with contextlib.ExitStack() as stack:
        w1 = stack.enter_context(fleet.serve("worker-1", function, WORKER_CONCURRENCY, SLEEP_MS))
        loop = stack.enter_context(client_loop())
        client = stack.enter_context(aiormq_client(loop))
        out["warmup_one"] = _warm_workers(loop, client, queue, [w1], plan)
        measure("one", [w1])
        with fleet.serve("worker-2", function, WORKER_CONCURRENCY, SLEEP_MS) as w2:
            out["warmup_two"] = _warm_workers(loop, client, queue, [w1, w2], plan)
            measure("two", [w1, w2])
        measure("one", [w1])
        # Reference: the same worker over its HTTP Invoke API, one client per environment.
        per_client = plan.http_reference_requests // WORKER_CONCURRENCY
        with ledger.segment() as spent:
            ref = load.concurrent(
                w1.port, invoke_path(function), WORKER_CONCURRENCY, plan.phase_max_s, per_client
            )
        out["http_reference"] = {
            "clients": WORKER_CONCURRENCY,
            "ok": ref.ok,
            "errors": ref.errors,
            "error_samples": ref.error_samples,
            "invokes_per_s": ref.invokes_per_s,
            "worker_cpu_us_per_invoke": per_invoke_us(spent.get("worker-1", 0.0), ref.ok),
            **{k: v for k, v in latency_figures(ref.latencies_ns).items() if k != "invokes"},
        }
    ones = [r for r in runs if r["workers"] == "one"]
    twos = [r for r in runs if r["workers"] == "two"]
    out["runs"] = runs
    one = statistics.fmean(r["replies_per_s"] for r in ones)
    two = statistics.fmean(r["replies_per_s"] for r in twos)
    out["one_worker_per_s"] = one
    out["two_workers_per_s"] = two
    out["one_worker_p50_ms"] = statistics.fmean(r["p50_ms"] for r in ones)
    out["two_workers_p50_ms"] = statistics.fmean(r["p50_ms"] for r in twos)
    out["scaling"] = ratio(two, one)
    out["errors"] = sum(r["errors"] for r in runs)
    return out


# --- 3. a gateway and two workers vs one serve ---------------------------------------------------
SETUPS = ("serve", "gateway_2x4", "gateway_1x8")
SETUP_NAMES = {
    "serve": "one serve, --concurrency 8",
    "gateway_2x4": "gateway + 2 workers x 4",
    "gateway_1x8": "gateway + 1 worker x 8",
}


def gateway_phase(plan: Plan, fleet: Fleet, ledger: Ledger) -> dict[str, Any]:
    per_client = plan.gateway_requests // CLIENTS
    out: dict[str, Any] = {
        "clients": CLIENTS,
        "handler_sleep_ms": SLEEP_MS,
        "requests_per_round": per_client * CLIENTS,
        "ideal_per_s": CLIENTS * 1000 / SLEEP_MS,
    }
    with contextlib.ExitStack() as stack:
        f_serve, f_two, f_one = new_function(), new_function(), new_function()
        direct = stack.enter_context(fleet.serve("serve-8", f_serve, CLIENTS, SLEEP_MS, False))
        wa = stack.enter_context(fleet.serve("worker-a", f_two, WORKER_CONCURRENCY, SLEEP_MS))
        wb = stack.enter_context(fleet.serve("worker-b", f_two, WORKER_CONCURRENCY, SLEEP_MS))
        wc = stack.enter_context(fleet.serve("worker-c", f_one, CLIENTS, SLEEP_MS))
        gw = stack.enter_context(fleet.gateway("gateway"))
        targets: dict[str, tuple[int, str, list[Started], dict[str, int]]] = {
            "serve": (direct.port, invoke_path(f_serve), [direct], {"serve-8": CLIENTS}),
            "gateway_2x4": (
                gw.port,
                invoke_path(f_two),
                [wa, wb],
                {"worker-a": WORKER_CONCURRENCY, "worker-b": WORKER_CONCURRENCY},
            ),
            "gateway_1x8": (gw.port, invoke_path(f_one), [wc], {"worker-c": CLIENTS}),
        }
        warmups: dict[str, Any] = {}
        for setup, (port, path, servers, want) in targets.items():
            bursts = 0
            counts = {s.label: environments(s) for s in servers}
            while bursts < 5 and any(counts[k] < v for k, v in want.items()):
                load.concurrent(port, path, CLIENTS, 30.0, 4 * OUTSTANDING // CLIENTS)
                bursts += 1
                counts = {s.label: environments(s) for s in servers}
            warmups[setup] = {"bursts": bursts, "environments": counts}
        out["warmup"] = warmups
        rounds: list[dict[str, Any]] = []
        order = list(SETUPS)
        sequence: list[str] = []
        for rnd in range(plan.gateway_rounds):
            sequence += order if rnd % 2 == 0 else order[::-1]
            sequence += order[::-1] if rnd % 2 == 0 else order
        for setup in sequence:
            port, path, servers, _ = targets[setup]
            with ledger.segment() as spent:
                res = load.concurrent(port, path, CLIENTS, plan.phase_max_s, per_client)
            row: dict[str, Any] = {
                "setup": setup,
                "ok": res.ok,
                "errors": res.errors,
                "error_samples": res.error_samples,
                "hung_clients": res.hung_clients,
                "wall_s": res.wall_s,
                "invokes_per_s": res.invokes_per_s,
                "latencies_ns": res.latencies_ns,
                "cpu_s": {
                    "serve/workers": sum(spent.get(s.label, 0.0) for s in servers),
                    "gateway": spent.get("gateway", 0.0) if setup != "serve" else None,
                    "broker": spent.get("broker"),
                    "client": spent.get("client", 0.0),
                },
            }
            rounds.append(row)
            print(
                f"[gateway] {setup}: {res.invokes_per_s:.1f} invokes/s, {res.errors} errors",
                file=sys.stderr,
            )
    for setup in SETUPS:
        mine = [r for r in rounds if r["setup"] == setup]
        ok = sum(r["ok"] for r in mine)
        wall = sum(r["wall_s"] for r in mine)
        figures = latency_figures([v for r in mine for v in r["latencies_ns"]])
        figures["invokes_per_s"] = ok / wall if wall else 0.0
        figures["rounds_per_s"] = [r["invokes_per_s"] for r in mine]
        figures["errors"] = sum(r["errors"] for r in mine)
        figures["error_samples"] = [s for r in mine for s in r["error_samples"]][:10]
        figures["hung_clients"] = sum(r["hung_clients"] for r in mine)
        cpu: dict[str, float | None] = {}
        for key in ("serve/workers", "gateway", "broker", "client"):
            values = [r["cpu_s"][key] for r in mine]
            cpu[key] = None if None in values else per_invoke_us(sum(values), ok)
        figures["cpu_us_per_invoke"] = cpu
        out[setup] = figures
    for row in rounds:
        del row["latencies_ns"]
    out["rounds"] = rounds
    base = out["serve"]
    for setup in ("gateway_2x4", "gateway_1x8"):
        out[f"{setup}_vs_serve"] = {
            "throughput": ratio(out[setup]["invokes_per_s"], base["invokes_per_s"]),
            "p50": ratio(out[setup]["p50_ms"], base["p50_ms"]),
        }
    return out


# --- report --------------------------------------------------------------------------------------
def _x(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def _us(value: float | None) -> str:
    """CPU µs per invocation; a dash for a process the path does not go through."""
    return "-" if value is None else num(value, ".0f")


def render_markdown(results: dict[str, Any]) -> str:
    m = results.get("machine", {})
    paths, workers, gate = results["paths"], results["workers"], results["gateway"]
    busy = results["busy"]
    amqp_http = paths["amqp_vs_http"]
    scaling = workers.get("scaling")
    two4 = gate["gateway_2x4_vs_serve"]
    lines = [
        "# Scale-out over RabbitMQ (`python -m bench.amqp_scaleout`)",
        "",
        "| | figure | target |",
        "|---|---:|---|",
        f"| AMQP p50 beside HTTP, same serve and function, sequential | "
        f"{paths['amqp']['p50_ms']:.3f} ms vs {paths['http']['p50_ms']:.3f} ms "
        f"({_x(amqp_http['p50'])}) | |",
        f"| AMQP p99 beside HTTP | {paths['amqp']['p99_ms']:.3f} ms vs "
        f"{paths['http']['p99_ms']:.3f} ms ({_x(amqp_http['p99'])}) | |",
        f"| serve CPU per invocation, AMQP vs HTTP | "
        f"{num(paths['amqp']['cpu_us_per_invoke']['serve'], '.0f')} µs vs "
        f"{num(paths['http']['cpu_us_per_invoke']['serve'], '.0f')} µs "
        f"({_x(amqp_http['serve_cpu'])}) | |",
        f"| sequential p50 through a gateway vs serve's own HTTP (same serve) | "
        f"{paths['gateway']['p50_ms']:.3f} ms vs {paths['http']['p50_ms']:.3f} ms "
        f"({_x(paths['gateway_vs_http']['p50'])}) | |",
        f"| 2 workers vs 1, {SLEEP_MS} ms handler, concurrency {WORKER_CONCURRENCY} each, "
        f"{OUTSTANDING} outstanding | {workers['two_workers_per_s']:.0f} vs "
        f"{workers['one_worker_per_s']:.0f} replies/s ({_x(scaling)}) | "
        f">= {TARGET_SCALING}x: {met(None if scaling is None else scaling >= TARGET_SCALING)} |",
        f"| gateway + 2 workers vs one serve, {CLIENTS} HTTP clients, {SLEEP_MS} ms handler | "
        f"{gate['gateway_2x4']['invokes_per_s']:.0f} vs {gate['serve']['invokes_per_s']:.0f} "
        f"invokes/s ({_x(two4['throughput'])}); p50 {gate['gateway_2x4']['p50_ms']:.2f} vs "
        f"{gate['serve']['p50_ms']:.2f} ms ({_x(two4['p50'])}) | |",
        "",
        "## 1. One serve, one function: four ways in (sequential, warm, 0 ms handler)",
        "",
        "| | " + " | ".join(PATH_NAMES[p] for p in PATHS) + " |",
        "|---|" + "---:|" * len(PATHS),
    ]

    def row(label: str, get: Callable[[dict[str, Any]], Any], fmt: str) -> str:
        return f"| {label} | " + " | ".join(num(get(paths[p]), fmt) for p in PATHS) + " |"

    lines += [
        row("p50, ms", lambda f: f["p50_ms"], ".3f"),
        row("p90, ms", lambda f: f["p90_ms"], ".3f"),
        row("p99, ms", lambda f: f["p99_ms"], ".3f"),
        "| p50 / HTTP's | 1.00x | "
        + " | ".join(_x(paths[f"{p}_vs_http"]["p50"]) for p in PATHS[1:])
        + " |",
        "| p50 / HTTP's, median of rounds | | "
        + " | ".join(_x(paths[f"{p}_vs_http"]["p50_median_of_rounds"]) for p in PATHS[1:])
        + " |",
        row("serve CPU per invocation, µs", lambda f: f["cpu_us_per_invoke"]["serve"], ".0f"),
        "| gateway CPU per invocation, µs | "
        + " | ".join(_us(paths[p]["cpu_us_per_invoke"]["gateway"]) for p in PATHS)
        + " |",
        row("broker CPU per invocation, µs", lambda f: f["cpu_us_per_invoke"]["broker"], ".0f"),
        row("client CPU per invocation, µs", lambda f: f["cpu_us_per_invoke"]["client"], ".0f"),
        row("runtime CPU per invocation, µs", lambda f: f["cpu_us_per_invoke"]["runtime"], ".0f"),
        row("invocations", lambda f: f["invokes"], "d"),
        row("errors", lambda f: f["error_count"], "d"),
        "",
        f"`serve --concurrency 1` (one environment), the paths taking turns over "
        f"{results['plan']['rounds']} rounds; the AMQP clients publish with direct reply-to "
        f"(aiormq on {paths.get('client_loop')}); the gateway path is HTTP to "
        "`lambdakit gateway`, AMQP to the same serve. The AMQP figures include the broker's two "
        "hops; a reply is acked only after the broker confirmed it. CPU is utime+stime from "
        "`/proc/PID/stat` (10 ms ticks), the runtime counted apart.",
        "",
        f"## 2. Two workers vs one ({SLEEP_MS} ms handler, `--concurrency "
        f"{WORKER_CONCURRENCY}` each, {OUTSTANDING} requests outstanding, "
        f"{workers['requests']} per run)",
        "",
        "| | 1 worker | 2 workers | ratio | ideal |",
        "|---|---:|---:|---:|---:|",
        f"| replies/s | {workers['one_worker_per_s']:.1f} | {workers['two_workers_per_s']:.1f} | "
        f"**{_x(scaling)}** | {workers['ideal_per_worker_per_s']:.0f} / "
        f"{2 * workers['ideal_per_worker_per_s']:.0f} |",
        f"| p50 under load (time queued included), ms | {workers['one_worker_p50_ms']:.1f} | "
        f"{workers['two_workers_p50_ms']:.1f} | | |",
    ]
    runs = workers["runs"]
    each = ", ".join(f"{r['workers']} {r['replies_per_s']:.1f}" for r in runs)
    two_runs = [r for r in runs if r["workers"] == "two"]
    share = ", ".join(
        f"{k} {v:.0%}" for r in two_runs[:1] for k, v in r.get("share_by_worker", {}).items()
    )
    ref = workers["http_reference"]
    goal_met = met(None if scaling is None else scaling >= TARGET_SCALING)
    lines += [
        "",
        f"Runs in order (replies/s): {each}; the one-worker figure is their mean. "
        f"Goal >= {TARGET_SCALING}x: {goal_met}. "
        f"With two workers, share of the invocations: {share or 'n/a'}. Environments before "
        f"timing: one worker {workers['warmup_one']['environments']}, two "
        f"{workers['warmup_two']['environments']}. Errors: {workers['errors']}.",
        "",
        f"Reference, the same worker over its HTTP Invoke API with {ref['clients']} clients "
        f"(one per environment): {ref['invokes_per_s']:.1f} invokes/s, p50 "
        f"{ref['p50_ms']:.1f} ms; the one-worker AMQP figure is "
        f"{_x(ratio(workers['one_worker_per_s'], ref['invokes_per_s']))} of it.",
        "",
        f"## 3. Gateway + 2 workers vs one serve ({CLIENTS} HTTP clients, {SLEEP_MS} ms handler, "
        f"{gate['requests_per_round']} invocations per round)",
        "",
        "| | " + " | ".join(SETUP_NAMES[s] for s in SETUPS) + " |",
        "|---|" + "---:|" * len(SETUPS),
        "| invokes/s | " + " | ".join(f"{gate[s]['invokes_per_s']:.1f}" for s in SETUPS) + " |",
        "| / one serve's | 1.00x | "
        + " | ".join(_x(gate[f"{s}_vs_serve"]["throughput"]) for s in SETUPS[1:])
        + " |",
        "| p50, ms | " + " | ".join(f"{gate[s]['p50_ms']:.2f}" for s in SETUPS) + " |",
        "| p50 / one serve's | 1.00x | "
        + " | ".join(_x(gate[f"{s}_vs_serve"]["p50"]) for s in SETUPS[1:])
        + " |",
        "| p99, ms | " + " | ".join(f"{gate[s]['p99_ms']:.2f}" for s in SETUPS) + " |",
    ]
    for key, label in (
        ("serve/workers", "serve/workers"),
        ("gateway", "gateway"),
        ("broker", "broker"),
    ):
        lines.append(
            f"| {label} CPU per invocation, µs | "
            + " | ".join(_us(gate[s]["cpu_us_per_invoke"][key]) for s in SETUPS)
            + " |"
        )
    lines += [
        "| errors | " + " | ".join(str(gate[s]["errors"]) for s in SETUPS) + " |",
        "",
        f"Ideal: {gate['ideal_per_s']:.0f} invokes/s (8 environments busy {SLEEP_MS} ms each). "
        "Rounds in the order " + " ".join(r["setup"] for r in gate["rounds"]) + ".",
        "",
        "## Machine",
        "",
        f"- Measured {m.get('date', '?')} on {m.get('nproc', '?')} CPUs "
        f"({m.get('cpu_model') or '?'}), Python {m.get('python', '?')}, lambdakit "
        f"{m.get('lambdakit_version') or '?'} ({m.get('git_commit') or 'uncommitted'}), "
        f"RabbitMQ {paths.get('broker_version') or '?'} on 127.0.0.1, aiormq "
        f"{results['versions'].get('aiormq')}, pika {results['versions'].get('pika')}.",
        f"- During the measured segments ({busy['measured_s']:.0f} s) the machine was busy "
        f"{num(busy['busy_cpus'], '.2f')} CPUs, of which this run (client, serves, runtimes, "
        f"gateway, broker) {num(busy['ours_cpus'], '.2f')}; other processes "
        f"{num(busy['other_cpus'], '.2f')} CPUs.",
    ]
    problems = results.get("log_problems") or {}
    if problems:
        first = next(iter(problems.values()))[0]
        lines.append(
            f"- Warnings or errors in the logs of {', '.join(sorted(problems))} (see the JSON); "
            f"first: `{first[:200]}`"
        )
    else:
        lines.append("- No warning, error or traceback in any serve's or gateway's log.")
    if (busy.get("other_cpus") or 0.0) > BUSY_MACHINE_CPUS:
        lines.append(
            "- **The machine was busy with other work during the run: these figures are not "
            "representative; run again on a quiet machine.**"
        )
    return "\n".join(lines) + "\n"


# --- run -----------------------------------------------------------------------------------------
def run(plan: Plan) -> dict[str, Any]:
    results: dict[str, Any] = {
        "machine": machine_info(),
        "plan": asdict(plan),
        "versions": {"aiormq": package_version("aiormq"), "pika": package_version("pika")},
    }
    fleet = Fleet()
    broker_pid = find_broker_pid()
    results["broker_pid_found"] = broker_pid is not None
    ledger = Ledger(fleet, broker_pid)
    started = time.monotonic()
    results["paths"] = paths_phase(plan, fleet, ledger)
    results["workers"] = workers_phase(plan, fleet, ledger)
    results["gateway"] = gateway_phase(plan, fleet, ledger)
    results["busy"] = ledger.summary()
    results["log_problems"] = fleet.problems
    results["run_s"] = time.monotonic() - started
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.amqp_scaleout", description=DESCRIPTION)
    parser.add_argument("--quick", action="store_true", help="fewer invocations (a smoke run)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="directory for the results")
    args = parser.parse_args(argv)
    interrupt_on_signals()
    results = run(Plan.quick() if args.quick else Plan())
    table = render_markdown(results)
    write_results(args.out, "amqp_scaleout", results, table)
    return 0


if __name__ == "__main__":
    exit_with(main)
