"""Layers without /opt: each layer directory on the function's paths in Lambda's order, its
extensions started; and ``--env-vars`` with a ``lambdakit.toml``'s functions."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest

from lambdakit.emulator.config import ConfigError
from lambdakit.emulator.serve_command import load_config
from tests.serving import lambda_client, running_serve

VERSION = f"python{sys.version_info.major}.{sys.version_info.minor}"
HANDLER = """\
import os
import shutil
import subprocess

import pick
import same


def handler(event, context):
    return {
        "same": same.WHO,
        "pick": pick.WHO,
        "tool": subprocess.run(["tool"], capture_output=True, text=True).stdout.strip(),
        "tool_path": shutil.which("tool"),
        "ld_library_path": os.environ.get("LD_LIBRARY_PATH", ""),
        "layers": os.environ["LAMBDAKIT_LAYERS"],
        "declared": os.environ.get("DECLARED"),
        "undeclared": os.environ.get("UNDECLARED"),
    }
"""


def _write(path: Path, text: str, executable: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    if executable:
        path.chmod(0o755)


def _extension(path: Path, label: str) -> None:
    """A bash+curl external extension that says ``[label] registered`` once registered."""
    _write(
        path,
        f"""\
        #!/usr/bin/env bash
        set -euo pipefail
        API="http://${{AWS_LAMBDA_RUNTIME_API}}/2020-01-01/extension"
        HEADERS="$(mktemp)"
        curl -sS -D "$HEADERS" -o /dev/null -X POST "$API/register" \\
          -H "Lambda-Extension-Name: $(basename "$0")" -d '{{"events": ["SHUTDOWN"]}}'
        ID=$(grep -Fi Lambda-Extension-Identifier "$HEADERS" | tr -d '[:space:]' | cut -d: -f2)
        rm -f "$HEADERS"
        echo "[{label}] registered"
        curl -sS "$API/event/next" -H "Lambda-Extension-Identifier: $ID" > /dev/null
        """,
        executable=True,
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """Two layers that overlap, a function, its own extensions directory, a lambdakit.toml."""
    a, b = tmp_path / "layer-a", tmp_path / "layer-b"
    _write(a / "python" / "same.py", "WHO = 'a'\n")
    _write(b / "python" / "same.py", "WHO = 'b'\n")  # the later layer wins
    # Lambda's Python path: /opt/python/lib/pythonX.Y/site-packages before /opt/python.
    _write(a / "python" / "lib" / VERSION / "site-packages" / "pick.py", "WHO = 'site-a'\n")
    _write(b / "python" / "pick.py", "WHO = 'python-b'\n")
    _write(a / "bin" / "tool", "#!/bin/sh\necho tool-a\n", executable=True)
    _write(b / "bin" / "tool", "#!/bin/sh\necho tool-b\n", executable=True)
    (a / "lib").mkdir()
    _extension(a / "extensions" / "shared", "shared-a")
    _extension(b / "extensions" / "shared", "shared-b")  # replaces layer-a's
    _extension(a / "extensions" / "only-a", "only-a")
    _extension(tmp_path / "own" / "own", "own")
    _write(tmp_path / "code" / "app.py", HANDLER)
    _write(tmp_path / "env.json", '{"Parameters": {"DECLARED": "json", "UNDECLARED": "x"}}')
    _write(
        tmp_path / "lambdakit.toml",
        """\
        [functions.layered]
        runtime = "python"
        code_dir = "code"
        handler = "app.handler"
        layers = ["layer-a", "layer-b"]
        extensions_dir = "own"
        env = { DECLARED = "toml" }

        [service]
        env_vars = "env.json"
        """,
    )
    return tmp_path


def test_layers_stand_where_lambda_would_merge_them(project: Path) -> None:
    with running_serve("--config", str(project / "lambdakit.toml")) as serve:
        response = lambda_client(serve).invoke(FunctionName="layered", Payload=b"{}")
        result = json.loads(response["Payload"].read())
        assert serve.wait_for_output(r"\[own\] registered")
    a, b = project / "layer-a", project / "layer-b"
    assert result["same"] == "b"
    assert result["pick"] == "site-a"
    assert (result["tool"], result["tool_path"]) == ("tool-b", str(b / "bin" / "tool"))
    assert result["ld_library_path"].split(":")[-1] == str(a / "lib")
    assert result["layers"] == f"{a}:{b}"
    output = serve.output()
    for label in ("shared-b", "only-a", "own"):
        assert f"[{label}] registered" in output
    assert "[shared-a]" not in output
    # --env-vars: Parameters over the declared variable; the undeclared one is not added.
    assert (result["declared"], result["undeclared"]) == ("json", None)
    assert "Parameters.UNDECLARED: no function declares UNDECLARED; not set" in serve.errors()


def test_env_vars_sections_override_parameters_and_name_unknown_functions(project: Path) -> None:
    env = project / "sections.json"
    env.write_text(
        json.dumps(
            {
                "Parameters": {"DECLARED": "shared", "OTHER": "shared"},
                "function": {"DECLARED": "own", "NEW": "x"},
                "nobody": {"DECLARED": "y"},
            }
        )
    )
    loaded = load_config(
        ["--env", "DECLARED=flag", "--env", "OTHER=flag", "--env-vars", str(env), "--", "true"], {}
    )
    assert loaded.service.functions["function"].env == {"DECLARED": "own", "OTHER": "shared"}
    warnings = "\n".join(loaded.warnings)
    assert "function.NEW: function does not declare NEW; not set" in warnings
    assert "section 'nobody' names no function of this service" in warnings


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1, 2]", "must hold an object of sections"),
        ('{"Parameters": []}', "expected an object of NAME: value"),
        ('{"Parameters": {"A": [1]}}', "A: expected text, a number or a boolean"),
        ('{"Parameters": {"1A": "x"}}', "'1A' is not a valid environment variable name"),
        ("{", "is not valid JSON"),
    ],
)
def test_bad_env_vars_files_name_the_flag(tmp_path: Path, text: str, message: str) -> None:
    env = tmp_path / "env.json"
    env.write_text(text)
    with pytest.raises(ConfigError, match=r"^--env-vars") as refused:
        load_config(["--env-vars", str(env), "--", "true"], {})
    assert message in str(refused.value)


def test_a_handler_module_that_a_layer_provides_passes_serves_checks(tmp_path: Path) -> None:
    code, layer = tmp_path / "code", tmp_path / "layer"
    code.mkdir()
    _write(layer / "python" / "shared_handlers.py", "def handler(event, context):\n    return 7\n")
    args = ["--code-dir", str(code), "--layer", str(layer), "shared_handlers.handler"]
    loaded = load_config(args, {})
    assert loaded.service.functions["function"].warnings == ()
    with running_serve(*args) as serve:
        status, _, body = serve.invoke("function")
    assert (status, body) == (200, b"7")
