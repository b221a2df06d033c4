"""``python -m lambdakit.postrun [OPTIONS] [--] RUNTIME_COMMAND [ARGS...]``."""

from __future__ import annotations

import os
import sys

from lambdakit.postrun.cli import main

sys.exit(main(sys.argv[1:], os.environ))
