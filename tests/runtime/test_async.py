"""``async def`` handlers run on one event loop that lives across warm invocations."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.runtime.support import invoke_json, make_code_dir, serve_handler


@pytest.fixture(scope="module")
def code_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_code_dir(tmp_path_factory.mktemp("async"))


def test_one_loop_across_invocations(code_dir: Path) -> None:
    with serve_handler(code_dir, "app.async_handler", "lambdakit", "--concurrency", "1") as serve:
        results = [invoke_json(serve, {}) for _ in range(3)]
    assert all(status == 200 for status, _, _ in results)
    bodies = [body for _, _, body in results]
    assert len({body["pid"] for body in bodies}) == 1
    assert len({body["loop_id"] for body in bodies}) == 1
    # The asyncio.Lock made by the first invocation still works in the later ones.
    assert [body["calls"] for body in bodies] == [1, 2, 3]


def test_uvloop_is_used_when_installed(code_dir: Path) -> None:
    pytest.importorskip("uvloop")
    with serve_handler(code_dir, "app.async_handler") as serve:
        _, _, body = invoke_json(serve, {})
    assert body["loop_type"].startswith("uvloop")


def test_async_exception_is_reported_like_a_sync_one(code_dir: Path) -> None:
    with serve_handler(code_dir, "app.async_raising") as serve:
        status, headers, body = invoke_json(serve, {})
    assert status == 200 and headers["x-amz-function-error"] == "Unhandled"
    assert (body["errorType"], body["errorMessage"]) == ("ValueError", "async boom")
    assert len(body["stackTrace"]) == 1
    assert body["stackTrace"][0].startswith(f'  File "{code_dir / "app.py"}"')
    assert "in async_raising" in body["stackTrace"][0]
