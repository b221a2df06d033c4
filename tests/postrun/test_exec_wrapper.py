"""Exec-wrapper mode: the layer zip's ``entry.sh`` in front of a Python runtime (awslambdaric)."""

from __future__ import annotations

import json
import re
import stat
import sys
import time
import zipfile
from pathlib import Path

import pytest

from lambdakit.postrun.layer import main as layer_main
from tests.postrun.support import ENTRY_SH, SEED_COMMAND, env_flags, line_index, timed_invoke
from tests.serving import BASH_RUNTIME, running_serve

HANDLER = "def handler(event, context):\n    return {'echo': event, 'id': context.aws_request_id}\n"


@pytest.fixture(scope="module")
def opt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The layer, built with ``lambdakit layer build`` and unpacked as Lambda does into /opt."""
    root = tmp_path_factory.mktemp("layer")
    archive = root / "layer.zip"
    assert layer_main(["build", "--output", str(archive)], {}) == 0
    opt = root / "opt"
    with zipfile.ZipFile(archive) as layer:
        for info in layer.infolist():
            layer.extract(info, opt)
            (opt / info.filename).chmod((info.external_attr >> 16) & 0o777)
    return opt


def test_layer_zip_holds_entry_sh_and_the_stdlib_only_post_runner(opt: Path) -> None:
    entry = opt / "entry.sh"
    assert entry.stat().st_mode & stat.S_IXUSR
    package = opt / "lambdakit-post-run" / "lambdakit"
    assert (package / "postrun" / "runner.py").is_file()
    assert (package / "proxy" / "server.py").is_file()
    assert not (package / "emulator").exists() and not (package / "runtime").exists()
    assert not (package / "postrun" / "layer.py").exists()


def test_seed_check_in_exec_wrapper_mode_with_a_python_handler(opt: Path, tmp_path: Path) -> None:
    pytest.importorskip("awslambdaric")
    (tmp_path / "app.py").write_text(HANDLER)
    flags = (
        "--code-dir", str(tmp_path), "--function-name", "f", "--handler", "app.handler",
        "--concurrency", "1", "--timeout", "10", *env_flags(COMMAND=SEED_COMMAND),
        "--", str(opt / "entry.sh"), sys.executable, "-m", "awslambdaric", "app.handler",
    )  # fmt: skip
    with running_serve(*flags) as serve:
        _, headers, _ = timed_invoke(serve, {"warm": "up"})
        assert serve.wait_for_output(f"done {headers['x-amzn-requestid']}", timeout=15)
        time.sleep(0.2)
        elapsed, headers, body = timed_invoke(serve, {"n": 1})
        responded = time.monotonic()
        first = headers["x-amzn-requestid"]
        assert json.loads(body) == {"echo": {"n": 1}, "id": first}
        assert elapsed < 0.3, f"the caller waited {elapsed:.2f}s"
        _, headers2, _ = timed_invoke(serve, {"n": 2})
        assert serve.wait_for_output(f"^done {first}$", timeout=10)
        assert 1.7 < time.monotonic() - responded < 4.0
        output = serve.output()
        second = headers2["x-amzn-requestid"]
        assert line_index(output, f"^done {first}$") < line_index(
            output, f"START RequestId: {second}"
        )


def test_entry_sh_from_the_source_checkout_runs_a_bash_runtime(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    flags = (
        "--code-dir", str(BASH_RUNTIME), "--function-name", "f", "--handler", "function.echo_event",
        "--concurrency", "1", *env_flags(COMMAND=f"echo $POST_RUNNER_OUTCOME >> {marker}"),
        "--env", f"LAMBDAKIT_POST_RUNNER_PYTHON={sys.executable}",
        "--", str(ENTRY_SH), "./bootstrap",
    )  # fmt: skip
    with running_serve(*flags) as serve:
        timed_invoke(serve, {"a": 1})
        timed_invoke(serve)  # starts after the first command ended (one environment)
    # The second invocation's command may be cut off by the stop: the first one's line counts.
    assert marker.read_text().split()[0] == "response"


def test_entry_sh_without_python_reports_an_init_error() -> None:
    flags = (
        "--code-dir", str(BASH_RUNTIME), "--function-name", "f", "--handler", "function.echo_event",
        *env_flags(COMMAND="true", PATH="/nonexistent", LAMBDAKIT_POST_RUNNER_PYTHON="/no/python"),
        "--", str(ENTRY_SH), "./bootstrap",
    )  # fmt: skip
    with running_serve(*flags) as serve:
        _, headers, body = serve.invoke("f")
        assert headers.get("x-amz-function-error") == "Unhandled"
        error = json.loads(body)
        assert error["errorType"] == "PostRunner.Unavailable"
        assert re.search("no python3 interpreter found", error["errorMessage"])


def test_the_layer_builds_from_a_wheel_install_outside_the_checkout(tmp_path: Path) -> None:
    import subprocess

    from tests.serving import REPO

    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(REPO)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    wheel = next(wheels.glob("lambdakit-*.whl"))
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", "--no-deps", str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    output = tmp_path / "layer.zip"
    result = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "lambdakit", "layer", "build", "-o", str(output)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    names = zipfile.ZipFile(output).namelist()
    assert "entry.sh" in names and "lambdakit-post-run/launch.py" in names
