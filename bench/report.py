"""The Markdown table of a serve-vs-RIE run."""

from __future__ import annotations

import math
from typing import Any

TARGET_P50_RATIO = 0.75
TARGET_CPU_RATIO = 0.6
TARGET_SCALING = 7.5
TARGET_RSS_MB = 60.0
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


def render_markdown(results: dict[str, Any]) -> str:
    seq = results.get("sequential", {})
    conc = results.get("concurrent", {})
    summ = results.get("summary", {})
    rie, srv = seq.get("rie") or {}, seq.get("serve") or {}
    crie, csrv = conc.get("rie") or {}, conc.get("serve") or {}

    def ratio(field: str, fmt: str = ".2f") -> str:
        a, b = srv.get(field), rie.get(field)
        return f"{a / b:{fmt}}x" if a is not None and b else "n/a"

    p50r, cpur = summ.get("p50_ratio"), summ.get("cpu_ratio")
    scaling, rss = summ.get("serve_scaling_8"), summ.get("serve_idle_rss_mb")
    one_rie, one_srv = crie.get("one_client") or {}, csrv.get("one_client") or {}
    rows = [
        (
            "warm p50, ms",
            num(rie.get("p50_ms"), ".3f"),
            num(srv.get("p50_ms"), ".3f"),
            ratio("p50_ms"),
            f"<= {TARGET_P50_RATIO}x RIE",
            met(None if p50r is None else p50r <= TARGET_P50_RATIO),
        ),
        ("warm p99, ms", num(rie.get("p99_ms"), ".3f"), num(srv.get("p99_ms"), ".3f"),
         ratio("p99_ms"), "", ""),
        ("warm max, ms", num(rie.get("max_ms"), ".2f"), num(srv.get("max_ms"), ".2f"),
         "", "", ""),
        ("warm invokes/s, 1 connection", num(rie.get("invokes_per_s"), ".0f"),
         num(srv.get("invokes_per_s"), ".0f"), ratio("invokes_per_s"), "", ""),
        (
            "server CPU per warm invoke, µs",
            num(rie.get("server_cpu_us_per_invoke"), ".0f"),
            num(srv.get("server_cpu_us_per_invoke"), ".0f"),
            ratio("server_cpu_us_per_invoke"),
            f"<= {TARGET_CPU_RATIO}x RIE",
            met(None if cpur is None else cpur <= TARGET_CPU_RATIO),
        ),
        (
            "runtime CPU per warm invoke, µs (same runtime)",
            num(rie.get("runtime_cpu_us_per_invoke"), ".0f"),
            num(srv.get("runtime_cpu_us_per_invoke"), ".0f"),
            "", "", "",
        ),
        ("20 ms handler, 1 client, invokes/s", num(one_rie.get("invokes_per_s"), ".1f"),
         num(one_srv.get("invokes_per_s"), ".1f"), "", "", ""),
        ("20 ms handler, 8 clients, invokes/s", _rie_concurrent(crie) if crie else "n/a",
         num((csrv.get("clients_8") or {}).get("invokes_per_s"), ".1f"), "", "", ""),
        ("8 clients / 1 client", "n/a (one invocation at a time)", num(scaling, ".2f") + "x",
         "", f">= {TARGET_SCALING}x", met(None if scaling is None else scaling >= TARGET_SCALING)),
        ("idle RSS of the server, MB", num(rie.get("idle_rss_mb_after_warmup"), ".1f"),
         num(rss, ".1f"), "", f"<= {TARGET_RSS_MB:.0f} MB",
         met(None if rss is None else rss <= TARGET_RSS_MB)),
    ]  # fmt: skip
    head = "| | AWS RIE | lambdakit serve | serve / RIE | target | met |\n"
    head += "|---|---:|---:|---:|---|---|\n"
    body = "".join("| " + " | ".join(r) + " |\n" for r in rows)
    m = results.get("machine", {})
    rie_src = (m.get("rie") or {}).get("source", "?")
    notes = [
        f"Measured {m.get('date', '?')} on {m.get('nproc', '?')} CPUs "
        f"({m.get('cpu_model') or '?'}), Python {m.get('python', '?')}, RIE from {rie_src}, "
        f"lambdakit {m.get('lambdakit_version') or '?'} ({m.get('git_commit') or 'uncommitted'}).",
        f"Sequential: {rie.get('invokes', 0)} (RIE) / {srv.get('invokes', 0)} (serve) warm "
        "invocations over one keep-alive connection, the servers alternating in rounds; the same "
        "stdlib runtime (bench/minimal_runtime.py) echoing the event. CPU is utime+stime of the "
        "server process alone (/proc/PID/stat), the runtime excluded.",
    ]
    p50m, cpum = summ.get("p50_ratio_median_of_rounds"), summ.get("cpu_ratio_median_of_rounds")
    notes.append(
        f"Median over paired rounds of serve / RIE: p50 {num(p50m, '.2f')}x, "
        f"server CPU {num(cpum, '.2f')}x. Other processes kept "
        f"{num(seq.get('other_load_cpus'), '.2f')} CPUs busy during the sequential phase."
    )
    if (seq.get("other_load_cpus") or 0.0) > BUSY_MACHINE_CPUS:
        notes.append(
            "**The machine was busy with other work during the run: these figures are not "
            "representative; run again on a quiet machine.**"
        )
    if crie:
        panic = crie.get("panic_lines") or []
        first = f"; first panic line: `{panic[0][:160]}`" if panic else ""
        notes.append(f"RIE with 8 concurrent clients: {_rie_concurrent(crie)}{first}.")
    warm = csrv.get("warmup") or {}
    if warm.get("errors"):
        sample = (warm.get("samples") or ["?"])[0]
        notes.append(
            f"serve, 8-client warm-up (cold starts): {warm['errors']} of "
            f"{warm['errors'] + warm.get('ok', 0)} invocations failed; first: `{sample[:200]}`"
        )
    extra = results.get("serve_extra_args")
    if extra:
        notes.append(f"lambdakit serve ran with extra options: `{' '.join(extra)}`")
    for key, err in (results.get("start_errors") or {}).items():
        notes.append(f"{key} did not start: {err.splitlines()[0][:200]}")
    return head + body + "\n" + "\n".join(f"- {n}" for n in notes) + "\n"
