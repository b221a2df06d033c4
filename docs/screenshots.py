"""Take docs/live-view.png: the live view of a real ``lambdakit serve`` in headless Chromium.

Run from the repository with the venv: ``.venv/bin/python docs/screenshots.py [OUT.png]``.
Four functions (tests/fixtures/functions/live): ``checkout`` works after its response,
``thumbnails`` fails now and then, ``reports`` runs into its 1 s timeout once, and ``batch``
(Lambda Managed Instances) runs several invocations at once in one environment.  The browser is
Debian's ``chromium`` (``make chromium``), driven by Playwright.
"""

from __future__ import annotations

import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.serving import Serve, running_serve  # noqa: E402

CONFIG = REPO / "tests" / "fixtures" / "functions" / "live" / "lambdakit.toml"
CHROMIUM = "/usr/bin/chromium"


def traffic(serve: Serve) -> str:
    """A few seconds of invocations; returns the request id of one worth opening."""
    calls: list[tuple[float, str, dict[str, object]]] = []
    for n in range(11):
        calls.append((n * 0.75, "checkout", {"n": n, "before": 0.05, "after": 0.3 + (n % 3) * 0.2}))
        calls.append((0.3 + n * 0.8, "thumbnails", {"n": n + 1, "before": 0.15, "every": 4}))
    calls += [(0.2, "reports", {"seconds": 0.4}), (2.5, "reports", {"seconds": 3})]
    calls += [(5.5, "reports", {"seconds": 0.5}), (7.0, "reports", {"seconds": 0.3})]
    calls += [(n * 0.75 + 0.1, "checkout", {"n": 20 + n, "after": 0.4}) for n in (1, 2, 5, 7, 9)]
    calls += [(1.0 + n * 0.35, "batch", {"n": n, "before": 1.2, "after": 0}) for n in range(3)]
    calls += [(5.0 + n * 0.2, "batch", {"n": n, "before": 0.9, "after": 0}) for n in range(3)]
    start = time.monotonic()

    def call(at: float, function: str, payload: dict[str, object]) -> tuple[str, str]:
        time.sleep(max(at - (time.monotonic() - start), 0))
        _, headers, _ = serve.invoke(function, json.dumps(payload).encode())
        return function, headers.get("x-amzn-requestid", "")

    with ThreadPoolExecutor(12) as pool:
        done = list(pool.map(lambda c: call(*c), sorted(calls, key=lambda c: c[0])))
    return [rid for function, rid in done if function == "checkout"][-3]


def main() -> int:
    from playwright.sync_api import sync_playwright

    out = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "docs" / "live-view.png"
    with running_serve("--config", str(CONFIG)) as serve, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 720})
            page.goto(serve.url + "/_lambdakit/")
            page.wait_for_selector('#conn[data-connected="true"]')
            page.select_option("#window", "10000")
            opened = traffic(serve)
            time.sleep(0.6)
            page.click("#pause")
            page.click(f'.inv[data-request-id="{opened}"]')
            page.wait_for_selector('#panel[data-open="true"]')
            page.screenshot(path=str(out))
        finally:
            browser.close()
    sys.stdout.write(f"wrote {out}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
