"""The pieces without a Lambda environment: event shapes, event selection, the command line."""

from __future__ import annotations

import pytest

from lambdakit.extensions import Extension, InvokeEvent, ShutdownEvent
from lambdakit.extensions.cli import load_extension, main
from lambdakit.extensions.client import ExtensionConfigError, ExtensionsApiClient, error_request
from lambdakit.extensions.events import parse_event
from tests.extensions.support import PYEXT


def test_events_are_parsed_from_lambdas_shapes() -> None:
    invoke = parse_event(
        b'{"eventType":"INVOKE","deadlineMs":1542409706888,"requestId":"3da1f2dc",'
        b'"invokedFunctionArn":"arn:aws:lambda:us-east-1:123456789012:function:f",'
        b'"tracing":{"type":"X-Amzn-Trace-Id","value":"Root=1-5f35ae12-0c0fec141ab77a00bc047aa2"}}'
    )
    assert invoke == InvokeEvent(
        "3da1f2dc",
        1542409706888,
        "arn:aws:lambda:us-east-1:123456789012:function:f",
        "Root=1-5f35ae12-0c0fec141ab77a00bc047aa2",
    )
    assert invoke.remaining_ms() == 0  # long past
    shutdown = parse_event(b'{"eventType":"SHUTDOWN","shutdownReason":"spindown","deadlineMs":5}')
    assert shutdown == ShutdownEvent("spindown", 5)
    with pytest.raises(ValueError, match="eventType"):
        parse_event(b'{"eventType":"RESTORE"}')


def test_an_extension_asks_for_invoke_only_when_it_handles_it() -> None:
    class Quiet(Extension):
        def on_shutdown(self, event: ShutdownEvent) -> None: ...

    class Busy(Extension):
        def on_invoke(self, event: InvokeEvent) -> None: ...

    decorated = Extension()
    decorated.invoke(print)
    assert Quiet().events() == ("SHUTDOWN",)
    assert Busy().events() == ("INVOKE", "SHUTDOWN")
    assert decorated.events() == ("INVOKE", "SHUTDOWN")


def test_targets_load_from_a_module_or_a_file() -> None:
    by_file = load_extension(f"{PYEXT / 'audit.py'}:Audit")
    by_module = load_extension("audit:hooks", [str(PYEXT)])
    assert type(by_file).__name__ == "Audit"
    assert isinstance(by_module, Extension)


def test_the_command_line_names_what_is_wrong(capsys: pytest.CaptureFixture[str]) -> None:
    environ = {"AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9"}
    assert main(["run", "no_colon"], environ) == 2
    assert "TARGET must be module:attribute" in capsys.readouterr().err
    assert main(["run", f"{PYEXT / 'audit.py'}:json"], environ) == 2
    assert "is not an Extension" in capsys.readouterr().err
    assert main(["run", f"{PYEXT / 'audit.py'}:Audit", "/opt/extensions/audit"], {}) == 2
    assert "AWS_LAMBDA_RUNTIME_API is not set" in capsys.readouterr().err


def test_the_client_reads_its_address_once_and_names_the_variable() -> None:
    with pytest.raises(ExtensionConfigError, match="AWS_LAMBDA_RUNTIME_API must be host:port"):
        ExtensionsApiClient.from_environ({"AWS_LAMBDA_RUNTIME_API": "nonsense"})
    try:
        raise KeyError("AUDIT_TABLE")
    except KeyError as exc:
        body = error_request("Extension.ConfigInvalid", exc)
    assert body["errorType"] == "Extension.ConfigInvalid"
    assert body["errorMessage"] == "'AUDIT_TABLE'"
    assert "KeyError" in "".join(body["stackTrace"])  # type: ignore[arg-type]
