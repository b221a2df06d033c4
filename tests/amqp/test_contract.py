"""The AMQP-RPC contract without a broker: what a message becomes, what a reply carries."""

from __future__ import annotations

import base64
import json

from lambdakit.amqp import contract, queues
from lambdakit.wire import errors


def _request(**properties: object) -> dict[str, object]:
    return {"correlation_id": "c-1", "reply_to": "amq.gen-reply", **properties}


def test_a_request_takes_its_id_from_the_correlation_id() -> None:
    decision = contract.read_request(_request(), b'{"a": 1}')
    assert isinstance(decision, contract.RpcRequest)
    assert (decision.request_id, decision.payload, decision.reply_to) == (
        "c-1",
        b'{"a": 1}',
        "amq.gen-reply",
    )


def test_a_correlation_id_in_flight_or_unusable_gets_a_fresh_request_id() -> None:
    taken = contract.read_request(_request(), b"{}", in_flight={"c-1"})
    odd = contract.read_request(_request(correlation_id="a/b c"), b"{}")
    missing = contract.read_request(_request(correlation_id=None), b"{}")
    for decision in (taken, odd, missing):
        assert isinstance(decision, contract.RpcRequest)
        assert decision.request_id not in ("c-1", "a/b c", "")
    assert isinstance(missing, contract.RpcRequest)
    reply = contract.result_reply(
        _request(correlation_id=None),
        missing.request_id,
        "q",
        body=b"{}",
        content_type="application/json",
        function_error="",
        log_result="",
        version="$LATEST",
    )
    assert reply.properties["correlation_id"] == missing.request_id


def test_headers_are_read_without_regard_to_case() -> None:
    context = base64.b64encode(b'{"custom": {"k": "v"}}').decode()
    decision = contract.read_request(
        _request(headers={"x-amz-client-context": context, "X-AMZN-TRACE-ID": "Root=1-a-b"}),
        b"{}",
    )
    assert isinstance(decision, contract.RpcRequest)
    assert json.loads(decision.client_context) == {"custom": {"k": "v"}}
    assert decision.trace_id == "Root=1-a-b"


def test_a_header_of_the_wrong_type_is_refused_not_fatal() -> None:
    for value in (5, b"\xff", True, {"a": 1}):
        decision = contract.read_request(_request(headers={"X-Amzn-Trace-Id": value}), b"{}")
        assert isinstance(decision, contract.Refused)
        assert decision.error_type == errors.INVALID_PARAMETER_VALUE
        assert "X-Amzn-Trace-Id must be a string" in decision.message


def test_bad_client_context_and_oversized_bodies_are_refused() -> None:
    bad = contract.read_request(_request(headers={"X-Amz-Client-Context": "%%%"}), b"{}")
    big = contract.read_request(_request(), b" " * (6 * 1024 * 1024 + 101))
    assert isinstance(bad, contract.Refused) and bad.error_type == errors.INVALID_PARAMETER_VALUE
    assert isinstance(big, contract.Refused) and big.error_type == errors.REQUEST_TOO_LARGE


def test_without_reply_to_a_request_is_dropped_but_an_event_runs() -> None:
    assert isinstance(contract.read_request(_request(reply_to=None), b"{}"), contract.Dropped)
    event = contract.event_message("fn", "r-1", b"{}", accepted_at=1000.0, attempt=2)
    decision = contract.read_request(dict(event.properties), event.body)
    assert isinstance(decision, contract.RpcRequest)
    assert (decision.invocation_type, decision.attempt, decision.accepted_at) == (
        "Event",
        2,
        1000.0,
    )
    assert decision.request_id == "r-1" and event.properties["delivery_mode"] == 2


def test_a_quorum_message_delivered_too_often_is_refused() -> None:
    many = contract.read_request(_request(headers={"x-delivery-count": 5}), b"{}")
    few = contract.read_request(_request(headers={"x-delivery-count": 1}), b"{}")
    assert isinstance(many, contract.Refused) and isinstance(few, contract.RpcRequest)


def test_a_reply_echoes_the_request_but_not_user_id_nor_expiration_and_flags_errors() -> None:
    request = _request(
        user_id="someone",
        expiration="100",
        message_id="m",
        app_id="app",
        headers={"mine": "kept", "X-Amz-Function-Error": "forged"},
    )
    reply = contract.result_reply(
        request,
        "c-1",
        "amq.gen-reply",
        body=b'{"errorType": "ValueError"}',
        content_type="text/plain",
        function_error="Unhandled",
        log_result="",
        version="$LATEST",
    )
    assert reply.routing_key == "amq.gen-reply"
    assert "user_id" not in reply.properties and "expiration" not in reply.properties
    assert (reply.properties["message_id"], reply.properties["app_id"]) == ("m", "app")
    table = reply.properties["headers"]
    assert isinstance(table, dict)
    assert table["mine"] == "kept" and table["X-Amz-Function-Error"] == "Unhandled"
    assert table["x-amzn-RequestId"] == "c-1" and reply.properties["content_type"] == (
        "application/json"
    )
    ok = contract.result_reply(
        request,
        "c-1",
        "q",
        body=b"1",
        content_type="application/json",
        function_error="",
        log_result="",
        version="$LATEST",
    )
    assert "X-Amz-Function-Error" not in ok.properties["headers"]  # type: ignore[operator]


def test_the_gateway_maps_replies_to_the_invoke_apis_answers() -> None:
    refused = contract.refusal_reply(
        _request(), contract.Refused("c-1", "q", errors.REQUEST_TOO_LARGE, "too big")
    )
    answer = contract.invoke_answer(dict(refused.properties), refused.body, "c-1")
    assert answer.status == 413 and ("x-amzn-ErrorType", errors.REQUEST_TOO_LARGE) in answer.fields
    daemon_reply = contract.invoke_answer({"headers": None}, b'{"ok": 1}', "c-2")
    assert daemon_reply.status == 200 and ("x-amzn-RequestId", "c-2") in daemon_reply.fields


def test_queue_declarations_match_the_daemon_by_default() -> None:
    transient = queues.function_queue("echo")
    assert (transient.durable, transient.auto_delete, dict(transient.arguments)) == (
        False,
        True,
        {},
    )
    assert queues.function_queue("echo", "quorum").arguments == {"x-queue-type": "quorum"}
    retry = queues.retry_queue("echo", 1.5)
    assert retry.name == "lambdakit.retry.echo.1500"
    assert retry.arguments["x-dead-letter-routing-key"] == "echo"
