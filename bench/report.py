"""The Markdown table of a serve_vs_rie run: lambdakit serve beside AWS's RIE and the daemon."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from bench.rie import REPO

TARGET_P50_RATIO = 0.75
TARGET_CPU_RATIO = 0.6
TARGET_SCALING = 7.5
TARGET_RSS_MB = 60.0
#: Against the Lambda Runtime API Daemon (issue 13): serve / daemon.
TARGET_P50_VS_DAEMON = 1.0
TARGET_CPU_VS_DAEMON = 1.0
TARGET_TPUT8_VS_DAEMON = 1.0
BUSY_MACHINE_CPUS = 0.3  # other processes' load above which the run is flagged


def num(value: Any, fmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return format(value, fmt)


def met(ok: bool | None) -> str:
    return "n/a" if ok is None else ("yes" if ok else "**no**")


def json_safe(value: Any) -> Any:
    """NaN and infinities become null: strict JSON has neither."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def _rie_concurrent(conc: dict[str, Any]) -> str:
    many = conc.get("clients_8") or {}
    if conc.get("server_alive_after") and not many.get("errors"):
        return num(many.get("invokes_per_s"), ".1f")
    what = "exited" if not conc.get("server_alive_after") else "stayed up"
    status = conc.get("server_exit_status")
    panic = " after a Go panic" if conc.get("panic_lines") else ""
    return (
        f"{what}{panic} (status {status}): {many.get('ok', 0)} ok, {many.get('errors', 0)} failed"
    )


def _x(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def _targets(*pairs: tuple[str, bool | None]) -> str:
    """``met`` for one target, or ``peer: met`` for each when there are several."""
    if len(pairs) == 1:
        return met(pairs[0][1])
    return "; ".join(f"{who}: {met(ok)}" for who, ok in pairs)


def _le(value: float | None, target: float) -> bool | None:
    return None if value is None else value <= target


def _ge(value: float | None, target: float) -> bool | None:
    return None if value is None else value >= target


def render_markdown(results: dict[str, Any]) -> str:
    seq = results.get("sequential", {})
    tput = results.get("throughput", {})
    conc = results.get("concurrent", {})
    summ = results.get("summary", {})
    vsd = summ.get("vs_daemon") or {}
    errors = results.get("start_errors") or {}
    rie, dmn, srv = seq.get("rie") or {}, seq.get("daemon") or {}, seq.get("serve") or {}
    tdmn, tsrv = tput.get("daemon") or {}, tput.get("serve") or {}
    shaped = results.get("sequential_http_client", {})
    hrie, hdmn = shaped.get("rie") or {}, shaped.get("daemon") or {}
    hsrv = shaped.get("serve") or {}
    crie, cdmn, csrv = conc.get("rie") or {}, conc.get("daemon") or {}, conc.get("serve") or {}
    missing = "not measured" if "daemon" in errors else "n/a"

    def cols(field: str, fmt: str, a: dict[str, Any], b: dict[str, Any], c: dict[str, Any]):
        def one(section: dict[str, Any], absent: str) -> str:
            return num(section.get(field), fmt) if section else absent

        return one(a, "n/a"), one(b, missing), one(c, "n/a")

    def ratio(field: str, peer: dict[str, Any], mine: dict[str, Any] = srv) -> str:
        a, b = mine.get(field), peer.get(field)
        return f"{a / b:.2f}x" if a is not None and b else "n/a"

    p50r, cpur = summ.get("p50_ratio"), summ.get("cpu_ratio")
    p50d, cpud, tputd = vsd.get("p50_ratio"), vsd.get("cpu_ratio"), vsd.get("tput8_ratio")
    scaling, rss = summ.get("serve_scaling_8"), summ.get("serve_idle_rss_mb")
    one_rie, one_dmn = crie.get("one_client") or {}, cdmn.get("one_client") or {}
    one_srv = csrv.get("one_client") or {}
    c8_dmn, c8_srv = cdmn.get("clients_8") or {}, csrv.get("clients_8") or {}
    cpu = "server_cpu_us_per_invoke"
    rows = [
        ("warm p50, ms", *cols("p50_ms", ".3f", rie, dmn, srv), ratio("p50_ms", rie),
         ratio("p50_ms", dmn), f"<= {TARGET_P50_RATIO}x RIE; <= {TARGET_P50_VS_DAEMON}x daemon",
         _targets(("RIE", _le(p50r, TARGET_P50_RATIO)),
                  ("daemon", _le(p50d, TARGET_P50_VS_DAEMON)))),
        ("warm p50, ms, http.client runtime", *cols("p50_ms", ".3f", hrie, hdmn, hsrv),
         ratio("p50_ms", hrie, hsrv), ratio("p50_ms", hdmn, hsrv), "", ""),
        ("warm p99, ms", *cols("p99_ms", ".3f", rie, dmn, srv), ratio("p99_ms", rie),
         ratio("p99_ms", dmn), "", ""),
        ("warm max, ms", *cols("max_ms", ".2f", rie, dmn, srv), "", "", "", ""),
        ("warm invokes/s, 1 connection", *cols("invokes_per_s", ".0f", rie, dmn, srv),
         ratio("invokes_per_s", rie), ratio("invokes_per_s", dmn), "", ""),
        ("server CPU per warm invoke, µs", *cols(cpu, ".0f", rie, dmn, srv), ratio(cpu, rie),
         ratio(cpu, dmn), f"<= {TARGET_CPU_RATIO}x RIE; <= {TARGET_CPU_VS_DAEMON}x daemon",
         _targets(("RIE", _le(cpur, TARGET_CPU_RATIO)),
                  ("daemon", _le(cpud, TARGET_CPU_VS_DAEMON)))),
        ("runtime CPU per warm invoke, µs (same runtime)",
         *cols("runtime_cpu_us_per_invoke", ".0f", rie, dmn, srv), "", "", "", ""),
        ("8 clients, echo runtime, invokes/s", "n/a (one invocation at a time)",
         num(tdmn.get("invokes_per_s"), ".0f") if tdmn else missing,
         num(tsrv.get("invokes_per_s"), ".0f"), "", ratio("invokes_per_s", tdmn, tsrv),
         f">= {TARGET_TPUT8_VS_DAEMON}x daemon", met(_ge(tputd, TARGET_TPUT8_VS_DAEMON))),
        ("8 clients, echo runtime, server CPU per invoke, µs", "n/a",
         num(tdmn.get(cpu), ".0f") if tdmn else missing, num(tsrv.get(cpu), ".0f"), "",
         ratio(cpu, tdmn, tsrv), "", ""),
        ("8 clients, echo runtime, p50 / p99, ms", "n/a",
         f"{num(tdmn.get('p50_ms'), '.2f')} / {num(tdmn.get('p99_ms'), '.2f')}" if tdmn
         else missing,
         f"{num(tsrv.get('p50_ms'), '.2f')} / {num(tsrv.get('p99_ms'), '.2f')}", "", "", "", ""),
        ("20 ms handler, 1 client, invokes/s", num(one_rie.get("invokes_per_s"), ".1f"),
         num(one_dmn.get("invokes_per_s"), ".1f") if cdmn else missing,
         num(one_srv.get("invokes_per_s"), ".1f"), "", "", "", ""),
        ("20 ms handler, 8 clients, invokes/s", _rie_concurrent(crie) if crie else "n/a",
         num(c8_dmn.get("invokes_per_s"), ".1f") if cdmn else missing,
         num(c8_srv.get("invokes_per_s"), ".1f"), "", _x(vsd.get("sleep20_clients8_ratio")),
         "", ""),
        ("20 ms handler, 8 clients / 1 client", "n/a (one invocation at a time)",
         (num(summ.get("daemon_scaling_8"), ".2f") + "x") if cdmn else missing,
         num(scaling, ".2f") + "x", "", "", f">= {TARGET_SCALING}x",
         met(_ge(scaling, TARGET_SCALING))),
        ("idle RSS of the server, MB", *cols("idle_rss_mb_after_warmup", ".1f", rie, dmn, srv),
         "", "", f"<= {TARGET_RSS_MB:.0f} MB", met(_le(rss, TARGET_RSS_MB))),
    ]  # fmt: skip
    head = (
        "| | AWS RIE | LRA daemon | lambdakit serve | serve / RIE | serve / daemon "
        "| target | met |\n|---|---:|---:|---:|---:|---:|---|---|\n"
    )
    body = "".join("| " + " | ".join(r) + " |\n" for r in rows)
    return head + body + "\n" + "\n".join(f"- {n}" for n in _notes(results)) + "\n"


def _notes(results: dict[str, Any]) -> list[str]:
    seq = results.get("sequential", {})
    tput = results.get("throughput", {})
    conc = results.get("concurrent", {})
    summ = results.get("summary", {})
    vsd = summ.get("vs_daemon") or {}
    m = results.get("machine", {})
    d = results.get("daemon") or {}
    rie_src = (m.get("rie") or {}).get("source", "?")
    errors = results.get("start_errors") or {}
    dmn_src = f"version {d.get('version')}" if d.get("version") else "not measured"
    if "daemon" not in errors and d.get("sha256"):
        dmn_src += f" (binary sha256 {d['sha256'][:12]})"
    notes = [
        f"Measured {m.get('date', '?')} on {m.get('nproc', '?')} CPUs "
        f"({m.get('cpu_model') or '?'}), Python {m.get('python', '?')} "
        f"({m.get('python_executable') or 'interpreter not recorded'}), RIE from {rie_src}, "
        f"the Lambda Runtime API Daemon (LRA daemon; github.com/fadams/lambda-runtime-api-daemon, "
        f"Go, built by shared/tools/daemon.sh) {dmn_src}, "
        f"lambdakit {m.get('lambdakit_version') or '?'} ({m.get('git_commit') or 'uncommitted'}).",
        "Sequential: "
        + " / ".join(
            f"{(seq.get(k) or {}).get('invokes', 0)} ({k})" for k in ("rie", "daemon", "serve")
        )
        + " warm invocations over one keep-alive connection, the servers taking turns in rounds "
        "(the order rotating); the same stdlib runtime (bench/minimal_runtime.py) echoing the "
        "event. CPU is utime+stime of the server process alone (/proc/PID/stat), the runtime "
        "excluded. The daemon and serve may each start up to 8 runtimes (MAX_CONCURRENCY=8, "
        "--concurrency 8).",
        "The first row is the servers' own cost, with that lean runtime (the README's figure); "
        "the second is the same phase with the minimal runtime as an http.client loop "
        "(BENCH_RUNTIME_CLIENT=http.client: separate head and body writes, Nagle on), the shape "
        "of most hand-written Python runtimes, in fresh servers: serve / RIE "
        + _x(
            ((summ.get("http_client_runtime") or {}).get("rie") or {}).get(
                "p50_ratio_median_of_rounds"
            )
        )
        + ", serve / daemon "
        + _x(
            ((summ.get("http_client_runtime") or {}).get("daemon") or {}).get(
                "p50_ratio_median_of_rounds"
            )
        )
        + " (medians over rounds).",
        "Median over rounds of serve / RIE: "
        f"p50 {_x(summ.get('p50_ratio_median_of_rounds'))}, "
        f"server CPU {_x(summ.get('cpu_ratio_median_of_rounds'))}; of serve / daemon: "
        f"p50 {_x(vsd.get('p50_ratio_median_of_rounds'))}, "
        f"server CPU {_x(vsd.get('cpu_ratio_median_of_rounds'))}, "
        f"8-client invokes/s {_x(vsd.get('tput8_ratio_median_of_rounds'))}.",
        f"Machine load: other processes kept {num(seq.get('other_load_cpus'), '.2f')} CPUs busy "
        f"during the sequential phase (all CPUs: {num(seq.get('busy_cpus'), '.2f')} busy) and "
        f"{num(tput.get('other_load_cpus'), '.2f')} during the 8-client echo phase "
        f"({num(tput.get('busy_cpus'), '.2f')} busy).",
        "8 clients, echo runtime: one keep-alive connection per client thread in this harness "
        "(Python, so the client takes a share of the 2 CPUs); daemon and serve alternate in "
        "rounds after a warm-up that starts their runtimes; runtimes then: "
        f"{(tput.get('daemon') or {}).get('runtime_processes', 'n/a')} (daemon), "
        f"{(tput.get('serve') or {}).get('runtime_processes', 'n/a')} (serve).",
    ]
    busy = max(seq.get("other_load_cpus") or 0.0, tput.get("other_load_cpus") or 0.0)
    if busy > BUSY_MACHINE_CPUS:
        notes.append(
            "**The machine was busy with other work during the run: these figures are not "
            "representative; run again on a quiet machine.**"
        )
    crie = conc.get("rie") or {}
    if crie:
        panic = crie.get("panic_lines") or []
        first = f"; first panic line: `{panic[0][:160]}`" if panic else ""
        notes.append(f"RIE with 8 concurrent clients: {_rie_concurrent(crie)}{first}.")
    for key in ("daemon", "serve"):
        warm = (conc.get(key) or {}).get("warmup") or {}
        if warm.get("errors"):
            sample = (warm.get("samples") or ["?"])[0]
            notes.append(
                f"{key}, 8-client warm-up (cold starts): {warm['errors']} of "
                f"{warm['errors'] + warm.get('ok', 0)} invocations failed; first: `{sample[:200]}`"
            )
        if (tput.get(key) or {}).get("errors"):
            sample = ((tput.get(key) or {}).get("error_samples") or ["?"])[0]
            notes.append(
                f"{key}, 8 clients, echo runtime: {tput[key]['errors']} invocations failed; "
                f"first: `{sample[:200]}`"
            )
    source = results.get("serve_lambdakit")
    if source and Path(source).parent != REPO:
        notes.append(
            f"lambdakit serve imported lambdakit from `{source}` (PYTHONPATH="
            f"`{results.get('pythonpath')}`), not from this checkout: the git commit above "
            "describes the checkout, not what ran."
        )
    extra = results.get("serve_extra_args")
    if extra:
        notes.append(f"lambdakit serve ran with extra options: `{' '.join(extra)}`")
    denv = results.get("daemon_extra_env")
    if denv:
        notes.append(
            "the daemon ran with extra environment: `"
            + " ".join(f"{k}={v}" for k, v in denv.items())
            + "`"
        )
    for key, err in errors.items():
        if key == "daemon":
            notes.append(f"LRA daemon: {err.splitlines()[0][:400]}")
        else:
            notes.append(f"{key} did not start: {err.splitlines()[0][:200]}")
    return notes


def write_results(out: Path, name: str, results: dict[str, Any], table: str) -> None:
    """``out/NAME.json`` and ``out/NAME.md``, and the table on stdout."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(json_safe(results), indent=2) + "\n")
    (out / f"{name}.md").write_text(table)
    print(table)


def exit_with(main: Callable[[], int]) -> NoReturn:
    """Run a benchmark's ``main``; Ctrl-C (every child already stopped) exits with 130."""
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted; every process was stopped", file=sys.stderr)
        sys.exit(130)
