"""Tries to take another function's invocation, as any process of the same user could try.

Any process can read another's environment in /proc, and so the address of its Runtime API;
``lambdakit serve`` closes a connection from a process outside the environment at once.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from typing import Any


def runtime_api_of(function: str) -> str | None:
    """The Runtime API address of a process of ``function`` (read from /proc/PID/environ)."""
    wanted = f"AWS_LAMBDA_FUNCTION_NAME={function}".encode()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/environ", "rb") as environ:
                variables = environ.read().split(b"\0")
        except OSError:
            continue
        if wanted in variables:
            for variable in variables:
                if variable.startswith(b"AWS_LAMBDA_RUNTIME_API="):
                    return variable.split(b"=", 1)[1].decode()
    return None


def handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    api = runtime_api_of(event["victim"])
    if api is None:
        return {"victim": event["victim"], "runtime_api": None}
    url = f"http://{api}/2018-06-01/runtime/invocation/next"
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            outcome = f"HTTP {response.status}: got an event"
    except urllib.error.HTTPError as exc:
        outcome = f"HTTP {exc.code}"
    except OSError as exc:
        outcome = f"refused: {exc}"
    return {"victim": event["victim"], "runtime_api": api, "next": outcome}
