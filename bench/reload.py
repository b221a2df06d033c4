"""Hot reload: from saving a handler to the first answer from the new code (``serve --watch``).

Run: ``python -m bench.reload [--quick]``. Writes bench/results/reload.json and .md.

Two functions, each under its own ``lambdakit serve --watch`` (a fresh code directory in a
temporary directory, a fresh ``--state-dir``): lambdakit's Python runtime (``app.handler``) and
the tests' bash+curl runtime (``tests/fixtures/runtimes/bash``, ``function.version``).  The
handler answers ``{"version": N}``; an edit rewrites the file with N + 1.  Two series per
function, N edits each:

1. **Under load** (reload-to-ready): a client invokes back to back on one keep-alive
   connection; the time from just before the file is written to the first answer carrying the
   new version.  Every answer is checked: none may fail (an error, a non-200, a function error).
   It includes the watcher's debounce (an answer comes once no change came for
   ``lambdakit.emulator.watch.STEP_MS``), the new environment's Init and one invocation.
2. **Warm again at once**: write, let the reload settle (1 s, no invocation), then invoke once:
   that invocation's latency beside a warm invocation's (the median of 20 just after it).  With
   the pre-warm it pays no Init.

Edits are 0.5 s apart or more, so that each is its own reload.  Medians and p90 over the edits.
"""

from __future__ import annotations

import argparse
import http.client
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.machine import machine_info
from bench.procs import Managed, interrupt_on_signals
from bench.report import exit_with, num, write_results
from bench.rie import REPO
from bench.servers import START_TIMEOUT_S, _base_env, serve_argv

DESCRIPTION = "serve --watch: from a saved handler to the first answer from the new code."
RESULTS_DIR = Path(__file__).resolve().parent / "results"
BASH_RUNTIME = REPO / "tests" / "fixtures" / "runtimes" / "bash"
KEYS = ("python", "bash")
LABELS = {"python": "lambdakit's Python runtime", "bash": "bash+curl runtime"}
_PYTHON = "def handler(event, context):\n    return {{'version': {version}}}\n"
_BASH = "\nversion () {{\n  printf '{{\"version\": {version}}}'\n}}\n"
#: How long a single edit may take to show, at most (a bound, not a figure).
_EDIT_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Plan:
    edits: int = 20
    settle_s: float = 1.0
    warm_samples: int = 20

    @classmethod
    def quick(cls) -> Plan:
        return cls(edits=5)


class Function:
    """A code directory whose handler answers ``{"version": N}``, and how to edit it."""

    def __init__(self, key: str, root: Path) -> None:
        self.key = key
        self.directory = root / key
        self.version = 1
        if key == "python":
            self.directory.mkdir()
            self.file = self.directory / "app.py"
            self._base = ""
            self._template = _PYTHON
            self.flags = ["app.handler"]
        else:
            shutil.copytree(BASH_RUNTIME, self.directory)
            self.file = self.directory / "function.sh"
            self._base = self.file.read_text()
            self._template = _BASH
            self.flags = ["--handler", "function.version"]
        self._write()

    def _write(self) -> None:
        self.file.write_text(self._base + self._template.format(version=self.version))

    def edit(self) -> int:
        """Write the next version; its number."""
        self.version += 1
        self._write()
        return self.version


class Client:
    """One keep-alive connection; answers' versions, failures counted."""

    def __init__(self, port: int) -> None:
        self._conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.failures: list[str] = []

    def version(self) -> int | None:
        try:
            self._conn.request("POST", "/2015-03-31/functions/function/invocations", b"{}")
            response = self._conn.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException) as exc:
            self.failures.append(f"{type(exc).__name__}: {exc}")
            self._conn.close()
            return None
        if response.status != 200 or response.getheader("X-Amz-Function-Error"):
            self.failures.append(f"HTTP {response.status}: {body[:200]!r}")
            return None
        return int(json.loads(body)["version"])

    def close(self) -> None:
        self._conn.close()


@contextmanager
def _serving(function: Function, state: Path) -> Iterator[tuple[Managed, int]]:
    argv = [
        *serve_argv(),
        "--port",
        "0",
        "--watch",
        "--code-dir",
        str(function.directory),
        "--state-dir",
        str(state / function.key),
        "--timeout",
        "30",
        *function.flags,
    ]
    serve = Managed(f"serve --watch ({function.key})", argv, _base_env(0), cwd=REPO)
    try:
        match = serve.wait_for_line(r"listening on http://127\.0\.0\.1:(\d+)", START_TIMEOUT_S)
        serve.wait_for_line(r"watching .* for changes", START_TIMEOUT_S)
        yield serve, int(match.group(1))
    finally:
        serve.stop()


def _under_load(function: Function, port: int, edits: int) -> tuple[list[float], list[str]]:
    """Reload-to-ready of each edit, with a client invoking back to back."""
    client = Client(port)
    latest = [function.version]
    stop = threading.Event()
    seen = threading.Condition()

    def invoke() -> None:
        while not stop.is_set():
            version = client.version()
            if version is not None:
                with seen:
                    latest[0] = version
                    seen.notify_all()

    thread = threading.Thread(target=invoke, daemon=True)
    thread.start()
    times: list[float] = []
    try:
        for _ in range(edits):
            time.sleep(0.5)
            started = time.perf_counter()
            version = function.edit()

            def answered(version: int = version) -> bool:
                return latest[0] == version

            with seen:
                shown = seen.wait_for(answered, _EDIT_TIMEOUT_S)
            if not shown:
                raise RuntimeError(f"{function.key}: version {version} never answered")
            times.append(time.perf_counter() - started)
    finally:
        stop.set()
        thread.join(60)
        client.close()
    return times, client.failures


def _timed(call: Callable[[], int | None]) -> tuple[float, int | None]:
    started = time.perf_counter()
    answer = call()
    return time.perf_counter() - started, answer


def _warm_again(function: Function, port: int, plan: Plan) -> dict[str, Any]:
    """The first invocation after a settled reload, beside warm invocations."""
    client = Client(port)
    first, warm = [], []
    try:
        for _ in range(plan.edits):
            version = function.edit()
            time.sleep(plan.settle_s)
            latency, answered = _timed(client.version)
            if answered != version:
                raise RuntimeError(f"{function.key}: answered {answered}, expected {version}")
            first.append(latency)
            warm.append(
                statistics.median(_timed(client.version)[0] for _ in range(plan.warm_samples))
            )
    finally:
        client.close()
    return {"first_s": first, "warm_s": warm, "failures": client.failures}


def _summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "median_ms": statistics.median(ordered) * 1000,
        "p90_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))] * 1000,
        "max_ms": ordered[-1] * 1000,
    }


def run(plan: Plan) -> dict[str, Any]:
    from lambdakit.emulator.watch import STEP_MS

    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="lambdakit-bench-reload-") as root:
        for key in KEYS:
            function = Function(key, Path(root))
            with _serving(function, Path(root) / "state") as (serve, port):
                Client(port).version()  # the first environment's Init
                loaded, failures = _under_load(function, port, plan.edits)
                again = _warm_again(function, port, plan)
                reloads = sum(1 for line in serve.tail(400) if "changed: reloading" in line)
            figures[key] = {
                "reload_to_ready": _summary(loaded),
                "reload_to_ready_s": loaded,
                "first_after_reload": _summary(again["first_s"]),
                "warm": _summary(again["warm_s"]),
                "raw": again,
                "failures": failures + again["failures"],
                "reload_lines_in_tail": reloads,
            }
            print(
                f"[{key}] reload-to-ready median "
                f"{figures[key]['reload_to_ready']['median_ms']:.0f} ms",
                file=sys.stderr,
            )
    return {
        "machine": machine_info(),
        "plan": plan.__dict__,
        "step_ms": STEP_MS,
        "figures": figures,
    }


def render_markdown(results: dict[str, Any]) -> str:
    figures = results["figures"]
    lines = [
        f"| | {' | '.join(LABELS[k] for k in KEYS)} |",
        "|---|" + "---:|" * len(KEYS),
    ]

    def row(label: str, pick: Callable[[dict[str, Any]], float], fmt: str = ".0f") -> None:
        lines.append(f"| {label} | {' | '.join(num(pick(figures[k]), fmt) for k in KEYS)} |")

    row("reload-to-ready, median ms", lambda f: f["reload_to_ready"]["median_ms"])
    row("reload-to-ready, p90 ms", lambda f: f["reload_to_ready"]["p90_ms"])
    row(
        "first invocation after a settled reload, median ms",
        lambda f: f["first_after_reload"]["median_ms"],
        ".2f",
    )
    row("warm invocation, median ms", lambda f: f["warm"]["median_ms"], ".2f")
    lines.append(
        f"| failed invocations | {' | '.join(str(len(figures[k]['failures'])) for k in KEYS)} |"
    )
    machine, plan = results["machine"], results["plan"]
    lines += [
        "",
        f"- Measured {machine['date']} on {machine['nproc']} CPUs, Python {machine['python']}, "
        f"lambdakit {machine.get('lambdakit_version')} ({machine.get('git_commit')}).",
        f"- {plan['edits']} edits per function and series. Reload-to-ready: from just before the "
        "handler's file is written to the first answer from the new code, a client invoking back "
        f"to back meanwhile; it includes the watcher's debounce step ({results['step_ms']} ms "
        "without a further change), the new environment's Init and one invocation.",
        f"- First invocation after a settled reload: {plan['settle_s']:g} s after the edit, no "
        "invocation meanwhile; the pre-warmed environment answers it, so it pays no Init. "
        f"Warm: the median of {plan['warm_samples']} invocations just after it.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.reload", description=DESCRIPTION)
    parser.add_argument("--quick", action="store_true", help="fewer edits")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="directory for the results")
    args = parser.parse_args(argv)
    interrupt_on_signals()
    results = run(Plan.quick() if args.quick else Plan())
    write_results(args.out, "reload", results, render_markdown(results))
    return 0


if __name__ == "__main__":
    exit_with(main)
