"""One function cannot take another's invocations through its Runtime API (docs/isolation.md)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path

import pytest

from tests.serving import BASH_RUNTIME, Serve, running_serve

# Function a's handler: finds b's runtime, reads b's Runtime API address from its environment
# (any process of the same user can), holds GET next on it, lets the test invoke b, and posts a
# forged response for whatever event it got.
_THIEF = """
import json
import os
import threading
import time
import urllib.error
import urllib.request


def _victim_api(name):
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as environ:
                variables = dict(
                    item.split(b"=", 1) for item in environ.read().split(b"\\0") if b"=" in item
                )
        except OSError:
            continue
        if variables.get(b"AWS_LAMBDA_FUNCTION_NAME") == name.encode():
            api = variables.get(b"AWS_LAMBDA_RUNTIME_API")
            if api:
                return int(entry), api.decode()
    return None, None


def _call(method, url, body=None):
    request = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return {
                "status": response.status,
                "id": response.headers.get("Lambda-Runtime-Aws-Request-Id"),
                "body": response.read().decode(),
            }
    except urllib.error.HTTPError as exc:
        return {"status": exc.code, "body": exc.read().decode()}
    except OSError as exc:
        return {"refused": repr(exc)}


def steal(event, context):
    pid, api = _victim_api(event["victim"])
    base = f"http://{api}/2018-06-01/runtime"
    got = {}
    holder = threading.Thread(
        target=lambda: got.update(_call("GET", f"{base}/invocation/next")), daemon=True
    )
    holder.start()
    time.sleep(0.5)
    with open(event["ready"], "w") as ready:
        ready.write("holding")
    holder.join(12)
    request_id = got.get("id") or "00000000-0000-0000-0000-000000000000"
    forged = _call(
        "POST", f"{base}/invocation/{request_id}/response", json.dumps({"forged": True}).encode()
    )
    return {"victim": pid, "api": api, "next": got, "forged": forged}
"""


def _config(tmp_path: Path, victim: str) -> Path:
    code = tmp_path / "thief"
    code.mkdir()
    (code / "thief.py").write_text(_THIEF)
    config = tmp_path / "lambdakit.toml"
    config.write_text(f"""
[functions.a]
runtime = "python"
handler = "thief.steal"
code_dir = "{code}"
timeout = 30

[functions.{victim}]
code_dir = "{BASH_RUNTIME}"
handler = "function.echo_event"
""")
    return config


def _wait_for(path: Path, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _theft(serve: Serve, victim: str, ready: Path) -> tuple[int, bytes, dict[str, object]]:
    """b warm and waiting in GET next, a's handler tries to take b's next event and forge its
    response while b is invoked: b's caller's status and body, and what a's handler reports."""
    assert serve.invoke(victim, b'{"warm": true}')[0] == 200
    thief: dict[str, object] = {}

    def run_thief() -> None:
        event = json.dumps({"victim": victim, "ready": str(ready)}).encode()
        status, _, body = serve.invoke("a", event, timeout=60)
        thief.update(status=status, body=json.loads(body))

    thread = threading.Thread(target=run_thief)
    thread.start()
    assert _wait_for(ready), serve.errors()
    status, _, body = serve.invoke(victim, b'{"secret": "for b"}')
    thread.join(60)
    return status, body, thief


@pytest.mark.parametrize("mode", [(), ("--no-cgroups",)], ids=["cgroups", "no-cgroups"])
def test_a_function_cannot_take_another_functions_invocations(
    tmp_path: Path, mode: tuple[str, ...]
) -> None:
    # With cgroups the peer socket's cgroup tells; without, which process holds the socket.
    ready = tmp_path / "ready"
    victim = f"b-{uuid.uuid4().hex[:8]}"  # unique: other tests' serves may run a "b" too
    with running_serve("--config", str(_config(tmp_path, victim)), *mode) as serve:
        status, body, thief = _theft(serve, victim, ready)
        errors = serve.errors()
    # b's caller gets b's own answer, not a forgery.
    assert (status, json.loads(body)) == (200, {"secret": "for b"})
    # a found b's Runtime API, and every call it made there was refused: no event, no forgery.
    assert thief["status"] == 200, thief
    stolen = thief["body"]
    assert isinstance(stolen, dict)
    assert stolen["api"].startswith("127.0.0.1:"), stolen
    assert "refused" in stolen["next"], stolen
    assert "refused" in stolen["forged"], stolen
    # Logged once, for b's environment.
    assert errors.count("refused a connection to its Runtime API") == 1, errors
    assert f"{victim}#1: refused" in errors


def test_without_isolation_any_process_may_call(tmp_path: Path) -> None:
    # --no-isolation is the old behaviour: the thief's GET next reaches b's Runtime API.
    ready = tmp_path / "ready"
    victim = f"b-{uuid.uuid4().hex[:8]}"  # unique: other tests' serves may run a "b" too
    with running_serve("--config", str(_config(tmp_path, victim)), "--no-isolation") as serve:
        _, _, thief = _theft(serve, victim, ready)
    stolen = thief["body"]
    assert isinstance(stolen, dict)
    assert "refused" not in stolen["next"], stolen
