"""``lambdakit serve --template`` on the example SAM project (examples/sam), called with boto3:
its layers (a Python package, a tool on PATH, an extension), Globals, parameters, and
``--env-vars`` in SAM's format."""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path

from tests.serving import REPO, aws_cli, lambda_client, running_serve

EXAMPLE = REPO / "examples" / "sam"
TEMPLATE = str(EXAMPLE / "template.yaml")
#: The HTTP API's event for GET /orders/42 (payload format 2.0), as a caller would send it.
GET_ORDER = {
    "version": "2.0",
    "routeKey": "GET /orders/{id}",
    "rawPath": "/orders/42",
    "pathParameters": {"id": "42"},
    "requestContext": {"http": {"method": "GET", "path": "/orders/42"}},
}


def _invoke(client: object, name: str, event: object) -> dict[str, object]:
    response = client.invoke(FunctionName=name, Payload=json.dumps(event).encode())  # type: ignore[attr-defined]
    assert "FunctionError" not in response, response["Payload"].read()
    result: dict[str, object] = json.loads(response["Payload"].read())
    return result


def test_the_example_template_serves_both_functions_with_their_layers_and_env_vars() -> None:
    env_vars = str(EXAMPLE / "env.json")
    with running_serve("--template", TEMPLATE, "--env-vars", env_vars, "--api-port", "0") as serve:
        client = lambda_client(serve)
        response = _invoke(client, "OrdersFunction", GET_ORDER)
        notified = _invoke(client, "NotifyFunction", {"id": "7"})
        assert serve.wait_for_output(r"\[OrdersFunction\] \[audit\] invoke [0-9a-f-]{36}")
    assert response["statusCode"] == 200
    body = json.loads(str(response["body"]))
    assert body == {
        "order": {"id": "42", "table": "orders-local", "status": "shipped"},  # the SharedLayer
        "stamp": "audited:42",  # the AuditLayer's bin/stamp, on PATH
        "stage": "dev",
        "log_level": "DEBUG",  # env.json's Parameters
        "region_label": "orders in us-east-1",
        "notify_function": "NotifyFunction",
        "audit": "relaxed",
    }
    assert notified == {"notified": "7", "stage": "dev", "level": "DEBUG"}
    output = serve.output()
    # The AuditLayer's extension runs beside OrdersFunction only (NotifyFunction has no such layer).
    assert "[OrdersFunction] [audit] registered for OrdersFunction" in output
    assert "[NotifyFunction] [audit]" not in output
    # The function URL FunctionUrlConfig asked for, on a free port.
    assert re.search(r"function URL of OrdersFunction: http://127\.0\.0\.1:\d+/", output)
    errors = serve.errors()
    for warning in (
        "Globals.Function.Tracing: ignored (there is no X-Ray locally)",
        "Resources.OrdersFunction.Properties.Policies: ignored (IAM is not enforced locally)",
        "Events.Nightly: Type Schedule is not triggered locally",
    ):
        assert f"lambdakit WARNING lambdakit.config: {TEMPLATE} " in errors
        assert warning in errors, errors


def test_parameter_overrides_reach_the_functions_environment(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    overrides = "Stage=prod TableName=orders-prod"
    with running_serve(
        "--template", TEMPLATE, "--parameter-overrides", overrides, "--api-port", "0"
    ) as serve:
        body = json.loads(str(_invoke(lambda_client(serve), "OrdersFunction", GET_ORDER)["body"]))
        cli = aws_cli(
            serve,
            "invoke",
            "--function-name",
            "NotifyFunction",
            "--payload",
            '{"id": "9"}',
            str(out),
        )
    assert (body["stage"], body["audit"], body["log_level"]) == ("prod", "strict", "INFO")
    assert body["order"]["table"] == "orders-prod"
    assert cli.returncode == 0, cli.stderr
    assert json.loads(out.read_text()) == {"notified": "9", "stage": "prod", "level": "INFO"}


def test_the_templates_http_api_event_is_served_on_the_api_gateway_port() -> None:
    env_vars = str(EXAMPLE / "env.json")
    with running_serve("--template", TEMPLATE, "--env-vars", env_vars, "--api-port", "0") as serve:
        match = re.search(r"API Gateway: (http://127\.0\.0\.1:\d+)", serve.output())
        assert match, serve.output()
        assert "GET /orders/{id} -> OrdersFunction (HTTP API, payload 2.0)" in serve.output()
        with urllib.request.urlopen(f"{match.group(1)}/orders/42", timeout=30) as response:
            status, body = response.status, json.loads(response.read())
        preflight = urllib.request.Request(
            f"{match.group(1)}/orders/42",
            method="OPTIONS",
            headers={"Origin": "http://localhost:3000", "Access-Control-Request-Method": "GET"},
        )
        with urllib.request.urlopen(preflight, timeout=30) as response:
            allowed = response.headers["Access-Control-Allow-Origin"]
    assert status == 200
    assert body["order"] == {"id": "42", "table": "orders-local", "status": "shipped"}
    assert allowed == "http://localhost:3000"  # the template's CorsConfiguration
