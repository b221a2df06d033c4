"""``python -m lambdakit.extensions run TARGET [SCRIPT]``, for a shebang line."""

from __future__ import annotations

import os
import sys

from lambdakit.extensions.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], os.environ))
