"""``lambdakit serve`` beside its peers, AWS's RIE and the Lambda Runtime API Daemon, in one run.

Run: ``python -m bench.serve_vs_rie [--quick]``. Writes bench/results/serve_vs_rie.json and .md.
All three servers run the same minimal runtime (bench/minimal_runtime.py).

1b. The sequential phase again, with the runtime in the shape most hand-written Python runtimes
   have (an ``http.client`` loop: separate head and body writes, Nagle on): the figure a user's
   runtime meets, where the lean one measures the servers' own cost.

1. Sequential warm invocations over one keep-alive connection: p50, p99, invokes/s (the servers
   take turns in rounds, the order rotating, so drift on the machine hits them alike).
2. Server CPU per warm invocation: utime+stime of the server process itself, runtime excluded.
3. 8 concurrent clients against the echo runtime, the same servers, in rounds: invokes/s and
   server CPU per invocation (not RIE: it takes one invocation at a time).
4. 1 client, then 8 concurrent clients, against a runtime that sleeps 20 ms: the scaling factor.
5. Idle RSS of the server process after warm-up.

The daemon (github.com/fadams/lambda-runtime-api-daemon) is a Go binary built outside this
repository (``servers.DAEMON_HOWTO``); without it, its column says "not measured" and why.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
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
from bench.report import exit_with, render_markdown, write_results
from bench.servers import (
    DaemonMissing,
    Server,
    daemon_path,
    daemon_version,
    serve_source,
    start_daemon,
    start_rie,
    start_serve,
)

DESCRIPTION = (
    "lambdakit serve beside AWS's RIE and the Lambda Runtime API Daemon, on the same minimal "
    "runtime, in one run."
)
RESULTS_DIR = Path(__file__).resolve().parent / "results"
#: The servers, in the order of the table's columns.
KEYS = ("rie", "daemon", "serve")
#: Servers that take concurrent invocations (RIE panics on a second one).
CONCURRENT_KEYS = ("daemon", "serve")
CONCURRENT_CLIENTS = 8
SLEEP_MS = 20
NS_PER_MS = 1e6


@dataclass(frozen=True)
class Plan:
    warmup: int = 500
    rounds: int = 9
    per_round: int = 2000
    round_max_s: float = 30.0
    #: 8 clients against the echo runtime: warm-up, then rounds of this long per server.
    tput_warmup_s: float = 2.0
    tput_rounds: int = 6
    tput_s: float = 3.0
    concurrent_s: float = 8.0
    idle_s: float = 2.0

    @classmethod
    def quick(cls) -> Plan:
        return cls(
            warmup=100,
            rounds=3,
            per_round=400,
            tput_warmup_s=1.0,
            tput_rounds=2,
            tput_s=1.0,
            concurrent_s=2.0,
            idle_s=0.5,
        )


def _runtime_cpu(server: Server) -> float:
    total = 0.0
    for pid, _ in descendants(server.pid):
        with contextlib.suppress(ProcessLookupError):
            total += cpu_seconds(pid)
    return total


def _rotated(keys: Sequence[str], rnd: int) -> list[str]:
    """The order of round ``rnd``: rotated by one each round, so each server takes each place."""
    shift = rnd % len(keys) if keys else 0
    return [*keys[shift:], *keys[:shift]]


@contextlib.contextmanager
def _started(
    start: Callable[[], Server], errors: dict[str, str], key: str
) -> Iterator[Server | None]:
    """Start a server (recording why not, if it fails) and always stop it afterwards."""
    try:
        server = start()
    except DaemonMissing as exc:
        errors[key] = str(exc)
        print(f"[{key}] {exc}", file=sys.stderr)
        yield None
        return
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


class _Load:
    """How busy the CPUs were during a phase, less this run's own processes."""

    def __init__(self, servers: Mapping[str, Server]) -> None:
        self.servers = servers
        self.busy0, self.own0 = machine_busy_seconds(), own_cpu_seconds()
        self.wall0 = time.monotonic()
        self.theirs0 = self._theirs()

    def _theirs(self) -> float:
        total = 0.0
        for srv in self.servers.values():
            with contextlib.suppress(ProcessLookupError):
                total += cpu_seconds(srv.pid) + _runtime_cpu(srv)
        return total

    def other_cpus(self) -> float:
        """CPUs that other processes kept busy on average (runtimes that exited count as other)."""
        phase_s = time.monotonic() - self.wall0
        ours = own_cpu_seconds() - self.own0 + self._theirs() - self.theirs0
        busy = machine_busy_seconds() - self.busy0
        return max(0.0, (busy - ours) / phase_s) if phase_s > 0 else 0.0

    def total_cpus(self) -> float:
        phase_s = time.monotonic() - self.wall0
        return (machine_busy_seconds() - self.busy0) / phase_s if phase_s > 0 else 0.0


def _sequential(servers: dict[str, Server], plan: Plan) -> dict[str, Any]:
    """Warm up each server, then rounds of sequential invocations, the servers taking turns."""
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
    busy = _Load(servers)
    for rnd in range(plan.rounds):
        for key in _rotated(keys, rnd):
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
                    {"round": rnd, "invokes": n, "p50_ms": p50, "server_cpu_us_per_invoke": cpu_us}
                )
            rt_cpu[key] += _runtime_cpu(srv) - rt0
            lat[key] += res.latencies_ns
            wall[key] += res.wall_s
            errs[key] += res.errors
            print(f"[{key}] round {rnd + 1}: {n} invokes", file=sys.stderr)
    out: dict[str, Any] = {
        "other_load_cpus": busy.other_cpus(),
        "busy_cpus": busy.total_cpus(),
    }
    time.sleep(plan.idle_s)
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
            "runtime_processes": len(descendants(srv.pid)) if srv.process.alive() else None,
            "idle_rss_mb_after_warmup": idle_rss[key],
            "rounds": rounds[key],
            "idle_rss_mb_after_sequential": rss_mb(srv.pid) if srv.process.alive() else None,
        }
    return out


def _throughput(servers: dict[str, Server], plan: Plan) -> dict[str, Any]:
    """8 clients against the echo runtime, in rounds, the servers taking turns."""
    keys = [k for k in servers if k in CONCURRENT_KEYS]
    out: dict[str, Any] = {}
    warm: dict[str, dict[str, Any]] = {}
    for key in keys:  # every environment started before measuring
        srv = servers[key]
        res = load.concurrent(
            srv.port, srv.invoke_path, CONCURRENT_CLIENTS, plan.tput_warmup_s, 1_000_000
        )
        warm[key] = {"ok": res.ok, "errors": res.errors, "samples": res.error_samples}
    ok: dict[str, int] = dict.fromkeys(keys, 0)
    wall: dict[str, float] = dict.fromkeys(keys, 0.0)
    cpu: dict[str, float] = dict.fromkeys(keys, 0.0)
    rt_cpu: dict[str, float] = dict.fromkeys(keys, 0.0)
    lat: dict[str, list[int]] = {k: [] for k in keys}
    errs: dict[str, int] = dict.fromkeys(keys, 0)
    samples: dict[str, list[str]] = {k: [] for k in keys}
    rounds: dict[str, list[dict[str, float]]] = {k: [] for k in keys}
    busy = _Load({k: servers[k] for k in keys})
    for rnd in range(plan.tput_rounds):
        for key in _rotated(keys, rnd):
            srv = servers[key]
            if not srv.process.alive():
                samples[key].append(f"server exited ({srv.process.proc.returncode})")
                continue
            cpu0, rt0 = cpu_seconds(srv.pid), _runtime_cpu(srv)
            res = load.concurrent(
                srv.port, srv.invoke_path, CONCURRENT_CLIENTS, plan.tput_s, 1_000_000
            )
            spent = cpu_seconds(srv.pid) - cpu0
            rt_cpu[key] += _runtime_cpu(srv) - rt0
            cpu[key] += spent
            ok[key] += res.ok
            wall[key] += res.wall_s
            errs[key] += res.errors
            samples[key] += res.error_samples
            lat[key] += res.latencies_ns
            rounds[key].append(
                {
                    "round": rnd,
                    "invokes": res.ok,
                    "invokes_per_s": res.invokes_per_s,
                    "server_cpu_us_per_invoke": spent / res.ok * 1e6 if res.ok else float("nan"),
                }
            )
            print(f"[{key}] 8 clients, round {rnd + 1}: {res.invokes_per_s:.0f}/s", file=sys.stderr)
    out["other_load_cpus"] = busy.other_cpus()
    out["busy_cpus"] = busy.total_cpus()
    for key in keys:
        srv = servers[key]
        values = sorted(lat[key])
        n = ok[key]
        out[key] = {
            "clients": CONCURRENT_CLIENTS,
            "warmup": warm[key],
            "invokes": n,
            "errors": errs[key],
            "error_samples": samples[key][:10],
            "invokes_per_s": n / wall[key] if wall[key] else 0.0,
            "p50_ms": load.percentile(values, 50) / NS_PER_MS,
            "p99_ms": load.percentile(values, 99) / NS_PER_MS,
            "server_cpu_us_per_invoke": cpu[key] / n * 1e6 if n else float("nan"),
            "runtime_cpu_us_per_invoke": rt_cpu[key] / n * 1e6 if n else float("nan"),
            "runtime_processes": len(descendants(srv.pid)) if srv.process.alive() else None,
            "rounds": rounds[key],
        }
    return out


def _concurrent(srv: Server, key: str, plan: Plan) -> dict[str, Any]:
    """1 client, then 8 concurrent clients, against the 20 ms handler."""
    result: dict[str, Any] = {}
    if key in CONCURRENT_KEYS:  # start all 8 environments before measuring
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
        result["runtime_processes"] = len(descendants(srv.pid))
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


def _paired_ratio(section: dict[str, Any], name: str, peer: str) -> float | None:
    """Median over rounds of serve's figure / the peer's in the same round (drift cancels out)."""
    theirs = {r["round"]: r for r in _field(section, peer, "rounds") or []}
    ratios = [
        s[name] / theirs[s["round"]][name]
        for s in _field(section, "serve", "rounds") or []
        if s["round"] in theirs and theirs[s["round"]][name]
    ]
    return statistics.median(ratios) if ratios else None


def _versus(results: dict[str, Any], peer: str) -> dict[str, Any]:
    """serve / ``peer``, every figure with a target or worth a ratio."""
    seq, tput, conc = results["sequential"], results["throughput"], results["concurrent"]
    cpu = "server_cpu_us_per_invoke"

    def c8(key: str) -> Any:
        return ((conc.get(key) or {}).get("clients_8") or {}).get("invokes_per_s")

    return {
        "p50_ratio": _ratio(_field(seq, "serve", "p50_ms"), _field(seq, peer, "p50_ms")),
        "p99_ratio": _ratio(_field(seq, "serve", "p99_ms"), _field(seq, peer, "p99_ms")),
        "cpu_ratio": _ratio(_field(seq, "serve", cpu), _field(seq, peer, cpu)),
        "p50_ratio_median_of_rounds": _paired_ratio(seq, "p50_ms", peer),
        "cpu_ratio_median_of_rounds": _paired_ratio(seq, cpu, peer),
        "tput8_ratio": _ratio(
            _field(tput, "serve", "invokes_per_s"), _field(tput, peer, "invokes_per_s")
        ),
        "tput8_ratio_median_of_rounds": _paired_ratio(tput, "invokes_per_s", peer),
        "tput8_cpu_ratio": _ratio(_field(tput, "serve", cpu), _field(tput, peer, cpu)),
        "sleep20_clients8_ratio": _ratio(c8("serve"), c8(peer)),
    }


def run(
    plan: Plan, serve_args: Sequence[str] = (), daemon_env: Mapping[str, str] | None = None
) -> dict[str, Any]:
    errors: dict[str, str] = {}
    results: dict[str, Any] = {"machine": machine_info(), "plan": asdict(plan)}
    results["serve_extra_args"] = list(serve_args)
    results["serve_lambdakit"] = serve_source()
    results["pythonpath"] = os.environ.get("PYTHONPATH")
    results["daemon_extra_env"] = dict(daemon_env or {})
    binary = daemon_path()
    results["daemon"] = {
        "source": "github.com/fadams/lambda-runtime-api-daemon, built by shared/tools/daemon.sh",
        "binary": str(binary),
        "sha256": _sha256(binary),
        "version": None,
    }
    starters: dict[str, Callable[..., Server]] = {
        "rie": start_rie,
        "daemon": partial(start_daemon, extra_env=daemon_env),
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
        results["throughput"] = _throughput(servers, plan) if servers else {}
        if "daemon" in servers:
            results["daemon"]["version"] = daemon_version(servers["daemon"])
    # The same sequential phase with the runtime most people write (an http.client loop):
    # the figure above is the servers' own cost with a lean runtime; this one is what a user's
    # runtime meets (separate head and body writes, Nagle on).
    with contextlib.ExitStack() as stack:
        shaped: dict[str, Server] = {}
        for key, start in starters.items():
            if key in errors:
                continue
            starter = partial(start, 0, f"{key}-http.client", client="http.client")
            srv = stack.enter_context(_started(starter, errors, f"{key}-http.client"))
            if srv is not None:
                shaped[key] = srv
        shape_plan = replace(plan, rounds=max(3, plan.rounds // 2))
        results["sequential_http_client"] = _sequential(shaped, shape_plan) if shaped else {}
    results["concurrent"] = {}
    for key, start in starters.items():
        if key in errors:  # e.g. no daemon binary: said once
            continue
        starter = partial(start, SLEEP_MS, f"{key}-conc")
        with _started(starter, errors, f"{key}-conc") as srv:
            if srv is not None:
                results["concurrent"][key] = _concurrent(srv, key, plan)
    seq, conc = results["sequential"], results["concurrent"]
    vs_rie = _versus(results, "rie")
    results["summary"] = {
        # serve / RIE (the names this table has always had)
        "p50_ratio": vs_rie["p50_ratio"],
        "p99_ratio": vs_rie["p99_ratio"],
        "cpu_ratio": vs_rie["cpu_ratio"],
        "p50_ratio_median_of_rounds": vs_rie["p50_ratio_median_of_rounds"],
        "cpu_ratio_median_of_rounds": vs_rie["cpu_ratio_median_of_rounds"],
        "vs_daemon": _versus(results, "daemon"),
        "serve_scaling_8": _field(conc, "serve", "scaling"),
        "daemon_scaling_8": _field(conc, "daemon", "scaling"),
        "serve_idle_rss_mb": _field(seq, "serve", "idle_rss_mb_after_warmup"),
        "http_client_runtime": {
            peer: {
                "p50_ratio": _ratio(
                    _field(results["sequential_http_client"], "serve", "p50_ms"),
                    _field(results["sequential_http_client"], peer, "p50_ms"),
                ),
                "p50_ratio_median_of_rounds": _paired_ratio(
                    results["sequential_http_client"], "p50_ms", peer
                ),
            }
            for peer in ("rie", "daemon")
        },
    }
    return results


def _sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _env_pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"want KEY=VALUE, got {text!r}")
    return key, value


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
    parser.add_argument(
        "--daemon-env",
        action="append",
        default=[],
        type=_env_pair,
        metavar="KEY=VALUE",
        help="extra environment variable for the daemon, e.g. PRINT_REPORTS=TRUE (repeatable)",
    )
    args = parser.parse_args(argv)
    interrupt_on_signals()
    results = run(Plan.quick() if args.quick else Plan(), args.serve_arg, dict(args.daemon_env))
    table = render_markdown(results)
    write_results(args.out, "serve_vs_rie", results, table)
    return 0


if __name__ == "__main__":
    exit_with(main)
