"""The same handlers under awslambdaric and lambdakit.runtime give the caller the same answer.

Both runtimes run under ``lambdakit serve`` (and, for ok/raising, under AWS's RIE): identical
status, X-Amz-Function-Error, errorType, errorMessage and stackTrace (frames trimmed the same way).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.runtime.support import (
    RIE,
    RUNTIMES,
    make_code_dir,
    running_rie,
    serve_handler,
)
from tests.serving import running_serve

CASES = {
    "ok": "app.ok",
    "raising": "app.raising",
    "missing_module": "nomodule.handler",
    "missing_function": "app.nope",
    "syntax_error": "syntax_bad.handler",
    "unserializable": "app.unserializable",
    "malformed_name": "nodot",
    "nested_module": "pkg.sub.mod.fn",
    "nested_slashes": "pkg/sub/mod.fn",
    "nested_attribute": "pkg.sub.mod.fn.extra",
    "init_raises": "init_raises.handler",
    "builtin_conflict": "sys.exit",
}


@pytest.fixture(scope="module")
def code_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_code_dir(tmp_path_factory.mktemp("parity"))


def _outcome(code_dir: Path, handler: str, runtime: str) -> dict[str, object]:
    with serve_handler(code_dir, handler, runtime) as serve:
        status, headers, body = serve.invoke("f", b'{"n": 7}')
    parsed = json.loads(body)
    if isinstance(parsed, dict):
        parsed.pop("requestId", None)
    return {
        "status": status,
        "function_error": headers.get("x-amz-function-error"),
        "body": parsed,
    }


@pytest.mark.parametrize("case", sorted(CASES))
def test_same_result_as_awslambdaric_under_serve(code_dir: Path, case: str) -> None:
    handler = CASES[case]
    reference = _outcome(code_dir, handler, "awslambdaric")
    ours = _outcome(code_dir, handler, "lambdakit")
    assert ours == reference
    if case != "ok" and case not in ("nested_module", "nested_slashes"):
        body = ours["body"]
        assert isinstance(body, dict) and body["errorType"], ours


def test_error_types_are_the_documented_ones(code_dir: Path) -> None:
    expected = {
        "missing_module": (
            "Runtime.ImportModuleError",
            "Unable to import module 'nomodule': No module named 'nomodule'",
        ),
        "missing_function": ("Runtime.HandlerNotFound", "Handler 'nope' missing on module 'app'"),
        "syntax_error": (
            "Runtime.UserCodeSyntaxError",
            "Syntax error in module 'syntax_bad': invalid syntax (syntax_bad.py, line 1)",
        ),
        "malformed_name": (
            "Runtime.MalformedHandlerName",
            "Bad handler 'nodot': not enough values to unpack (expected 2, got 1)",
        ),
        "unserializable": (
            "Runtime.MarshalError",
            "Unable to marshal response: Object of type datetime is not JSON serializable",
        ),
        "raising": ("ValueError", "something went wrong: 7"),
    }
    for case, (error_type, message) in expected.items():
        body = _outcome(code_dir, CASES[case], "lambdakit")["body"]
        assert isinstance(body, dict)
        assert (body["errorType"], body["errorMessage"]) == (error_type, message), case


def test_raising_stack_trace_starts_at_the_handler(code_dir: Path) -> None:
    body = _outcome(code_dir, "app.raising", "lambdakit")["body"]
    assert isinstance(body, dict)
    trace = body["stackTrace"]
    assert isinstance(trace, list) and len(trace) == 1
    assert trace[0].startswith(f'  File "{code_dir / "app.py"}", line ')
    assert "in raising\n" in trace[0]
    assert "lambdakit" not in "".join(trace)


def test_handler_from_environment_when_no_argument(code_dir: Path) -> None:
    args = ["--code-dir", str(code_dir), "--function-name", "f", "--handler", "pkg.sub.mod.fn"]
    with running_serve(*args, "--", *RUNTIMES["lambdakit"]) as serve:
        status, _, body = serve.invoke("f", b"{}")
    assert (status, json.loads(body)) == (200, {"nested": True})


def test_task_root_is_on_sys_path(code_dir: Path) -> None:
    """LAMBDA_TASK_ROOT is importable even when the working directory is elsewhere."""
    command = ["sh", "-c", f"cd / && exec {' '.join(RUNTIMES['lambdakit'])} app.ok"]
    args = ["--code-dir", str(code_dir), "--function-name", "f"]
    with running_serve(*args, "--", *command) as serve:
        status, headers, body = serve.invoke("f", b'{"x": 1}')
    assert status == 200 and "x-amz-function-error" not in headers, body
    assert json.loads(body) == {"hello": "world", "event": {"x": 1}}


needs_rie = pytest.mark.skipif(
    not RIE.exists(), reason=f"AWS RIE binary not found at {RIE} (make fetches it)"
)


@needs_rie
@pytest.mark.parametrize("handler", ["app.ok", "app.raising"])
def test_same_result_as_awslambdaric_under_rie(
    code_dir: Path, tmp_path: Path, handler: str
) -> None:
    results = {}
    for runtime, command in RUNTIMES.items():
        with running_rie(code_dir, [*command, handler], tmp_path) as rie:
            results[runtime] = [rie.invoke(b'{"n": 7}') for _ in range(2)]
    for runtime in RUNTIMES:
        for index, (status, body) in enumerate(results[runtime]):
            parsed = json.loads(body)
            if isinstance(parsed, dict):
                parsed.pop("requestId", None)
            results[runtime][index] = (status, json.dumps(parsed).encode())
    assert results["lambdakit"] == results["awslambdaric"]
    if handler == "app.raising":
        body = json.loads(results["lambdakit"][0][1])
        assert body["errorType"] == "ValueError"
