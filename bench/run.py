"""Run every benchmark: ``python -m bench.run [--quick]`` (results land in bench/results/)."""

from __future__ import annotations

import sys
from collections.abc import Callable

from bench import (
    amqp_scaleout,
    managed_instances,
    observe_cost,
    postrun_latency,
    reload,
    runtime_coldstart,
    serve_vs_rie,
)

#: postrun_latency's figures for ``--quick`` (it has no such option of its own).
POSTRUN_QUICK = ["--rounds", "3", "--per-round", "100", "--warmup", "50"]


def _postrun_latency(args: list[str]) -> int:
    """postrun_latency.main() reads sys.argv itself and knows no --quick: give it its own argv."""
    own = POSTRUN_QUICK if "--quick" in args else []
    saved = sys.argv
    sys.argv = ["python -m bench.postrun_latency", *own]
    try:
        return postrun_latency.main()
    finally:
        sys.argv = saved


BENCHMARKS: dict[str, Callable[[list[str]], int]] = {
    "serve_vs_rie": serve_vs_rie.main,
    "runtime_coldstart": runtime_coldstart.main,
    "postrun_latency": _postrun_latency,
    "amqp_scaleout": amqp_scaleout.main,
    "managed_instances": managed_instances.main,
    "observe_cost": observe_cost.main,
    "reload": reload.main,
}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    status = 0
    for name, bench_main in BENCHMARKS.items():
        print(f"## {name}\n", flush=True)
        status = max(status, bench_main(args))
    return status


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted; every server was stopped", file=sys.stderr)
        sys.exit(130)
