"""Which AWS credentials a function sees: serve's own by default (as SAM passes them), or
placeholders only with ``--aws-credentials none``; either way serve says so at start."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.serving import running_serve

HANDLER = """\
import os

NAMES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
         "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE")


def handler(event, context):
    return {name: os.environ.get(name) for name in NAMES}
"""
HOST = {
    "AWS_ACCESS_KEY_ID": "AKIAHOSTKEY000000000",
    "AWS_SECRET_ACCESS_KEY": "host-secret",
    "AWS_SESSION_TOKEN": "host-token",
    "AWS_PROFILE": "host-profile",
}


@pytest.fixture
def code_dir(tmp_path: Path) -> Path:
    (tmp_path / "app.py").write_text(HANDLER)
    return tmp_path


def _seen(code_dir: Path, *flags: str) -> tuple[dict[str, str | None], str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    args = ("--code-dir", str(code_dir), *flags, "app.handler")
    with running_serve(*args, env={**environ, **HOST}) as serve:
        status, _, body = serve.invoke("function")
        assert status == 200, body
        return json.loads(body), serve.output()


def test_the_hosts_credentials_reach_the_function_by_default_and_serve_says_so(
    code_dir: Path,
) -> None:
    seen, output = _seen(code_dir)
    assert {name: seen[name] for name in HOST} == HOST
    assert (
        "functions get this shell's AWS credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, "
        "AWS_SESSION_TOKEN, AWS_PROFILE); --aws-credentials none keeps them out"
    ) in output


def test_none_keeps_them_out_and_gives_placeholders(code_dir: Path) -> None:
    seen, output = _seen(code_dir, "--aws-credentials", "none")
    assert seen["AWS_ACCESS_KEY_ID"] not in (None, HOST["AWS_ACCESS_KEY_ID"])  # a placeholder
    assert seen["AWS_SECRET_ACCESS_KEY"] not in (None, HOST["AWS_SECRET_ACCESS_KEY"])
    assert seen["AWS_SESSION_TOKEN"] is None and seen["AWS_PROFILE"] is None
    # An SDK cannot fall back on the user's ~/.aws files either.
    assert seen["AWS_SHARED_CREDENTIALS_FILE"] == os.devnull == seen["AWS_CONFIG_FILE"]
    assert "AWS credentials" not in output
