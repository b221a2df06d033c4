"""Handler mistakes named when serve starts, through the real command line."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.serving import REPO, running_serve


def _serve(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    """A serve that must refuse to start (a hang would time out the test)."""
    return subprocess.run(
        [sys.executable, "-m", "lambdakit", "serve", "--port", "0", *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture
def code(tmp_path: Path) -> Path:
    code = tmp_path / "code"
    (code / "pkg").mkdir(parents=True)
    (code / "app.py").write_text(
        textwrap.dedent(
            """\
            import os

            MARK = os.environ.get("IMPORT_MARK")
            if MARK:
                open(MARK, "w").close()

            def handler(event, context):
                return {"handled": event}

            try:
                import not_a_module_here
            except ImportError:
                def fallback(event, context):
                    return "fallback"

            globals()["made"] = handler
            """
        )
    )
    (code / "pkg" / "__init__.py").write_text("")
    (code / "pkg" / "mod.py").write_text("def fn(event, context):\n    return 'nested'\n")
    (code / "lazy.py").write_text("def __getattr__(name):\n    return lambda e, c: name\n")
    return code


def test_a_misspelled_function_is_a_warning_with_a_suggestion(code: Path) -> None:
    with running_serve("--code-dir", str(code), "app.handlr") as serve:
        assert "listening" in serve.output()
    warning = serve.errors()
    assert "lambdakit serve: warning: HANDLER: app.handlr:" in warning
    assert "app.py defines no 'handlr' at top level (did you mean 'handler'?)" in warning
    assert "Runtime.HandlerNotFound" in warning


def test_a_function_made_at_import_time_still_runs(code: Path) -> None:
    with running_serve("--code-dir", str(code), "--function-name", "f", "app.made") as serve:
        status, headers, body = serve.invoke("f", b'{"a": 1}')
    assert status == 200 and "x-amz-function-error" not in headers
    assert json.loads(body) == {"handled": {"a": 1}}
    assert "defines no 'made'" in serve.errors()  # a warning, not a refusal


@pytest.mark.parametrize("handler", ["app.fallback", "pkg.mod.fn", "pkg/mod.fn", "lazy.anything"])
def test_functions_defined_in_blocks_packages_and_getattr_need_no_warning(
    code: Path, handler: str
) -> None:
    with running_serve("--code-dir", str(code), handler) as serve:
        pass
    assert "warning" not in serve.errors()


def test_serve_does_not_import_the_handler_module(code: Path, tmp_path: Path) -> None:
    mark = tmp_path / "imported"
    args = ("--code-dir", str(code), "--function-name", "f", "--env", f"IMPORT_MARK={mark}")
    with running_serve(*args, "app.handlr") as serve:
        assert not mark.exists()  # checked, listening, and the module never ran
        serve.invoke("f")
    assert mark.exists()  # the runtime imported it, at the invocation


def test_a_handler_without_a_function_part_is_an_error(code: Path) -> None:
    result = _serve("--code-dir", str(code), "app")
    assert result.returncode == 2
    assert result.stderr == (
        "lambdakit serve: error: HANDLER: 'app' names no function: write MODULE.FUNCTION, "
        "e.g. 'app.handler'\n"
    )


def test_a_missing_module_is_an_error_naming_the_code_directory(code: Path) -> None:
    result = _serve("--code-dir", str(code), "apq.handler")
    assert result.returncode == 2
    assert f"no module 'apq' in the code directory '{code}' (--code-dir)" in result.stderr
    assert "did you mean 'app'?" in result.stderr
    assert result.stderr.count("\n") == 1


def test_handler_without_a_runtime_says_which_flag_to_add(code: Path) -> None:
    result = _serve("--code-dir", str(code), "--handler", "app.handler")
    assert result.returncode == 2
    assert "--handler: app.handler names no runtime" in result.stderr
    assert "add --runtime python" in result.stderr


def test_runtime_python_with_handler_runs_it(code: Path) -> None:
    args = ("--code-dir", str(code), "--function-name", "f", "--handler", "app.handler")
    with running_serve(*args, "--runtime", "python") as serve:
        status, _, body = serve.invoke("f", b'{"b": 2}')
    assert (status, json.loads(body)) == (200, {"handled": {"b": 2}})


def test_runtime_python_without_handler_is_an_error(code: Path) -> None:
    result = _serve("--code-dir", str(code), "--runtime", "python")
    assert result.returncode == 2
    assert "--runtime: python needs a handler: give --handler MODULE.FUNCTION" in result.stderr


def test_a_config_file_handler_without_runtime_says_which_key_to_add(
    code: Path, tmp_path: Path
) -> None:
    config = tmp_path / "lambdakit.toml"
    config.write_text(f'[functions.a]\ncode_dir = "{code}"\nhandler = "app.handler"\n')
    result = _serve("--config", str(config))
    assert result.returncode == 2
    assert f"{config} [functions.a] handler: app.handler names no runtime" in result.stderr
    assert 'add runtime = "python"' in result.stderr


def test_a_config_file_misspelled_module_names_the_key(code: Path, tmp_path: Path) -> None:
    config = tmp_path / "lambdakit.toml"
    config.write_text(
        f'[functions.a]\ncode_dir = "{code}"\nruntime = "python"\nhandler = "ap.handler"\n'
    )
    result = _serve("--config", str(config))
    assert result.returncode == 2
    assert f"{config} [functions.a] handler: ap.handler: no module 'ap'" in result.stderr
    assert "[functions.a] code_dir)" in result.stderr


def test_a_syntax_error_is_a_warning_naming_the_line(code: Path) -> None:
    (code / "broken.py").write_text("x = 1\ndef handler(:\n")
    with running_serve("--code-dir", str(code), "broken.handler") as serve:
        pass
    assert "broken.py line 2:" in serve.errors()
    assert "Runtime.UserCodeSyntaxError" in serve.errors()
