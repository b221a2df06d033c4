"""``lambdakit serve`` against AWS's RIE, side by side, in one run, on the same minimal runtime.

Run: ``python -m bench.serve_vs_rie [--quick]``. Writes bench/results/serve_vs_rie.json and .md.

1. Sequential warm invocations over one keep-alive connection: p50, p99, invokes/s (the two servers
   alternate in rounds, so drift on the machine hits both alike).
2. Server CPU per warm invocation: utime+stime of the server process itself, runtime excluded.
3. 1 client, then 8 concurrent clients, against a runtime that sleeps 20 ms: the scaling factor.
4. Idle RSS of the server process after warm-up.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from functools import partial
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
)
from bench.report import render_markdown
from bench.servers import Server, start_rie, start_serve

DESCRIPTION = "lambdakit serve against AWS's RIE, side by side, on the same minimal runtime."
RESULTS_DIR = Path(__file__).resolve().parent / "results"
CONCURRENT_CLIENTS = 8
SLEEP_MS = 20
NS_PER_MS = 1e6


@dataclass(frozen=True)
class Plan:
    warmup: int = 500
    rounds: int = 8
    per_round: int = 1250
    round_max_s: float = 30.0
    concurrent_s: float = 8.0
    idle_s: float = 2.0

    @classmethod
    def quick(cls) -> Plan:
        return cls(warmup=100, rounds=2, per_round=500, concurrent_s=3.0, idle_s=1.0)


def _runtime_cpu(server: Server) -> float:
    total = 0.0
    for pid, _ in descendants(server.pid):
        with contextlib.suppress(ProcessLookupError):
            total += cpu_seconds(pid)
    return total


@contextlib.contextmanager
def _started(
    start: Callable[[], Server], errors: dict[str, str], key: str
) -> Iterator[Server | None]:
    """Start a server (recording why not, if it fails) and always stop it afterwards."""
    try:
        server = start()
    except (OSError, RuntimeError, TimeoutError) as exc:
        errors[key] = f"{type(exc).__name__}: {exc}"
        print(f"[{key}] failed to start: {exc}", file=sys.stderr)
        yield None
        return
    try:
        yield server
    finally:
        code = server.stop()
        print(f"[{key}] stopped (exit status {code})", file=sys.stderr)


def _sequential(servers: dict[str, Server], plan: Plan) -> dict[str, Any]:
    """Warm up each server, then alternate rounds of sequential invocations between them."""
    lat: dict[str, list[int]] = {k: [] for k in servers}
    wall: dict[str, float] = dict.fromkeys(servers, 0.0)
    cpu: dict[str, float] = dict.fromkeys(servers, 0.0)
    rt_cpu: dict[str, float] = dict.fromkeys(servers, 0.0)
    errs: dict[str, list[str]] = {k: [] for k in servers}
    rounds: dict[str, list[dict[str, float]]] = {k: [] for k in servers}
    idle_rss: dict[str, float] = {}
    for key, srv in servers.items():
        warm = load.sequential(srv.port, srv.invoke_path, plan.warmup, plan.round_max_s)
        errs[key] += warm.errors
    time.sleep(plan.idle_s)
    for key, srv in servers.items():
        idle_rss[key] = rss_mb(srv.pid)
    keys = list(servers)
    busy0, own0, wall0 = machine_busy_seconds(), own_cpu_seconds(), time.monotonic()
    for rnd in range(plan.rounds):
        for key in keys if rnd % 2 == 0 else reversed(keys):
            srv = servers[key]
            if not srv.process.alive():
                errs[key].append(f"server exited ({srv.process.proc.returncode})")
                continue
            cpu0, rt0 = cpu_seconds(srv.pid), _runtime_cpu(srv)
            res = load.sequential(srv.port, srv.invoke_path, plan.per_round, plan.round_max_s)
            spent = cpu_seconds(srv.pid) - cpu0
            cpu[key] += spent
            n = len(res.latencies_ns)
            if n:
                p50 = load.percentile(sorted(res.latencies_ns), 50) / NS_PER_MS
                cpu_us = spent / n * 1e6
                rounds[key].append(
                    {"invokes": n, "p50_ms": p50, "server_cpu_us_per_invoke": cpu_us}
                )
            rt_cpu[key] += _runtime_cpu(srv) - rt0
            lat[key] += res.latencies_ns
            wall[key] += res.wall_s
            errs[key] += res.errors
            print(f"[{key}] round {rnd + 1}: {len(res.latencies_ns)} invokes", file=sys.stderr)
    ours = own_cpu_seconds() - own0 + sum(cpu.values()) + sum(rt_cpu.values())
    phase_s = time.monotonic() - wall0
    other_load = (machine_busy_seconds() - busy0 - ours) / phase_s if phase_s > 0 else 0.0
    time.sleep(plan.idle_s)
    out: dict[str, Any] = {"other_load_cpus": max(0.0, other_load)}
    for key, srv in servers.items():
        values = sorted(lat[key])
        n = len(values)
        out[key] = {
            "invokes": n,
            "errors": errs[key][:10],
            "p50_ms": load.percentile(values, 50) / NS_PER_MS,
            "p90_ms": load.percentile(values, 90) / NS_PER_MS,
            "p99_ms": load.percentile(values, 99) / NS_PER_MS,
            "p999_ms": load.percentile(values, 99.9) / NS_PER_MS,
            "max_ms": (values[-1] / NS_PER_MS) if values else float("nan"),
            "mean_ms": (statistics.fmean(values) / NS_PER_MS) if values else float("nan"),
            "over_5ms": sum(v > 5 * NS_PER_MS for v in values),
            "invokes_per_s": n / wall[key] if wall[key] else 0.0,
            "server_cpu_s": cpu[key],
            "server_cpu_us_per_invoke": cpu[key] / n * 1e6 if n else float("nan"),
            "runtime_cpu_us_per_invoke": rt_cpu[key] / n * 1e6 if n else float("nan"),
            "idle_rss_mb_after_warmup": idle_rss[key],
            "rounds": rounds[key],
            "idle_rss_mb_after_sequential": rss_mb(srv.pid) if srv.process.alive() else None,
        }
    return out


def _concurrent(srv: Server, key: str, plan: Plan) -> dict[str, Any]:
    """1 client, then 8 concurrent clients, against the 20 ms handler."""
    result: dict[str, Any] = {}
    if key == "serve":  # start all 8 environments before measuring
        warm = load.concurrent(srv.port, srv.invoke_path, CONCURRENT_CLIENTS, 1.5, 200)
        result["warmup"] = {"ok": warm.ok, "errors": warm.errors, "samples": warm.error_samples}
    else:  # RIE takes one invocation at a time: warm it sequentially
        load.sequential(srv.port, srv.invoke_path, 20, 10.0)
    one = load.concurrent(srv.port, srv.invoke_path, 1, plan.concurrent_s, 10_000)
    result["one_client"] = _conc_dict(one)
    print(f"[{key}] 1 client: {one.invokes_per_s:.1f}/s", file=sys.stderr)
    lines_before = srv.process.lines_seen
    many = load.concurrent(srv.port, srv.invoke_path, CONCURRENT_CLIENTS, plan.concurrent_s, 10_000)
    result["clients_8"] = _conc_dict(many)
    print(f"[{key}] 8 clients: {many.invokes_per_s:.1f}/s, {many.errors} errors", file=sys.stderr)
    time.sleep(0.5)
    alive = srv.process.alive()
    result["server_alive_after"] = alive
    result["server_exit_status"] = None if alive else srv.process.proc.returncode
    new_lines = srv.process.lines_seen - lines_before
    tail = srv.process.tail(min(max(new_lines, 0), 400))
    result["panic_lines"] = [ln for ln in tail if "panic" in ln.lower()][:5]
    result["scaling"] = many.invokes_per_s / one.invokes_per_s if one.invokes_per_s else None
    if alive:
        time.sleep(plan.idle_s)
        result["idle_rss_mb_after_8_clients"] = rss_mb(srv.pid)
    return result


def _conc_dict(res: load.ConcurrentResult) -> dict[str, Any]:
    return {
        "clients": res.clients,
        "ok": res.ok,
        "errors": res.errors,
        "error_samples": res.error_samples,
        "per_client_ok": res.per_client_ok,
        "hung_clients": res.hung_clients,
        "wall_s": res.wall_s,
        "invokes_per_s": res.invokes_per_s,
    }


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _field(section: dict[str, Any], key: str, name: str) -> Any:
    return (section.get(key) or {}).get(name)


def _paired_ratio(seq: dict[str, Any], name: str) -> float | None:
    """Median over rounds of serve's figure / RIE's in the adjacent round (drift cancels out)."""
    pairs = zip(
        _field(seq, "serve", "rounds") or [], _field(seq, "rie", "rounds") or [], strict=False
    )
    ratios = [s[name] / r[name] for s, r in pairs if r[name]]
    return statistics.median(ratios) if ratios else None


def run(plan: Plan, serve_args: Sequence[str] = ()) -> dict[str, Any]:
    errors: dict[str, str] = {}
    results: dict[str, Any] = {"machine": machine_info(), "plan": asdict(plan)}
    results["serve_extra_args"] = list(serve_args)
    starters: dict[str, Callable[[int, str], Server]] = {
        "rie": start_rie,
        "serve": partial(start_serve, extra_args=serve_args),
    }
    results["start_errors"] = errors
    with contextlib.ExitStack() as stack:
        servers: dict[str, Server] = {}
        for key, start in starters.items():
            srv = stack.enter_context(_started(partial(start, 0, f"{key}-seq"), errors, key))
            if srv is not None:
                servers[key] = srv
        results["sequential"] = _sequential(servers, plan) if servers else {}
    results["concurrent"] = {}
    for key, start in starters.items():
        starter = partial(start, SLEEP_MS, f"{key}-conc")
        with _started(starter, errors, f"{key}-conc") as srv:
            if srv is not None:
                results["concurrent"][key] = _concurrent(srv, key, plan)
    seq, conc = results["sequential"], results["concurrent"]
    cpu = "server_cpu_us_per_invoke"
    results["summary"] = {
        "p50_ratio": _ratio(_field(seq, "serve", "p50_ms"), _field(seq, "rie", "p50_ms")),
        "p99_ratio": _ratio(_field(seq, "serve", "p99_ms"), _field(seq, "rie", "p99_ms")),
        "cpu_ratio": _ratio(_field(seq, "serve", cpu), _field(seq, "rie", cpu)),
        "p50_ratio_median_of_rounds": _paired_ratio(seq, "p50_ms"),
        "cpu_ratio_median_of_rounds": _paired_ratio(seq, "server_cpu_us_per_invoke"),
        "serve_scaling_8": _field(conc, "serve", "scaling"),
        "serve_idle_rss_mb": _field(seq, "serve", "idle_rss_mb_after_warmup"),
    }
    return results


def _json_safe(value: Any) -> Any:
    """NaN and infinities become null: strict JSON has neither."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.serve_vs_rie", description=DESCRIPTION)
    parser.add_argument("--quick", action="store_true", help="fewer invocations (a smoke run)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="directory for the results")
    parser.add_argument(
        "--serve-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra option for lambdakit serve, e.g. --serve-arg=--no-freeze (repeatable)",
    )
    args = parser.parse_args(argv)
    interrupt_on_signals()
    results = run(Plan.quick() if args.quick else Plan(), args.serve_arg)
    table = render_markdown(results)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "serve_vs_rie.json").write_text(json.dumps(_json_safe(results), indent=2) + "\n")
    (args.out / "serve_vs_rie.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted; every server was stopped", file=sys.stderr)
        sys.exit(130)
