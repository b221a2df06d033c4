"""The work nobody waits for: 3 s, run as an Event invocation of its own function."""

from __future__ import annotations

import json
import time
from typing import Any


def handler(event: Any, context: Any) -> None:
    print(f"follow-up: started with {json.dumps(event)}", flush=True)
    time.sleep(3)
    print("follow-up: done", flush=True)
