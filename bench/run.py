"""Run every benchmark: ``python -m bench.run [--quick]`` (results land in bench/results/)."""

from __future__ import annotations

import sys

from bench import serve_vs_rie

BENCHMARKS = {"serve_vs_rie": serve_vs_rie.main}


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
