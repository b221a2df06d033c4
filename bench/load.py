"""Invoke API clients: sequential over one keep-alive connection, and N concurrent connections.

Every loop is bounded by a count and a deadline; every socket has a timeout.
"""

from __future__ import annotations

import http.client
import threading
import time
from dataclasses import dataclass, field

REQUEST_TIMEOUT_S = 35.0
MAX_ERRORS_KEPT = 5


class InvokeError(Exception):
    """An invocation that did not come back as 200 with the event echoed."""


class Invoker:
    """One keep-alive HTTP/1.1 connection to a server's Invoke API."""

    def __init__(self, port: int, path: str, timeout: float = REQUEST_TIMEOUT_S) -> None:
        self.path = path
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        self.headers = {"Content-Type": "application/json"}

    def invoke(self, body: bytes) -> bytes:
        self.conn.request("POST", self.path, body, self.headers)
        resp = self.conn.getresponse()
        data = resp.read()
        if resp.status != 200 or resp.getheader("X-Amz-Function-Error"):
            raise InvokeError(
                f"HTTP {resp.status} {resp.getheader('X-Amz-Function-Error')}: {data[:200]!r}"
            )
        if data != body:
            raise InvokeError(f"echo mismatch: sent {body[:80]!r}, got {data[:80]!r}")
        return data

    def close(self) -> None:
        self.conn.close()


def _event(i: int) -> bytes:
    return b'{"n": %d, "bench": "lambdakit"}' % i


@dataclass
class SequentialResult:
    latencies_ns: list[int]
    wall_s: float
    errors: list[str] = field(default_factory=list)


def sequential(port: int, path: str, count: int, max_seconds: float) -> SequentialResult:
    """``count`` invocations one after another on one connection (stops early at the deadline)."""
    inv = Invoker(port, path)
    latencies: list[int] = []
    errors: list[str] = []
    start = time.perf_counter()
    deadline = start + max_seconds
    clock = time.perf_counter_ns
    try:
        for i in range(count):
            t0 = clock()
            try:
                inv.invoke(_event(i))
            except (OSError, http.client.HTTPException, InvokeError) as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                if len(errors) >= MAX_ERRORS_KEPT:
                    break
                inv.close()
                continue
            latencies.append(clock() - t0)
            if time.perf_counter() > deadline:
                break
    finally:
        inv.close()
    return SequentialResult(latencies, time.perf_counter() - start, errors)


@dataclass
class ConcurrentResult:
    clients: int
    ok: int
    wall_s: float
    errors: int
    error_samples: list[str]
    per_client_ok: list[int]
    hung_clients: int
    #: Every successful invocation's latency (clients concatenated; not sorted).
    latencies_ns: list[int] = field(default_factory=list)

    @property
    def invokes_per_s(self) -> float:
        return self.ok / self.wall_s if self.wall_s > 0 else 0.0


def concurrent(
    port: int, path: str, clients: int, seconds: float, max_per_client: int, timeout: float = 10.0
) -> ConcurrentResult:
    """``clients`` threads, each on its own connection, invoking back to back for ``seconds``.

    A client stops at its deadline, after ``max_per_client`` invocations, or after 3 errors in a
    row (a server that has died stays dead). Threads still running after the deadline plus the
    request timeout are counted as hung and abandoned (they are daemons with socket timeouts).
    """
    barrier = threading.Barrier(clients + 1)
    lock = threading.Lock()
    ok = [0] * clients
    latencies: list[list[int]] = [[] for _ in range(clients)]
    errors: list[str] = []
    error_count = [0]
    stop_at = [0.0]

    def client(idx: int) -> None:
        inv = Invoker(port, path, timeout)
        consecutive = 0
        mine = latencies[idx]
        clock = time.perf_counter_ns
        try:
            barrier.wait(timeout=30)
            for i in range(max_per_client):
                if time.monotonic() >= stop_at[0]:
                    break
                t0 = clock()
                try:
                    inv.invoke(_event(idx * 1_000_000 + i))
                except (OSError, http.client.HTTPException, InvokeError) as exc:
                    consecutive += 1
                    with lock:
                        error_count[0] += 1
                        if len(errors) < MAX_ERRORS_KEPT * 2:
                            errors.append(f"client {idx}: {type(exc).__name__}: {exc}")
                    inv.close()
                    if consecutive >= 3:
                        break
                    time.sleep(0.05)
                    continue
                mine.append(clock() - t0)
                consecutive = 0
                ok[idx] += 1
        finally:
            inv.close()

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    stop_at[0] = time.monotonic() + seconds
    start = time.perf_counter()
    barrier.wait(timeout=30)
    stop_at[0] = time.monotonic() + seconds
    hard_deadline = time.monotonic() + seconds + timeout + 5
    for t in threads:
        t.join(max(0.0, hard_deadline - time.monotonic()))
    wall = time.perf_counter() - start
    hung = sum(t.is_alive() for t in threads)
    every = [v for mine in latencies for v in mine]
    return ConcurrentResult(clients, sum(ok), wall, error_count[0], errors, list(ok), hung, every)


def percentile(sorted_values: list[int], q: float) -> float:
    """Nearest-rank percentile of already sorted values (q in 0..100)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), round(q / 100.0 * len(sorted_values) + 0.5)))
    return float(sorted_values[rank - 1])
