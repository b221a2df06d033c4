"""Cold start and warm CPU of ``python -m lambdakit.runtime``, against awslambdaric and the floor.

Run: ``python -m bench.runtime_coldstart [--quick]``. Writes bench/results/runtime_coldstart.json
and .md.

1. Cold start: from spawn to the first ``GET /2018-06-01/runtime/invocation/next`` arriving on a
   raw-socket listener in this process, and the runtime's RSS (VmRSS) at that moment, for the floor
   (an interpreter that connects and sends GET next with ``_socket``, nothing else), awslambdaric
   and lambdakit.runtime, with the same trivial handler module. Two setups: this venv as it is, and
   deployment-like (``python -S``, the packages on PYTHONPATH, as a Lambda zip or layer has them:
   no ``site``, no editable-install finder). The six (setup, runtime) pairs are interleaved, their
   order rotating every round, so drift on the machine hits all alike.
2. Warm CPU: each runtime under ``lambdakit serve --no-freeze``, sequential invocations over one
   keep-alive connection, utime+stime of the runtime process (serve's child) per invocation; the
   three servers alternate in rounds. The floor here is bench/minimal_runtime.py.
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import os
import py_compile
import socket
import statistics
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench import load, minimal_runtime
from bench.machine import machine_info, package_version, pyc_is_fresh, stale_bytecode
from bench.procs import (
    LOG_TAIL_LINES,
    Managed,
    cmdline,
    cpu_seconds,
    descendants,
    interrupt_on_signals,
    machine_busy_seconds,
    own_cpu_seconds,
    reaped_children_cpu_seconds,
    rss_mb,
    thread_count,
)
from bench.report import BUSY_MACHINE_CPUS, exit_with, met, num, write_results
from bench.rie import REPO
from bench.servers import Server, serve_argv

DESCRIPTION = "Cold start and warm CPU of lambdakit.runtime against awslambdaric and the floor."
RESULTS_DIR = Path(__file__).resolve().parent / "results"
PY = sys.executable
HANDLER = "mod.handler"
HANDLER_SOURCE = "def handler(event, context):\n    return event\n"
NEXT_LINE = b"GET /2018-06-01/runtime/invocation/next "
#: The floor: an interpreter that sends GET next with raw sockets and nothing else, then waits.
FLOOR_CODE = (
    "import os, _socket\n"
    "host, port = os.environ['AWS_LAMBDA_RUNTIME_API'].rsplit(':', 1)\n"
    "s = _socket.socket()\n"
    "s.connect((host, int(port)))\n"
    "s.sendall(b'GET /2018-06-01/runtime/invocation/next HTTP/1.1\\r\\nHost: r\\r\\n\\r\\n')\n"
    "s.recv(1)\n"
)
RUNTIMES: dict[str, list[str]] = {
    "floor": ["-c", FLOOR_CODE],
    "awslambdaric": ["-m", "awslambdaric", HANDLER],
    "lambdakit": ["-m", "lambdakit.runtime", HANDLER],
}
#: The same runtimes under lambdakit serve (the floor: the lean echo runtime of serve_vs_rie).
SERVED: dict[str, list[str]] = {
    "floor": [PY, "-S", str(Path(minimal_runtime.__file__).resolve())],
    "awslambdaric": [PY, "-m", "awslambdaric", HANDLER],
    "lambdakit": [PY, "-m", "lambdakit.runtime", HANDLER],
}
SETUPS = ("deploy", "venv")
SETUP_TITLES = {
    "deploy": "deployment-like (`python -S`, packages on PYTHONPATH)",
    "venv": "this venv as is (site, editable-install finder)",
}
LAMBDA_ENV = {
    "AWS_LAMBDA_FUNCTION_NAME": "bench",
    "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
    "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/bench",
    "AWS_LAMBDA_LOG_STREAM_NAME": "bench",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "_HANDLER": HANDLER,
}
INVOKE_PATH = "/2015-03-31/functions/bench/invocations"
LISTENING = r"listening on http://127\.0\.0\.1:(\d+)"
SERVE_START_TIMEOUT_S = 20.0
POLL_S = 0.1
PROBE_TIMEOUT_S = 20.0
MAX_REQUEST_LINE = 65536
MAX_ERRORS = 5  # failed spawns or rounds after which a variant is given up
TARGET_COLDSTART_RATIO = 0.6
TARGET_RSS_RATIO = 1.0
TARGET_CPU_RATIO = 1.0
NS_PER_MS = 1e6


@dataclass(frozen=True)
class Plan:
    spawns: int = 100  # per (setup, runtime) pair
    spawn_timeout_s: float = 10.0
    warmup: int = 500
    rounds: int = 8
    per_round: int = 4000  # enough CPU per round for /proc's 10 ms ticks to matter little
    round_max_s: float = 30.0

    @classmethod
    def quick(cls) -> Plan:
        return cls(spawns=15, warmup=100, rounds=2, per_round=1500)


@dataclass(frozen=True)
class Layout:
    """The trivial handler's directory and the deployment-like package directory."""

    code_dir: Path
    deploy_dir: Path
    site_packages: Path


@contextlib.contextmanager
def _layout() -> Iterator[Layout]:
    """A temporary code directory (the handler, precompiled) and ``deploy/lambdakit`` -> repo."""
    with tempfile.TemporaryDirectory(prefix="lambdakit-coldstart-") as tmp:
        code_dir = Path(tmp, "code")
        code_dir.mkdir()
        (code_dir / "mod.py").write_text(HANDLER_SOURCE)
        py_compile.compile(str(code_dir / "mod.py"), doraise=True)
        deploy_dir = Path(tmp, "deploy")
        deploy_dir.mkdir()
        (deploy_dir / "lambdakit").symlink_to(REPO / "lambdakit", target_is_directory=True)
        yield Layout(code_dir, deploy_dir, Path(sysconfig.get_paths()["purelib"]))


def _compile_lambdakit() -> list[str]:
    """Bring lambdakit's __pycache__ up to date (as pip does for awslambdaric); what was stale."""
    stale = stale_bytecode(REPO / "lambdakit")
    if stale:
        compileall.compile_dir(str(REPO / "lambdakit"), quiet=1)
    return stale


def _imported_sources(setup: str, runtime: str, layout: Layout) -> list[Path]:
    """The .py files a runtime imports before its first GET next (one ``-X importtime`` spawn)."""
    try:
        _, output = spawn_once(setup, runtime, layout, PROBE_TIMEOUT_S, ["-X", "importtime"])
    except (OSError, RuntimeError, TimeoutError) as exc:
        print(f"[{setup}/{runtime}] import probe failed: {exc}", file=sys.stderr)
        return []  # the cold starts will fail the same way and say so
    lines = [line for line in output if line.startswith("import time:") and "|" in line]
    names = [line.rsplit("|", 1)[1].strip() for line in lines[1:]]  # [0] is the header
    if RUNTIMES[runtime][0] == "-m":  # runpy loads the -m module's code without importing it
        names.append(RUNTIMES[runtime][1] + ".__main__")
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    search = [layout.code_dir, layout.deploy_dir, layout.site_packages, stdlib]
    sources: list[Path] = []
    for name in names:
        rel = Path(*name.split("."))
        for candidate in (rel.with_suffix(".py"), rel / "__init__.py"):
            found = next((d / candidate for d in search if (d / candidate).is_file()), None)
            if found is not None:  # built-in, frozen and extension modules have no .py
                sources.append(found)
                break
    return sources


def _bytecode(sources: dict[str, list[Path]]) -> dict[str, Any]:
    """Per variant: how many .py files it imports, and which lack a fresh .pyc (should be none)."""
    return {
        key: {"sources": len(paths), "stale": [str(p) for p in paths if not pyc_is_fresh(p)]}
        for key, paths in sources.items()
    }


def _spawn_env(setup: str, layout: Layout, port: int) -> dict[str, str]:
    """A clean Lambda-like environment: no inherited PYTHON*/AWS_* variables."""
    drop = ("AWS_", "PYTHON", "LAMBDA_", "_HANDLER", "_X_AMZN")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(LAMBDA_ENV)
    env["LAMBDA_TASK_ROOT"] = str(layout.code_dir)
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # bytecode is precompiled; nothing gets written
    if setup == "deploy":
        env["PYTHONPATH"] = f"{layout.deploy_dir}:{layout.site_packages}"
    env["AWS_LAMBDA_RUNTIME_API"] = f"127.0.0.1:{port}"
    return env


def _spawn_argv(setup: str, runtime: str) -> list[str]:
    return [PY, *(["-S"] if setup == "deploy" else []), *RUNTIMES[runtime]]


@dataclass(frozen=True)
class Spawn:
    ms: float  # spawn -> the request line of the first GET next
    rss_mb: float  # VmRSS of the runtime at that moment


def _accept(listener: socket.socket, proc: Managed, deadline: float) -> socket.socket:
    while True:
        try:
            conn, _ = listener.accept()
            return conn
        except TimeoutError:
            pass
        if not proc.alive():
            raise RuntimeError(f"exited ({proc.proc.returncode}) before connecting: {proc.tail(8)}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"no connection: {proc.tail(8)}")


def _request_line(conn: socket.socket, proc: Managed, deadline: float) -> bytes:
    conn.settimeout(POLL_S)
    buf = b""
    while b"\r\n" not in buf:
        if time.monotonic() > deadline or len(buf) > MAX_REQUEST_LINE:
            raise TimeoutError(f"no request line: {buf[:100]!r} {proc.tail(8)}")
        try:
            chunk = conn.recv(4096)
        except TimeoutError:
            if not proc.alive():
                raise RuntimeError(f"exited ({proc.proc.returncode}): {proc.tail(8)}") from None
            continue
        if not chunk:
            raise RuntimeError(f"connection closed before a request line: {proc.tail(8)}")
        buf += chunk
    return buf.split(b"\r\n", 1)[0]


def spawn_once(
    setup: str, runtime: str, layout: Layout, timeout: float, flags: Sequence[str] = ()
) -> tuple[Spawn, list[str]]:
    """Spawn one runtime, time it to its first GET next, read its RSS, then kill and reap it.

    Returns the measurement and the process's output (stdout and stderr, the last lines).
    """
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.settimeout(POLL_S)
        env = _spawn_env(setup, layout, listener.getsockname()[1])
        argv = _spawn_argv(setup, runtime)
        argv[1:1] = flags
        deadline = time.monotonic() + timeout
        t0 = time.perf_counter_ns()
        proc = Managed(f"{setup}/{runtime}", argv, env, layout.code_dir)
        try:
            with _accept(listener, proc, deadline) as conn:
                line = _request_line(conn, proc, deadline)
                t1 = time.perf_counter_ns()
                rss = rss_mb(proc.pid)  # the runtime is blocked waiting for its first event
                if not line.startswith(NEXT_LINE):
                    raise RuntimeError(f"first request was not GET next: {line[:120]!r}")
        finally:
            proc.kill()
    return Spawn((t1 - t0) / NS_PER_MS, rss), proc.tail(LOG_TAIL_LINES)


def _stats(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0}
    ordered = sorted(values)
    return {
        "n": len(values),
        "median": statistics.median(ordered),
        "p10": _pct(ordered, 10),
        "p90": _pct(ordered, 90),
        "mean": statistics.fmean(ordered),
        "min": ordered[0],
        "max": ordered[-1],
    }


def _pct(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of sorted values (the one bench.load uses)."""
    rank = max(1, min(len(ordered), round(q / 100.0 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _coldstart(plan: Plan, layout: Layout) -> dict[str, Any]:
    """All (setup, runtime) pairs, one spawn each per round, the order rotating every round."""
    pairs = [(setup, rt) for setup in SETUPS for rt in RUNTIMES]
    rounds: dict[tuple[str, str], list[Spawn | None]] = {p: [] for p in pairs}
    errors: dict[tuple[str, str], list[str]] = {p: [] for p in pairs}
    recompiled: list[str] = []
    busy0, own0, kids0 = machine_busy_seconds(), own_cpu_seconds(), reaped_children_cpu_seconds()
    wall0, load0 = time.monotonic(), os.getloadavg()
    for rnd in range(plan.spawns):
        recompiled += _compile_lambdakit()  # cheap when fresh; keeps up with edits during a run
        shift = rnd % len(pairs)
        for setup, rt in pairs[shift:] + pairs[:shift]:
            if len(errors[(setup, rt)]) >= MAX_ERRORS:
                rounds[(setup, rt)].append(None)
                continue
            try:
                sample: Spawn | None = spawn_once(setup, rt, layout, plan.spawn_timeout_s)[0]
            except (OSError, RuntimeError, TimeoutError) as exc:
                sample = None
                errors[(setup, rt)].append(f"{type(exc).__name__}: {exc}"[:400])
                print(f"[{setup}/{rt}] spawn failed: {exc}", file=sys.stderr)
            rounds[(setup, rt)].append(sample)
        if (rnd + 1) % 10 == 0 or rnd + 1 == plan.spawns:
            print(f"[coldstart] round {rnd + 1}/{plan.spawns}", file=sys.stderr)
    phase_s = time.monotonic() - wall0
    ours = own_cpu_seconds() - own0 + reaped_children_cpu_seconds() - kids0
    other = (machine_busy_seconds() - busy0 - ours) / phase_s if phase_s > 0 else 0.0
    out: dict[str, Any] = {
        "seconds": phase_s,
        "other_load_cpus": max(0.0, other),
        "loadavg_before": load0,
        "loadavg_after": os.getloadavg(),
        "recompiled_during_run": sorted(set(recompiled)),
    }
    for setup in SETUPS:
        section: dict[str, Any] = {}
        for rt in RUNTIMES:
            got = [s for s in rounds[(setup, rt)] if s is not None]
            section[rt] = {
                "argv": _spawn_argv(setup, rt),
                "ms": _stats([s.ms for s in got]),
                "rss_mb": _stats([s.rss_mb for s in got]),
                "samples_ms": [round(s.ms, 3) for s in got],
                "errors": errors[(setup, rt)],
            }
        paired = [
            lk.ms / ric.ms
            for lk, ric in zip(
                rounds[(setup, "lambdakit")], rounds[(setup, "awslambdaric")], strict=True
            )
            if lk is not None and ric is not None
        ]
        section["summary"] = _coldstart_summary(section, paired)
        out[setup] = section
    return out


def _minus(a: float | None, b: float | None) -> float | None:
    return a - b if a is not None and b is not None else None


def _coldstart_summary(section: dict[str, Any], paired: list[float]) -> dict[str, Any]:
    def fig(rt: str, kind: str, stat: str) -> float | None:
        value: float | None = section[rt][kind].get(stat)
        return value

    floor = fig("floor", "ms", "median")
    lk, ric = fig("lambdakit", "ms", "median"), fig("awslambdaric", "ms", "median")
    return {
        "ratio_median": _ratio(lk, ric),
        "ratio_p90": _ratio(fig("lambdakit", "ms", "p90"), fig("awslambdaric", "ms", "p90")),
        "ratio_paired_median": statistics.median(paired) if paired else None,
        "lambdakit_above_floor_ms": _minus(lk, floor),
        "awslambdaric_above_floor_ms": _minus(ric, floor),
        "rss_ratio": _ratio(
            fig("lambdakit", "rss_mb", "median"), fig("awslambdaric", "rss_mb", "median")
        ),
    }


def _serve_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def start_served(key: str, runtime_argv: Sequence[str], layout: Layout) -> Server:
    """``lambdakit serve --port 0 --no-freeze`` running a runtime; waits for its listening line."""
    argv = [
        *serve_argv(),
        "--port", "0",
        "--function-name", "bench",
        "--code-dir", str(layout.code_dir),
        "--no-freeze",
        "--concurrency", "1",
        "--timeout", "30",
        "--log-format", "text",
        "--",
        *runtime_argv,
    ]  # fmt: skip
    proc = Managed(f"serve-{key}", argv, _serve_env(), cwd=layout.code_dir)
    try:
        match = proc.wait_for_line(LISTENING, SERVE_START_TIMEOUT_S)
    except BaseException:
        proc.stop()
        raise
    return Server("serve", proc, int(match.group(1)), INVOKE_PATH)


def _runtime_pid(server: Server, runtime_argv: Sequence[str]) -> int:
    """The runtime process serve started (its environment), found by its command line."""
    for pid, _ in descendants(server.pid):
        if cmdline(pid)[-2:] == list(runtime_argv[-2:]):
            return pid
    raise RuntimeError(
        f"no runtime process under serve (pid {server.pid}): {server.process.tail(8)}"
    )


@dataclass
class _Served:
    """One runtime under its own lambdakit serve, and what its warm rounds measured."""

    key: str
    server: Server
    argv: list[str]
    runtime_pid: int = 0
    invokes: int = 0
    cpu_s: float = 0.0
    serve_cpu_s: float = 0.0
    latencies_ns: list[int] = field(default_factory=list)
    rounds: list[dict[str, float]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    after_warmup: dict[str, float] = field(default_factory=dict)

    def warm_up(self, plan: Plan) -> None:
        res = load.sequential(self.server.port, INVOKE_PATH, plan.warmup, plan.round_max_s)
        self.errors += res.errors
        self.runtime_pid = _runtime_pid(self.server, self.argv)
        self.after_warmup = {
            "rss_mb": rss_mb(self.runtime_pid),
            "threads": thread_count(self.runtime_pid),
        }

    def measure_round(self, plan: Plan, rnd: int) -> float:
        """One round of sequential invocations; returns the CPU the two processes spent."""
        try:
            rt0, srv0 = cpu_seconds(self.runtime_pid), cpu_seconds(self.server.pid)
            res = load.sequential(self.server.port, INVOKE_PATH, plan.per_round, plan.round_max_s)
            rt_s = cpu_seconds(self.runtime_pid) - rt0
            srv_s = cpu_seconds(self.server.pid) - srv0
        except ProcessLookupError as exc:
            self.errors.append(f"process {exc} gone during round {rnd + 1}")
            return 0.0
        self.errors += res.errors
        n = len(res.latencies_ns)
        if n and not res.errors:  # a round with failures says nothing about one invocation
            self.invokes += n
            self.cpu_s += rt_s
            self.serve_cpu_s += srv_s
            self.latencies_ns += res.latencies_ns
            p50 = load.percentile(sorted(res.latencies_ns), 50) / NS_PER_MS
            self.rounds.append({"invokes": n, "cpu_us_per_invoke": rt_s / n * 1e6, "p50_ms": p50})
            print(f"[warm {self.key}] round {rnd + 1}: {rt_s / n * 1e6:.1f} µs", file=sys.stderr)
        return rt_s + srv_s

    def result(self) -> dict[str, Any]:
        n, ordered = self.invokes, sorted(self.latencies_ns)
        alive = self.server.process.alive()
        return {
            "argv": self.argv,
            "invokes": n,
            "cpu_us_per_invoke": self.cpu_s / n * 1e6 if n else None,
            "serve_cpu_us_per_invoke": self.serve_cpu_s / n * 1e6 if n else None,
            "p50_ms": load.percentile(ordered, 50) / NS_PER_MS if n else None,
            "p99_ms": load.percentile(ordered, 99) / NS_PER_MS if n else None,
            "rss_mb_after_warmup": self.after_warmup.get("rss_mb"),
            "threads_after_warmup": self.after_warmup.get("threads"),
            "rss_mb_after_rounds": rss_mb(self.runtime_pid) if alive and self.runtime_pid else None,
            "rounds": self.rounds,
            "errors": self.errors[:10],
        }


@contextlib.contextmanager
def _all_served(layout: Layout, errors: dict[str, str]) -> Iterator[list[_Served]]:
    """One lambdakit serve per runtime; every one stopped and reaped on the way out."""
    with contextlib.ExitStack() as stack:
        served: list[_Served] = []
        for key, argv in SERVED.items():
            try:
                server = start_served(key, argv, layout)
            except (OSError, RuntimeError, TimeoutError) as exc:
                errors[key] = f"{type(exc).__name__}: {exc}"
                print(f"[serve-{key}] failed to start: {exc}", file=sys.stderr)
                continue
            stack.callback(server.stop)
            served.append(_Served(key, server, list(argv)))
        yield served


def _warm_cpu(plan: Plan, layout: Layout) -> dict[str, Any]:
    """Sequential warm invocations through serve, the runtimes alternating in rounds."""
    start_errors: dict[str, str] = {}
    out: dict[str, Any] = {"start_errors": start_errors}
    with _all_served(layout, start_errors) as served:
        for sv in served:
            try:
                sv.warm_up(plan)
            except (OSError, RuntimeError) as exc:
                sv.errors.append(f"warm-up: {type(exc).__name__}: {exc}")
        busy0, own0, wall0 = machine_busy_seconds(), own_cpu_seconds(), time.monotonic()
        ours = 0.0
        for rnd in range(plan.rounds):
            shift = rnd % max(1, len(served))
            for sv in served[shift:] + served[:shift]:
                if sv.runtime_pid and len(sv.errors) < MAX_ERRORS:
                    ours += sv.measure_round(plan, rnd)
        phase_s = time.monotonic() - wall0
        ours += own_cpu_seconds() - own0
        other = (machine_busy_seconds() - busy0 - ours) / phase_s if phase_s > 0 else 0.0
        out.update({"seconds": phase_s, "other_load_cpus": max(0.0, other)})
        out.update({sv.key: sv.result() for sv in served})
    lk, ric = out.get("lambdakit") or {}, out.get("awslambdaric") or {}
    paired = [
        a["cpu_us_per_invoke"] / b["cpu_us_per_invoke"]
        for a, b in zip(lk.get("rounds", []), ric.get("rounds", []), strict=False)
        if b["cpu_us_per_invoke"]
    ]
    out["summary"] = {
        "cpu_ratio": _ratio(lk.get("cpu_us_per_invoke"), ric.get("cpu_us_per_invoke")),
        "cpu_ratio_paired_median": statistics.median(paired) if paired else None,
    }
    return out


def run(plan: Plan) -> dict[str, Any]:
    results: dict[str, Any] = {"machine": machine_info(), "plan": asdict(plan)}
    results["machine"]["awslambdaric_version"] = package_version("awslambdaric")
    with _layout() as layout:
        compiled = _compile_lambdakit()
        sources = {
            f"{setup}/{rt}": _imported_sources(setup, rt, layout)
            for setup in SETUPS
            for rt in RUNTIMES
        }
        before = _bytecode(sources)
        results["coldstart"] = _coldstart(plan, layout)
        results["bytecode"] = {
            "compiled_before_run": compiled,
            "recompiled_during_coldstarts": results["coldstart"].pop("recompiled_during_run"),
            "imported_before": before,
            "imported_after_coldstarts": _bytecode(sources),
        }
        _compile_lambdakit()  # for the runtimes serve is about to start
        results["warm"] = _warm_cpu(plan, layout)
    cold, warm = results["coldstart"], results["warm"]
    results["summary"] = _targets(cold, warm)
    return results


def _targets(cold: dict[str, Any], warm: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for setup in SETUPS:
        summ = cold[setup]["summary"]
        ratio, rss = summ["ratio_median"], summ["rss_ratio"]
        out[f"coldstart_{setup}_ok"] = None if ratio is None else ratio <= TARGET_COLDSTART_RATIO
        out[f"rss_{setup}_ok"] = None if rss is None else rss <= TARGET_RSS_RATIO
    cpu = warm["summary"]["cpu_ratio"]
    out["cpu_ok"] = None if cpu is None else cpu <= TARGET_CPU_RATIO
    return out


def _row(
    label: str, figures: dict[str, Any], fmt: str, target: str = "", ok: bool | None = None
) -> str:
    """A table row: floor, awslambdaric, lambdakit, lambdakit / awslambdaric, target, met."""
    ratio = _x(_ratio(figures.get("lambdakit"), figures.get("awslambdaric")))
    cells = [num(figures.get(rt), fmt) for rt in RUNTIMES]
    return "| " + " | ".join([label, *cells, ratio, target, met(ok) if target else ""]) + " |\n"


def render_markdown(results: dict[str, Any]) -> str:
    cold, warm, summ = results["coldstart"], results["warm"], results["summary"]
    rows: list[str] = []
    for setup in SETUPS:
        sec, title = cold[setup], SETUP_TITLES[setup]

        def figs(kind: str, stat: str, sec: dict[str, Any] = sec) -> dict[str, Any]:
            return {rt: sec[rt][kind].get(stat) for rt in RUNTIMES}

        above = {
            "floor": 0.0,
            "awslambdaric": sec["summary"]["awslambdaric_above_floor_ms"],
            "lambdakit": sec["summary"]["lambdakit_above_floor_ms"],
        }
        rows += [
            _row(f"cold start, median ms — {title}", figs("ms", "median"), ".1f",
                 f"<= {TARGET_COLDSTART_RATIO}x", summ[f"coldstart_{setup}_ok"]),
            _row(f"cold start, p90 ms — {setup}", figs("ms", "p90"), ".1f"),
            _row(f"cold start above the floor, median ms — {setup}", above, ".1f"),
            _row(f"RSS at first `GET next`, median MB — {setup}", figs("rss_mb", "median"), ".1f",
                 f"<= {TARGET_RSS_RATIO:.0f}x", summ[f"rss_{setup}_ok"]),
        ]  # fmt: skip

    def wfigs(name: str) -> dict[str, Any]:
        return {rt: (warm.get(rt) or {}).get(name) for rt in RUNTIMES}

    rows += [
        _row("runtime CPU per warm invocation, µs (under lambdakit serve)",
             wfigs("cpu_us_per_invoke"), ".1f", f"<= {TARGET_CPU_RATIO:.0f}x", summ["cpu_ok"]),
        _row("warm invocation p50 through lambdakit serve, ms", wfigs("p50_ms"), ".3f"),
        _row("runtime RSS after warm-up, MB", wfigs("rss_mb_after_warmup"), ".1f"),
    ]  # fmt: skip
    head = (
        "| | floor | awslambdaric | lambdakit.runtime | lambdakit / awslambdaric | target | met |"
    )
    head += "\n|---|---:|---:|---:|---:|---|---|\n"
    return head + "".join(rows) + "\n" + "\n".join(f"- {n}" for n in _notes(results)) + "\n"


def _x(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def _notes(results: dict[str, Any]) -> list[str]:
    m, cold, warm = results["machine"], results["coldstart"], results["warm"]
    plan = results["plan"]
    n_warm = (warm.get("lambdakit") or {}).get("invokes", 0)
    notes = [
        f"Measured {m.get('date', '?')} on {m.get('nproc', '?')} CPUs "
        f"({m.get('cpu_model') or '?'}), Python {m.get('python', '?')}, awslambdaric "
        f"{m.get('awslambdaric_version') or '?'}, lambdakit {m.get('lambdakit_version') or '?'} "
        f"({m.get('git_commit') or 'uncommitted'}).",
        f"Cold start: {plan['spawns']} spawns of each (setup, runtime) pair, the six interleaved "
        "in rounds with a rotating order; timed from just before `Popen` to the request line of "
        "the first `GET /2018-06-01/runtime/invocation/next` on a raw-socket listener in the "
        "harness, RSS (VmRSS) read at that moment, then the process killed. Handler: "
        "`mod.handler` returning its event. Floor: `python [-S] -c` connecting with `_socket` "
        "and sending GET next, nothing else. Deployment-like: `python -S`, "
        "PYTHONPATH=`deploy/` (lambdakit) + the venv's site-packages (awslambdaric), no `site`, "
        "no `.pth` files. Bytecode precompiled for everything imported (see below).",
        f"Median over rounds of lambdakit / awslambdaric (same round): deployment-like "
        f"{_x(cold['deploy']['summary']['ratio_paired_median'])}, venv "
        f"{_x(cold['venv']['summary']['ratio_paired_median'])}.",
        f"Warm CPU: each runtime under its own `lambdakit serve --no-freeze --concurrency 1`, "
        f"{plan['warmup']} warm-up invocations, then {plan['rounds']} rounds of "
        f"{plan['per_round']} sequential invocations over one keep-alive connection, the three "
        f"alternating ({n_warm} counted for lambdakit); CPU is utime+stime of the runtime process "
        "(serve's child, `/proc/PID/stat`, all threads) over the rounds. Floor: "
        "bench/minimal_runtime.py (raw-socket echo runtime). Median over rounds of lambdakit / "
        f"awslambdaric: {_x(warm['summary']['cpu_ratio_paired_median'])}.",
    ]
    load_cold, load_warm = cold.get("other_load_cpus", 0.0), warm.get("other_load_cpus", 0.0)
    la0, la1 = cold.get("loadavg_before") or [0.0], cold.get("loadavg_after") or [0.0]
    notes.append(
        f"Other processes kept {load_cold:.2f} CPUs busy during the cold starts "
        f"({cold.get('seconds', 0.0):.0f} s; load average {la0[0]:.2f} before, {la1[0]:.2f} "
        f"after) and {load_warm:.2f} CPUs during the warm rounds "
        f"({warm.get('seconds', 0.0):.0f} s)."
    )
    if max(load_cold, load_warm) > BUSY_MACHINE_CPUS:
        notes.append(
            "**The machine was busy with other work during the run: absolute figures are "
            "inflated; the ratios hold better, the variants having alternated.**"
        )
    notes.append(_bytecode_note(results))
    for setup in SETUPS:
        for rt in RUNTIMES:
            errs = cold[setup][rt]["errors"]
            if errs:
                notes.append(f"{setup}/{rt}: {len(errs)} failed spawns; first: `{errs[0][:200]}`")
    for rt in SERVED:
        werrs = (warm.get(rt) or {}).get("errors") or []
        if werrs:
            notes.append(f"warm {rt}: {len(werrs)} errors; first: `{werrs[0][:200]}`")
    for key, err in (warm.get("start_errors") or {}).items():
        notes.append(f"serve with {key} did not start: {err.splitlines()[0][:200]}")
    if results["plan"]["spawns"] < Plan().spawns:
        notes.append("**A --quick run: a smoke test, too few samples for the figures to hold.**")
    return notes


def _bytecode_note(results: dict[str, Any]) -> str:
    code = results["bytecode"]
    counts = ", ".join(f"{key} {info['sources']}" for key, info in code["imported_before"].items())
    stale = {
        key: len(info["stale"])
        for when in ("imported_before", "imported_after_coldstarts")
        for key, info in code[when].items()
        if info["stale"]
    }
    text = (
        f"Bytecode: the .py files each variant imports before its first GET next (found with one "
        f"`-X importtime` spawn each: {counts}) all had a fresh .pyc before and after the cold "
        "starts."
        if not stale
        else f"**Bytecode: some imported .py files had no fresh .pyc: {stale}.**"
    )
    if code["compiled_before_run"]:
        text += (
            f" The harness first compiled {len(code['compiled_before_run'])} stale lambdakit files."
        )
    if code["recompiled_during_coldstarts"]:
        text += (
            f" {len(code['recompiled_during_coldstarts'])} lambdakit files were edited during the "
            "run and recompiled before the next round."
        )
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.runtime_coldstart", description=DESCRIPTION
    )
    parser.add_argument(
        "--quick", action="store_true", help="fewer spawns and invocations (< 30 s)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="directory for the results")
    args = parser.parse_args(argv)
    interrupt_on_signals()
    results = run(Plan.quick() if args.quick else Plan())
    table = render_markdown(results)
    write_results(args.out, "runtime_coldstart", results, table)
    return 0


if __name__ == "__main__":
    exit_with(main)
