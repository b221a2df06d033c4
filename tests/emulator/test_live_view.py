"""The live view end to end: a real ``lambdakit serve``, boto3, and a real headless Chromium.

The browser is Debian's ``chromium`` (``make test`` installs it) driven by Playwright for Python;
Playwright's own browser download is never used.
"""

from __future__ import annotations

import http.client
import importlib.util
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.serving import REPO, Serve, lambda_client, running_serve

CHROMIUM = os.environ.get("LAMBDAKIT_CHROMIUM", "/usr/bin/chromium")
CONFIG = REPO / "tests" / "fixtures" / "functions" / "live" / "lambdakit.toml"
AFTER_S = 0.5


def browser_missing() -> str:
    """Why the browser tests cannot run here ("" when they can)."""
    if not Path(CHROMIUM).exists():
        return f"no Chromium at {CHROMIUM} (make test installs Debian's chromium package)"
    if importlib.util.find_spec("playwright") is None:
        return "Playwright for Python is not installed (make test installs the dev extras)"
    return ""


needs_browser = pytest.mark.skipif(bool(browser_missing()), reason=browser_missing() or "-")


@pytest.fixture(scope="module")
def serve() -> Iterator[Serve]:
    with running_serve("--config", str(CONFIG)) as running:
        yield running


def invoke(serve: Serve, function: str, payload: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Invoke with boto3; returns (request id, the response's fields)."""
    client = lambda_client(serve)
    try:
        response = client.invoke(FunctionName=function, Payload=json.dumps(payload))
        response["Payload"] = response["Payload"].read()
    finally:
        client.close()  # its keep-alive connection too
    return response["ResponseMetadata"]["RequestId"], response


def state(serve: Serve) -> dict[str, Any]:
    conn = serve.connection(10)
    try:
        conn.request("GET", "/_lambdakit/state")
        response = conn.getresponse()
        assert response.status == 200
        assert response.getheader("Content-Type") == "application/json"
        result: dict[str, Any] = json.loads(response.read())
        return result
    finally:
        conn.close()


def ended(serve: Serve, request_id: str, timeout: float = 10) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for inv in state(serve)["invocations"]:
            if inv["request_id"] == request_id and inv["ended"] is not None:
                return dict(inv)
        time.sleep(0.05)
    raise AssertionError(f"{request_id} did not end within {timeout} s")


def test_state_json(serve: Serve) -> None:
    request_id, response = invoke(serve, "checkout", {"n": 1, "after": 0.2})
    assert response["StatusCode"] == 200 and "FunctionError" not in response
    inv = ended(serve, request_id)
    assert inv["function"] == "checkout" and inv["status"] == "success"
    assert inv["environment"].startswith("checkout#")
    assert inv["payload_bytes"] == len(json.dumps({"n": 1, "after": 0.2}))
    assert inv["response_bytes"] == len(b'{"ok": true, "n": 1}')
    assert inv["next"]["runtime"] >= inv["responded"] + 0.15
    assert 0.16 <= inv["ended"] - inv["responded"] <= 0.4
    assert inv["billed_duration_ms"] >= 200 and inv["max_memory_used_mb"] > 0
    functions = {f["name"]: f for f in state(serve)["functions"]}
    assert set(functions) == {"checkout", "thumbnails", "reports", "batch"}
    assert functions["checkout"]["counters"]["invocations"] >= 1
    assert functions["checkout"]["environments"]
    conn = serve.connection(10)
    try:
        conn.request("GET", "/_lambdakit/nothing")
        response404 = conn.getresponse()
        assert response404.status == 404
        assert json.loads(response404.read())["error"] == "NotFound"
    finally:
        conn.close()


def read_event(response: http.client.HTTPResponse) -> tuple[str, dict[str, Any]]:
    """The next Server-Sent Event (comments skipped)."""
    fields: dict[str, str] = {}
    while True:
        line = response.readline().decode()
        assert line, "the event stream ended"
        line = line.rstrip("\n")
        if not line:
            if "event" in fields:
                return fields["event"], json.loads(fields["data"])
            continue
        if not line.startswith(":"):
            name, _, value = line.partition(": ")
            fields[name] = value


def test_event_stream(serve: Serve) -> None:
    conn = serve.connection(15)
    try:
        conn.request("GET", "/_lambdakit/events")
        response = conn.getresponse()
        assert response.status == 200
        assert response.getheader("Content-Type", "").startswith("text/event-stream")
        kind, snapshot = read_event(response)
        assert kind == "snapshot" and "now" in snapshot and "functions" in snapshot
        request_id, _ = invoke(serve, "checkout", {"n": 2, "after": 0.2})
        seen: list[str] = []
        lines: list[str] = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            kind, data = read_event(response)
            seen.append(kind)
            if kind == "line" and data["request_id"] == request_id:
                lines.append(data["line"][2])
            if kind == "invocation" and data["request_id"] == request_id and data["ended"]:
                break
        assert data["status"] == "success"
        assert {"invocation", "environment", "function"} <= set(seen)
        assert "answering 2" in lines  # lines flow while a stream is open
        assert any(line == "answering 2" for _, _, line in data["lines"])
    finally:
        conn.close()


@needs_browser
def test_the_page_shows_invocations_and_their_phases(serve: Serve) -> None:
    from playwright.sync_api import sync_playwright

    started = time.monotonic()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 720})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(serve.url + "/_lambdakit/")
            assert page.title() == "lambdakit live view"
            page.wait_for_selector('#conn[data-connected="true"]', timeout=10_000)
            page.wait_for_selector('[data-function-title="checkout"]')
            page.select_option("#window", "10000")

            request_id, _ = invoke(serve, "checkout", {"n": 3, "after": AFTER_S})
            bar = f'.inv[data-request-id="{request_id}"]'
            page.wait_for_selector(f'{bar}[data-status="success"]', timeout=10_000)
            page.click("#pause")
            segment = page.locator(f'{bar} [data-segment="after-response"]')
            box = segment.bounding_box()
            assert box is not None
            ms_per_px = float(page.get_attribute("#timeline", "data-ms-per-px") or 0)
            drawn_ms = box["width"] * ms_per_px
            timed_ms = float(segment.get_attribute("data-end") or 0) - float(
                segment.get_attribute("data-start") or 0
            )
            assert AFTER_S * 800 <= drawn_ms <= AFTER_S * 1200, (drawn_ms, ms_per_px)
            assert AFTER_S * 800 <= timed_ms <= AFTER_S * 1200, timed_ms
            assert page.locator(f'{bar} [data-segment="until-response"]').count() == 1
            page.click("#pause")  # live again

            failed_id, response = invoke(serve, "thumbnails", {"n": 0})
            assert response["FunctionError"] == "Unhandled"
            failed = f'.inv[data-request-id="{failed_id}"]'
            page.wait_for_selector(f'{failed}[data-status="error"]', timeout=10_000)
            page.click("#pause")  # a bar that moves is never stable enough to click
            page.click(failed)
            panel = page.locator(f'#panel[data-open="true"][data-request-id="{failed_id}"]')
            panel.wait_for(timeout=5_000)
            assert panel.locator('.status[data-status="error"]').count() == 1
            assert failed_id in panel.inner_text()
            assert "ValueError" in panel.inner_text()
            chip = page.locator('[data-function="thumbnails"] .chip[data-environment]')
            assert chip.count() >= 1
            assert errors == []
        finally:
            browser.close()
    print(f"browser test: {time.monotonic() - started:.1f} s")


@needs_browser
def test_overlapping_invocations_of_one_environment_get_lanes(serve: Serve) -> None:
    """Managed Instances: invocations at once in one environment are drawn one above another."""
    from concurrent.futures import ThreadPoolExecutor

    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 720})
            page.goto(serve.url + "/_lambdakit/")
            page.wait_for_selector('#conn[data-connected="true"]', timeout=10_000)
            invoke(serve, "batch", {"n": 0, "after": 0})  # Init first: one environment
            payload = {"n": 1, "before": 1.0, "after": 0}
            with ThreadPoolExecutor(3) as pool:
                ids = [rid for rid, _ in pool.map(lambda _: invoke(serve, "batch", payload), "abc")]
            bars = [f'.inv[data-request-id="{rid}"][data-status="success"]' for rid in ids]
            for bar in bars:
                page.wait_for_selector(bar, timeout=10_000)
            page.click("#pause")
            rows = {
                page.locator(bar).evaluate("n => n.closest('.row').dataset.environment")
                for bar in bars
            }
            lanes = sorted(int(page.get_attribute(bar, "data-lane") or -1) for bar in bars)
            tops = {page.locator(bar).bounding_box()["y"] for bar in bars}  # type: ignore[index]
        finally:
            browser.close()
    assert len(rows) == 1  # one environment ran all three
    assert lanes == [0, 1, 2] and len(tops) == 3
