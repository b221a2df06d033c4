"""Lambda Managed Instances beside classic environments: an I/O-bound handler, 16 callers.

Run: ``python -m bench.managed_instances [--quick] [--out DIR]``. Writes
bench/results/managed_instances.json and .md. Issue 14's "must show": a handler that awaits 50 ms,
16 concurrent callers; one environment with ``max_concurrency=16`` against 16 classic
environments: throughput within 10 %, memory several times lower.

Four ``lambdakit serve`` processes run at once, each one function from ``bench/lmi_handler.py``:

1. **classic**: ``--concurrency 16``, ``lmi_handler.async_handler`` (``await asyncio.sleep``),
   16 environments, one invocation at a time each (frozen between invocations, as on Lambda).
2. **managed-async**: ``--max-concurrency 16 --concurrency 1``, the same handler: one environment,
   lambdakit's runtime running 16 tasks on one event loop in one process.
3. **managed-processes**: the same settings, ``lmi_handler.sync_handler`` (``time.sleep``):
   lambdakit's runtime imports it once and forks 16 workers.
4. **awslambdaric** (when importable): the same settings, ``-- python -m awslambdaric
   lmi_handler.sync_handler``: awslambdaric 4.x forks 16 workers, each importing the handler.

Each is warmed up (rounds of 16 concurrent calls, so classic has started its 16 environments),
then measured in rounds of 16 client threads invoking back to back for a fixed time, the
configurations taking turns (the order mirrored every other round) so drift hits all alike:
invokes/s, p50/p99 latency, errors, CPU per invocation of serve and of the function's processes,
and the memory of the function's processes (every descendant of serve: the runtime and its
workers), summed: RSS, and PSS from ``/proc/PID/smaps_rollup`` (fair to copy-on-write workers).
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import importlib.util
import py_compile
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench import load
from bench.machine import machine_info, package_version, pyc_is_fresh, stale_bytecode
from bench.procs import (
    Managed,
    cpu_seconds,
    descendants,
    interrupt_on_signals,
    machine_busy_seconds,
    own_cpu_seconds,
)
from bench.report import BUSY_MACHINE_CPUS, exit_with, met, num, write_results
from bench.rie import REPO
from bench.servers import Server, _base_env, serve_argv

DESCRIPTION = (
    "An I/O-bound handler (50 ms await) at 16 concurrent callers: one Lambda Managed Instances "
    "environment (max_concurrency=16) against 16 classic environments, under lambdakit serve."
)
RESULTS_DIR = Path(__file__).resolve().parent / "results"
HANDLER_DIR = Path(__file__).resolve().parent
HANDLER_FILE = HANDLER_DIR / "lmi_handler.py"
FUNCTION = "bench"
INVOKE_PATH = f"/2015-03-31/functions/{FUNCTION}/invocations"
CLIENTS = 16
MAX_CONCURRENCY = 16
WAIT_MS = 50
START_TIMEOUT_S = 30.0
REQUEST_TIMEOUT_S = 30.0
NS_PER_MS = 1e6
KIB_PER_MIB = 1024.0
#: Targets (issue 14): managed-async invokes/s >= 0.9x classic's; classic's PSS >= 3x its.
TARGET_THROUGHPUT = 0.9
TARGET_MEMORY = 3.0
#: The configuration the targets are about, and the one every ratio is taken against.
SUBJECT, BASELINE = "managed-async", "classic"
#: Fields of /proc/PID/smaps_rollup summed over the function's processes (kB there).
SMAPS_FIELDS = ("Rss", "Pss", "Pss_Anon", "Pss_File", "Pss_Shmem", "Private_Clean", "Private_Dirty")


@dataclass(frozen=True)
class Config:
    """One way to run the function under ``lambdakit serve``."""

    key: str
    label: str
    #: What follows the common options: the handler or ``-- COMMAND``, and the concurrency.
    args: tuple[str, ...]
    #: The function's processes expected once warm (runtimes and their workers).
    processes: int
    what: str


_MANAGED = ("--max-concurrency", str(MAX_CONCURRENCY), "--concurrency", "1")
CONFIGS: dict[str, Config] = {
    c.key: c
    for c in (
        Config(
            "classic",
            "classic: 16 environments",
            ("lmi_handler.async_handler", "--concurrency", str(CLIENTS)),
            CLIENTS,
            "`--concurrency 16`, `async def` handler: 16 runtimes, one invocation at a time each",
        ),
        Config(
            "managed-async",
            "managed, async: 1 environment",
            ("lmi_handler.async_handler", *_MANAGED),
            1,
            "`--max-concurrency 16 --concurrency 1`, `async def` handler: lambdakit's runtime, "
            "16 tasks on one event loop in one process",
        ),
        Config(
            "managed-processes",
            "managed, processes: 1 environment",
            ("lmi_handler.sync_handler", *_MANAGED),
            1 + MAX_CONCURRENCY,
            "`--max-concurrency 16 --concurrency 1`, `def` handler: lambdakit's runtime imports "
            "it once and forks 16 workers",
        ),
        Config(
            "awslambdaric",
            "awslambdaric: 1 environment",
            (*_MANAGED, "--", sys.executable, "-m", "awslambdaric", "lmi_handler.sync_handler"),
            1 + MAX_CONCURRENCY,
            "`--max-concurrency 16 --concurrency 1 -- python -m awslambdaric`, `def` handler: "
            "awslambdaric forks 16 workers, each importing the handler",
        ),
    )
}
KEYS = tuple(CONFIGS)


@dataclass(frozen=True)
class Plan:
    #: Rounds of 16 concurrent invocations (one per client) before anything is measured.
    warmup_rounds: int = 3
    #: Measured rounds; in each, every configuration gets ``seconds`` of 16 clients.
    rounds: int = 2
    seconds: float = 10.0
    #: Pause before reading memory after warm-up (lazy frees, late workers).
    settle_s: float = 1.0

    @classmethod
    def quick(cls) -> Plan:
        return cls(rounds=1, seconds=3.0)


# --- processes -----------------------------------------------------------------------------------
def _serve_argv(cfg: Config, state_dir: Path) -> list[str]:
    return [
        *serve_argv(),
        "--port",
        "0",
        "--function-name",
        FUNCTION,
        "--code-dir",
        str(HANDLER_DIR),
        "--timeout",
        "30",
        "--log-format",
        "text",
        "--state-dir",
        str(state_dir),
        *cfg.args,
    ]


@contextlib.contextmanager
def _serve(cfg: Config) -> Iterator[Server]:
    """``lambdakit serve --port 0`` for one configuration; always stopped and reaped."""
    state = Path(tempfile.mkdtemp(prefix="lambdakit-bench-"))
    try:
        proc = Managed(cfg.key, _serve_argv(cfg, state), _base_env(0), cwd=REPO)
        try:
            match = proc.wait_for_line(r"listening on http://127\.0\.0\.1:(\d+)", START_TIMEOUT_S)
            yield Server("serve", proc, int(match.group(1)), INVOKE_PATH)
        finally:
            code = proc.stop()
            print(f"[{cfg.key}] stopped (exit status {code})", file=sys.stderr)
    finally:
        shutil.rmtree(state, ignore_errors=True)


def _family(server: Server) -> list[int]:
    """The function's processes: every live descendant of the serve process."""
    return [pid for pid, _ in descendants(server.pid)]


def _cpu_or_zero(pid: int) -> float:
    try:
        return cpu_seconds(pid)
    except ProcessLookupError:
        return 0.0


def _cpu(server: Server) -> tuple[float, float]:
    """CPU seconds so far of the serve process, and of the function's processes together."""
    return _cpu_or_zero(server.pid), sum(_cpu_or_zero(pid) for pid in _family(server))


def _smaps_rollup_kb(pid: int) -> dict[str, int]:
    """The kB fields of /proc/PID/smaps_rollup (Rss, Pss, Pss_Anon, ...)."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError as exc:
        raise ProcessLookupError(pid) from exc
    fields: dict[str, int] = {}
    for line in text.splitlines()[1:]:
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            fields[name.strip()] = int(parts[0])
    return fields


def _memory(server: Server) -> dict[str, Any]:
    """Summed smaps_rollup figures (MiB) of the function's processes, and serve's own."""
    totals = dict.fromkeys(SMAPS_FIELDS, 0)
    count = 0
    for pid in _family(server):
        try:
            fields = _smaps_rollup_kb(pid)
        except ProcessLookupError:
            continue
        count += 1
        for name in SMAPS_FIELDS:
            totals[name] += fields.get(name, 0)
    try:
        own = _smaps_rollup_kb(server.pid)
    except ProcessLookupError:
        own = {}
    return {
        "processes": count,
        "rss_mb": totals["Rss"] / KIB_PER_MIB,
        "pss_mb": totals["Pss"] / KIB_PER_MIB,
        "pss_anon_mb": totals["Pss_Anon"] / KIB_PER_MIB,
        "pss_file_mb": totals["Pss_File"] / KIB_PER_MIB,
        "pss_shmem_mb": totals["Pss_Shmem"] / KIB_PER_MIB,
        "uss_mb": (totals["Private_Clean"] + totals["Private_Dirty"]) / KIB_PER_MIB,
        "serve_rss_mb": own["Rss"] / KIB_PER_MIB if "Rss" in own else None,
        "serve_pss_mb": own["Pss"] / KIB_PER_MIB if "Pss" in own else None,
    }


class Ledger:
    """CPU seconds in the measured segments: the machine's, and this run's (harness, serves and
    the function's processes); the rest is what other processes kept busy."""

    def __init__(self, servers: dict[str, Server]) -> None:
        self.servers = servers
        self.wall_s = 0.0
        self.busy_s = 0.0
        self.ours_s = 0.0

    def _ours(self) -> float:
        return own_cpu_seconds() + sum(sum(_cpu(srv)) for srv in self.servers.values())

    @contextlib.contextmanager
    def segment(self) -> Iterator[dict[str, float]]:
        """Yields a dict filled on exit with this segment's wall, busy, ours and other CPUs."""
        out: dict[str, float] = {}
        ours0, busy0, wall0 = self._ours(), machine_busy_seconds(), time.monotonic()
        yield out
        ours1, busy1, wall1 = self._ours(), machine_busy_seconds(), time.monotonic()
        wall, busy, ours = wall1 - wall0, busy1 - busy0, ours1 - ours0
        self.wall_s += wall
        self.busy_s += busy
        self.ours_s += ours
        if wall > 0:
            out.update(
                wall_s=wall,
                busy_cpus=busy / wall,
                ours_cpus=ours / wall,
                other_cpus=max(0.0, (busy - ours) / wall),
            )

    def summary(self) -> dict[str, float | None]:
        if self.wall_s <= 0:
            return {"measured_s": 0.0, "busy_cpus": None, "ours_cpus": None, "other_cpus": None}
        return {
            "measured_s": self.wall_s,
            "busy_cpus": self.busy_s / self.wall_s,
            "ours_cpus": self.ours_s / self.wall_s,
            "other_cpus": max(0.0, (self.busy_s - self.ours_s) / self.wall_s),
        }


# --- phases --------------------------------------------------------------------------------------
def _warm_up(key: str, server: Server, plan: Plan) -> dict[str, Any]:
    """Rounds of 16 concurrent invocations, one per client: every environment and worker serves."""
    rounds = []
    for rnd in range(plan.warmup_rounds):
        res = load.concurrent(
            server.port, server.invoke_path, CLIENTS, REQUEST_TIMEOUT_S, 1, REQUEST_TIMEOUT_S
        )
        slowest = max(res.latencies_ns, default=0) / NS_PER_MS
        rounds.append(
            {
                "ok": res.ok,
                "errors": res.errors,
                "error_samples": res.error_samples,
                "wall_s": res.wall_s,
                "slowest_ms": slowest,
            }
        )
        print(
            f"[{key}] warm-up {rnd + 1}: {res.ok} ok, {res.errors} errors, slowest "
            f"{slowest:.0f} ms",
            file=sys.stderr,
        )
    return {"rounds": rounds, "processes": len(_family(server))}


def _order(rnd: int) -> list[str]:
    """The configurations' order in round ``rnd``: mirrored every other round (a b c d d c b a)."""
    return list(KEYS) if rnd % 2 == 0 else list(reversed(KEYS))


def _latency(values_ns: list[int]) -> dict[str, float]:
    values = sorted(values_ns)
    return {
        "p50_ms": load.percentile(values, 50) / NS_PER_MS,
        "p90_ms": load.percentile(values, 90) / NS_PER_MS,
        "p99_ms": load.percentile(values, 99) / NS_PER_MS,
        "max_ms": values[-1] / NS_PER_MS if values else float("nan"),
        "mean_ms": statistics.fmean(values) / NS_PER_MS if values else float("nan"),
    }


def _measure(servers: dict[str, Server], plan: Plan, ledger: Ledger) -> dict[str, Any]:
    """Rounds of 16 clients for ``plan.seconds`` each, the configurations taking turns."""
    per: dict[str, dict[str, Any]] = {
        k: {"ok": 0, "wall_s": 0.0, "errors": 0, "samples": [], "lat": [], "rounds": []}
        for k in servers
    }
    serve_cpu = dict.fromkeys(servers, 0.0)
    func_cpu = dict.fromkeys(servers, 0.0)
    memory: dict[str, dict[str, Any]] = {}
    for rnd in range(plan.rounds):
        for key in (k for k in _order(rnd) if k in servers):
            srv, acc = servers[key], per[key]
            if not srv.process.alive():
                acc["samples"].append(f"serve exited ({srv.process.proc.returncode})")
                continue
            serve0, func0 = _cpu(srv)
            with ledger.segment() as seg:
                res = load.concurrent(
                    srv.port, srv.invoke_path, CLIENTS, plan.seconds, 1_000_000, REQUEST_TIMEOUT_S
                )
            serve1, func1 = _cpu(srv)
            serve_cpu[key] += serve1 - serve0
            func_cpu[key] += func1 - func0
            memory[key] = _memory(srv)  # after every round; the last one is reported
            acc["ok"] += res.ok
            acc["wall_s"] += res.wall_s
            acc["errors"] += res.errors
            acc["samples"] += res.error_samples
            acc["lat"] += res.latencies_ns
            acc["rounds"].append(
                {
                    "round": rnd,
                    "invokes": res.ok,
                    "errors": res.errors,
                    "hung_clients": res.hung_clients,
                    "invokes_per_s": res.invokes_per_s,
                    "p50_ms": load.percentile(sorted(res.latencies_ns), 50) / NS_PER_MS,
                    "memory": memory[key],
                    **{f"machine_{k}": v for k, v in seg.items()},
                }
            )
            print(
                f"[{key}] round {rnd + 1}: {res.invokes_per_s:.1f} invokes/s, {res.errors} "
                f"errors, function PSS {memory[key]['pss_mb']:.1f} MB, other load "
                f"{seg.get('other_cpus', 0.0):.2f} CPUs",
                file=sys.stderr,
            )
    out: dict[str, Any] = {}
    for key, acc in per.items():
        n = acc["ok"]
        out[key] = {
            "clients": CLIENTS,
            "invokes": n,
            "errors": acc["errors"],
            "error_samples": acc["samples"][:10],
            "invokes_per_s": n / acc["wall_s"] if acc["wall_s"] else 0.0,
            **_latency(acc["lat"]),
            "serve_cpu_us_per_invoke": serve_cpu[key] / n * 1e6 if n else None,
            "function_cpu_us_per_invoke": func_cpu[key] / n * 1e6 if n else None,
            "memory_after_rounds": memory.get(key),
            "rounds": acc["rounds"],
        }
    return out


# --- summary -------------------------------------------------------------------------------------
def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _median_of_rounds(measured: dict[str, Any], key: str) -> float | None:
    """Median over rounds of ``key``'s invokes/s over classic's in the same round."""
    if key not in measured or BASELINE not in measured:
        return None
    base = {r["round"]: r["invokes_per_s"] for r in measured[BASELINE]["rounds"]}
    ratios = [
        r["invokes_per_s"] / base[r["round"]]
        for r in measured[key]["rounds"]
        if base.get(r["round"])
    ]
    return statistics.median(ratios) if ratios else None


def _summary(measured: dict[str, Any]) -> dict[str, Any]:
    def mem(key: str, name: str) -> float | None:
        value = ((measured.get(key) or {}).get("memory_after_rounds") or {}).get(name)
        return float(value) if value is not None else None

    def tput(key: str) -> float | None:
        value = (measured.get(key) or {}).get("invokes_per_s")
        return float(value) if value is not None else None

    vs: dict[str, Any] = {}
    for key in measured:
        vs[key] = {
            "throughput_ratio": _ratio(tput(key), tput(BASELINE)),
            "throughput_ratio_median_of_rounds": _median_of_rounds(measured, key),
            "classic_pss_over_this": _ratio(mem(BASELINE, "pss_mb"), mem(key, "pss_mb")),
            "classic_rss_over_this": _ratio(mem(BASELINE, "rss_mb"), mem(key, "rss_mb")),
            "classic_pss_anon_over_this": _ratio(
                mem(BASELINE, "pss_anon_mb"), mem(key, "pss_anon_mb")
            ),
        }
    subject = vs.get(SUBJECT) or {}
    tr, mr = subject.get("throughput_ratio"), subject.get("classic_pss_over_this")
    return {
        "vs_classic": vs,
        "throughput_ratio": tr,
        "memory_ratio": mr,
        "throughput_target_met": None if tr is None else tr >= TARGET_THROUGHPUT,
        "memory_target_met": None if mr is None else mr >= TARGET_MEMORY,
    }


def _compile_bytecode() -> dict[str, Any]:
    """Compile what is stale (this environment may forbid writing bytecode at import time), so
    that no runtime compiles lambdakit or the handler from source in its Init."""
    stale = stale_bytecode(REPO / "lambdakit")
    if stale:
        compileall.compile_dir(str(REPO / "lambdakit"), quiet=1)
    handler_stale = not pyc_is_fresh(HANDLER_FILE)
    if handler_stale:
        py_compile.compile(str(HANDLER_FILE), doraise=True)
    return {
        "compiled": len(stale) + int(handler_stale),
        "stale_after": len(stale_bytecode(REPO / "lambdakit"))
        + int(not pyc_is_fresh(HANDLER_FILE)),
    }


# --- markdown ------------------------------------------------------------------------------------
def _x(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def render_markdown(results: dict[str, Any]) -> str:
    measured = results.get("measured") or {}
    warm = results.get("warmup") or {}
    summ = results.get("summary") or {}
    vs = summ.get("vs_classic") or {}
    errors = results.get("start_errors") or {}
    keys = list(KEYS)

    def cell(key: str, value: Any, fmt: str) -> str:
        if key in errors:
            return "not measured"
        return num(value, fmt) if key in measured else "n/a"

    def row(label: str, get: Callable[[str], Any], fmt: str, target: str = "", ok: str = "") -> str:
        cells = [cell(k, get(k), fmt) for k in keys]
        return "| " + " | ".join([label, *cells, target, ok]) + " |"

    def m(key: str) -> dict[str, Any]:
        return dict(measured.get(key) or {})

    def mem(key: str) -> dict[str, Any]:
        return dict(m(key).get("memory_after_rounds") or {})

    def ratio_row(label: str, name: str, target: str = "", ok: str = "") -> str:
        cells = ["not measured" if k in errors else _x((vs.get(k) or {}).get(name)) for k in keys]
        return "| " + " | ".join([label, *cells, target, ok]) + " |"

    ideal = CLIENTS * 1000 / WAIT_MS
    lat = [
        "not measured"
        if k in errors
        else f"{num(m(k).get('p50_ms'), '.1f')} / {num(m(k).get('p99_ms'), '.1f')}"
        for k in keys
    ]
    cold = [
        "not measured"
        if k in errors
        else num(((warm.get(k) or {}).get("rounds") or [{}])[0].get("slowest_ms"), ".0f")
        for k in keys
    ]
    lines = [
        "| | " + " | ".join(CONFIGS[k].label for k in keys) + " | target | met |",
        "|---|" + "---:|" * len(keys) + "---|---|",
        row(f"invokes/s, {CLIENTS} callers (ideal {ideal:.0f})",
            lambda k: m(k).get("invokes_per_s"), ".1f"),
        ratio_row("invokes/s / classic's", "throughput_ratio",
                  f">= {TARGET_THROUGHPUT}x (managed, async)",
                  met(summ.get("throughput_target_met"))),
        ratio_row("invokes/s / classic's, median of rounds",
                  "throughput_ratio_median_of_rounds"),
        "| p50 / p99 latency, ms | " + " | ".join(lat) + " | | |",
        row("errors", lambda k: m(k).get("errors"), "d"),
        row("function processes (runtimes and workers)",
            lambda k: mem(k).get("processes"), "d"),
        row("RSS of the function's processes, summed, MB", lambda k: mem(k).get("rss_mb"), ".1f"),
        row("PSS of the function's processes, summed, MB", lambda k: mem(k).get("pss_mb"), ".1f"),
        row("of which anonymous (Pss_Anon), MB", lambda k: mem(k).get("pss_anon_mb"), ".1f"),
        ratio_row("classic's PSS / this", "classic_pss_over_this",
                  f">= {TARGET_MEMORY:.0f}x (managed, async)",
                  met(summ.get("memory_target_met"))),
        ratio_row("classic's RSS / this", "classic_rss_over_this"),
        row("serve's own RSS, MB", lambda k: mem(k).get("serve_rss_mb"), ".1f"),
        row("serve CPU per invocation, µs", lambda k: m(k).get("serve_cpu_us_per_invoke"), ".0f"),
        row("function CPU per invocation, µs (all its processes)",
            lambda k: m(k).get("function_cpu_us_per_invoke"), ".0f"),
        "| cold: slowest of the first 16 concurrent invocations, ms | " + " | ".join(cold)
        + " | | |",
    ]  # fmt: skip
    return "\n".join(lines) + "\n\n" + "\n".join(f"- {n}" for n in _notes(results)) + "\n"


def _notes(results: dict[str, Any]) -> list[str]:
    mach = results.get("machine") or {}
    plan = results.get("plan") or {}
    busy = results.get("busy") or {}
    measured = results.get("measured") or {}
    warm = results.get("warmup") or {}
    errors = results.get("start_errors") or {}
    versions = results.get("versions") or {}
    notes = [
        f"Measured {mach.get('date', '?')} on {mach.get('nproc', '?')} CPUs "
        f"({mach.get('cpu_model') or '?'}), Python {mach.get('python', '?')}, lambdakit "
        f"{mach.get('lambdakit_version') or '?'} ({mach.get('git_commit') or 'uncommitted'}), "
        f"awslambdaric {versions.get('awslambdaric') or 'not installed'}.",
        f"The handler (`bench/lmi_handler.py`) waits {WAIT_MS} ms and returns its event, which "
        "the client checks (each caller gets its own answer). "
        + "; ".join(f"**{k}**: {CONFIGS[k].what}" for k in KEYS)
        + ". All under `lambdakit serve --timeout 30 --log-format text` (START/END/REPORT "
        "lines for every invocation); classic environments are frozen (SIGSTOP) between "
        "invocations, managed ones never.",
        f"Warm-up: {plan.get('warmup_rounds')} rounds of {CLIENTS} concurrent invocations per "
        "configuration (the first starts the environments), then "
        f"{plan.get('rounds')} measured round{'' if plan.get('rounds') == 1 else 's'} of "
        f"{CLIENTS} client threads (one keep-alive "
        f"connection each, `bench/load.py`) invoking back to back for {plan.get('seconds')} s "
        "per configuration, the configurations taking turns (order mirrored every other "
        "round); all four serves run throughout, the idle ones taking no CPU. The client is "
        "this Python harness, on the same CPUs.",
        "Memory: every descendant of the serve process (the runtime and its workers), read "
        "from `/proc/PID/smaps_rollup` just after the last round; RSS counts pages shared by "
        "forked workers once per worker, PSS divides each shared page among the processes "
        "mapping it. File-backed pages (the interpreter, shared libraries) are shared with "
        "every Python process on the machine, the other configurations' included, so their "
        "share (Pss_File) moves a little with what else runs; Pss_Anon does not. serve's own "
        "memory is apart. CPU is utime+stime from `/proc/PID/stat` (10 ms ticks).",
        f"Machine load over the measured rounds ({num(busy.get('measured_s'), '.0f')} s): "
        f"the CPUs were {num(busy.get('busy_cpus'), '.2f')} busy, this run (client, serves, "
        f"function processes) {num(busy.get('ours_cpus'), '.2f')}, other processes "
        f"{num(busy.get('other_cpus'), '.2f')} CPUs.",
    ]
    if (busy.get("other_cpus") or 0.0) > BUSY_MACHINE_CPUS:
        notes.append(
            "**The machine was busy with other work during the run: these figures are not "
            "representative; run again on a quiet machine.**"
        )
    for key in KEYS:
        if key in errors:
            notes.append(f"{key}: not measured: {errors[key].splitlines()[0][:300]}")
            continue
        cfg, w, res = CONFIGS[key], warm.get(key) or {}, measured.get(key) or {}
        procs = w.get("processes")
        if procs is not None and procs != cfg.processes:
            notes.append(f"{key}: {procs} function processes after warm-up, {cfg.processes} meant")
        failed = sum(r.get("errors", 0) for r in w.get("rounds") or [])
        if failed:
            sample = next((s for r in w["rounds"] for s in r.get("error_samples") or []), "?")
            notes.append(f"{key}, warm-up: {failed} invocations failed; first: `{sample[:200]}`")
        if res.get("errors"):
            sample = (res.get("error_samples") or ["?"])[0]
            notes.append(f"{key}: {res['errors']} invocations failed; first: `{sample[:200]}`")
    problems = results.get("log_problems") or {}
    for key, lines in problems.items():
        notes.append(f"{key}: warnings or errors in serve's log (see the JSON); `{lines[0][:200]}`")
    bytecode = results.get("bytecode") or {}
    if bytecode.get("stale_after"):
        notes.append(
            f"{bytecode['stale_after']} lambdakit or handler sources had no fresh bytecode: "
            "the runtimes compiled them at start."
        )
    return notes


# --- run -----------------------------------------------------------------------------------------
PROBLEM_WORDS = ("WARNING", "ERROR", "CRITICAL", "Traceback", "Exception")


def _log_problems(server: Server) -> list[str]:
    return [ln for ln in server.process.tail() if any(w in ln for w in PROBLEM_WORDS)][:10]


def run(plan: Plan) -> dict[str, Any]:
    results: dict[str, Any] = {
        "machine": machine_info(),
        "plan": asdict(plan),
        "versions": {"awslambdaric": package_version("awslambdaric")},
        "bytecode": _compile_bytecode(),
        "configs": {
            k: {"serve_args": list(c.args), "function_processes": c.processes, "what": c.what}
            for k, c in CONFIGS.items()
        },
    }
    errors: dict[str, str] = {}
    results["start_errors"] = errors
    problems: dict[str, list[str]] = {}
    results["log_problems"] = problems
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        servers: dict[str, Server] = {}
        for key in KEYS:
            if key == "awslambdaric" and importlib.util.find_spec("awslambdaric") is None:
                errors[key] = f"awslambdaric is not importable by {sys.executable}"
                continue
            try:
                servers[key] = stack.enter_context(_serve(CONFIGS[key]))
            except (OSError, RuntimeError, TimeoutError) as exc:
                errors[key] = f"{type(exc).__name__}: {exc}"
                print(f"[{key}] failed to start: {exc}", file=sys.stderr)
        results["warmup"] = {key: _warm_up(key, srv, plan) for key, srv in servers.items()}
        time.sleep(plan.settle_s)
        for key, srv in servers.items():
            results["warmup"][key]["memory"] = _memory(srv)
            if seen := _log_problems(srv):
                problems[key] = seen
        ledger = Ledger(servers)
        results["measured"] = _measure(servers, plan, ledger)
        results["busy"] = ledger.summary()
        for key, srv in servers.items():
            if seen := _log_problems(srv):
                problems.setdefault(key, []).extend(seen)
            results["measured"][key]["serve_alive_after"] = srv.process.alive()
    results["summary"] = _summary(results["measured"])
    results["run_s"] = time.monotonic() - started
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.managed_instances", description=DESCRIPTION
    )
    parser.add_argument("--quick", action="store_true", help="shorter rounds (a smoke run)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="directory for the results")
    args = parser.parse_args(argv)
    interrupt_on_signals()
    results = run(Plan.quick() if args.quick else Plan())
    table = render_markdown(results)
    write_results(args.out, "managed_instances", results, table)
    return 0


if __name__ == "__main__":
    exit_with(main)
