"""``python -m lambdakit.runtime module.handler``: run a handler against the Runtime API."""

from __future__ import annotations

import sys

from lambdakit.runtime.bootstrap import run
from lambdakit.runtime.config import RuntimeConfigError
from lambdakit.runtime.transport import RuntimeApiError


def main() -> int:
    try:
        return run(sys.argv)
    except (RuntimeConfigError, RuntimeApiError) as exc:
        sys.stderr.write(f"lambdakit.runtime: {exc}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
