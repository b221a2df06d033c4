"""ClientContext and DryRun through boto3, with a Python handler reading its context."""

from __future__ import annotations

import base64
import json

from tests.serving import REPO, lambda_client, running_serve

CONTEXT = REPO / "tests" / "fixtures" / "functions" / "context"


def test_client_context_reaches_the_handler_and_dry_run_runs_nothing() -> None:
    context = {
        "custom": {"tenant": "acme"},
        "env": {"platform": "ios"},
        "client": {"installation_id": "inst-1", "app_title": "Shop"},
    }
    with running_serve("--function-name", "ctx", "--code-dir", str(CONTEXT), "ctx.handler") as s:
        client = lambda_client(s)
        response = client.invoke(
            FunctionName="ctx",
            Payload=b"{}",
            ClientContext=base64.b64encode(json.dumps(context).encode()).decode(),
        )
        plain = client.invoke(FunctionName="ctx", Payload=b"{}")
        dry = client.invoke(FunctionName="ctx", Payload=b"{}", InvocationType="DryRun")
        assert s.wait_for_output(r"^REPORT", count=2)
        starts = s.output().count("START RequestId")
    assert json.loads(response["Payload"].read()) == {
        "custom": {"tenant": "acme"},
        "env": {"platform": "ios"},
        "client": {"installation_id": "inst-1", "app_title": "Shop"},
    }
    assert json.loads(plain["Payload"].read()) == {"client_context": None}
    assert dry["StatusCode"] == 204
    assert starts == 2  # the DryRun started nothing
