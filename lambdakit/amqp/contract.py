"""The AMQP-RPC wire contract, with no I/O: message properties in, invocations and replies out.

Theory of operation
-------------------
A request is a message published to the default exchange with the function's name as routing
key (so it lands in the queue named after the function), as the Lambda Runtime API Daemon's
clients publish them (``../shared/reference/amqp-rpc.md``; the Invoke API it mirrors is
https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html):

* the body is the event, passed to the function unchanged;
* ``correlation_id`` becomes the request id when it is one (letters, digits and ``.:_-``, at
  most 128 characters) and, for a first delivery, no invocation with that id is in flight here
  (a redelivery keeps its id even then: it is the same request, given back by the broker after
  this instance's connection broke); otherwise a fresh id is made and the reply carries it in
  ``x-amzn-RequestId`` (and, when the request had no ``correlation_id``, as its
  ``correlation_id`` too, so the caller sees it);
* ``reply_to`` names the queue of the reply; a RequestResponse request without one is dropped
  (acknowledged, logged, never run), since nobody could see its result;
* headers, matched without regard to case: ``X-Amz-Client-Context`` (base64 JSON),
  ``X-Amzn-Trace-Id``, ``X-Amz-Log-Type`` (``Tail``), ``X-Amz-Invocation-Type``
  (``RequestResponse`` or ``Event``).  A header of another AMQP type than a string is answered
  with an ``InvalidParameterValueException`` reply, never a crash.

The reply goes to the default exchange with routing key ``reply_to``.  It keeps the request's
``correlation_id``, ``headers``, ``content_encoding``, ``priority``, ``message_id``,
``timestamp``, ``type``, ``app_id`` and ``delivery_mode`` (as the daemon's replies do), but not
``user_id`` (the broker refuses a publish under another user's id) nor ``expiration``.  Added
headers say how the invocation ended, with the Invoke API's names: ``x-amzn-RequestId`` and
``X-Amz-Executed-Version`` always; ``X-Amz-Function-Error: Unhandled`` for a function error,
timeout, crash or init error (the body is then Lambda's error JSON); ``X-Amz-Log-Result`` for a
log tail; ``x-amzn-ErrorType`` for a request refused before it ran (the body is the Invoke API's
service-error JSON, and :func:`http_status` gives its HTTP status).

An *Event* message (``X-Amz-Invocation-Type: Event``, as ``lambdakit gateway`` publishes them)
needs no ``reply_to``: it is run, and retried by republishing it with ``x-lambdakit-attempt``
one higher (the request id and ``x-lambdakit-accepted-at`` stay), as Lambda retries Event
invocations (https://docs.aws.amazon.com/lambda/latest/dg/invocation-async.html).
"""

from __future__ import annotations

import base64
import datetime
import decimal
import re
import time
import uuid
from collections.abc import Container, Mapping
from dataclasses import dataclass

from lambdakit.wire import errors, headers, limits
from lambdakit.wire.client_context import decode_client_context, trace_header

# Header names as they travel in AMQP header tables (which, unlike HTTP, are case-sensitive:
# we write these spellings and read any).
CLIENT_CONTEXT = "X-Amz-Client-Context"
TRACE_ID = "X-Amzn-Trace-Id"
LOG_TYPE = "X-Amz-Log-Type"
INVOCATION_TYPE = "X-Amz-Invocation-Type"
FUNCTION_ERROR = headers.FUNCTION_ERROR
REQUEST_ID = headers.AMZN_REQUEST_ID
EXECUTED_VERSION = headers.EXECUTED_VERSION
LOG_RESULT = headers.LOG_RESULT
ERROR_TYPE = headers.ERROR_TYPE
#: lambdakit's own, on Event messages: the attempt (1, 2, 3) and when the event was accepted.
ATTEMPT = "x-lambdakit-attempt"
ACCEPTED_AT = "x-lambdakit-accepted-at"
#: Set by quorum queues: how many times the broker delivered this message before.
DELIVERY_COUNT = "x-delivery-count"

#: A quorum queue's message delivered this many times was taken down with its instance each
#: time: it is answered with an error and dropped instead of being delivered again.
REDELIVERY_LIMIT = 5

_REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
_STRING_HEADERS = (CLIENT_CONTEXT, TRACE_ID, LOG_TYPE, INVOCATION_TYPE)
#: Request properties a reply keeps (the daemon keeps these too).
_ECHOED = (
    "correlation_id",
    "content_encoding",
    "priority",
    "message_id",
    "timestamp",
    "message_type",
    "app_id",
    "delivery_mode",
)

#: AMQP properties as plain data: field name -> value (None or absent: not set).
Properties = Mapping[str, object]


@dataclass(frozen=True, slots=True)
class RpcRequest:
    """A request the door will run."""

    request_id: str
    payload: bytes
    invocation_type: str
    reply_to: str
    client_context: str
    trace_id: str
    log_tail: bool
    #: Event messages: which attempt this is (1 for the first) and when the event was accepted.
    attempt: int = 1
    accepted_at: float = 0.0


@dataclass(frozen=True, slots=True)
class Refused:
    """A request answered with a service error without running (``x-amzn-ErrorType``)."""

    request_id: str
    reply_to: str
    error_type: str
    message: str


@dataclass(frozen=True, slots=True)
class Dropped:
    """A request nobody can be answered for: acknowledged and logged, never run."""

    reason: str


def header(table: Mapping[str, object], name: str) -> object:
    """The value of header ``name`` in ``table``, matched without regard to case."""
    if name in table:
        return table[name]
    lowered = name.lower()
    for key, value in table.items():
        if key.lower() == lowered:
            return value
    return None


def read_request(
    properties: Properties,
    body: bytes,
    *,
    redelivered: bool = False,
    in_flight: Container[str] = (),
    now: float | None = None,
) -> RpcRequest | Refused | Dropped:
    """Decide what to do with one delivered message."""
    table = properties.get("headers") or {}
    if not isinstance(table, Mapping):
        table = {}
    correlation_id = properties.get("correlation_id")
    correlation_id = correlation_id if isinstance(correlation_id, str) else ""
    request_id = correlation_id
    if not _REQUEST_ID.fullmatch(request_id) or (not redelivered and request_id in in_flight):
        request_id = str(uuid.uuid4())
    reply_to = properties.get("reply_to")
    reply_to = reply_to if isinstance(reply_to, str) else ""

    def refuse(error_type: str, message: str) -> Refused | Dropped:
        if not reply_to:
            return Dropped(f"refused ({message}) with no reply_to to say so")
        return Refused(request_id, reply_to, error_type, message)

    for name in _STRING_HEADERS:
        value = header(table, name)
        if value is not None and not isinstance(value, str):
            return refuse(
                errors.INVALID_PARAMETER_VALUE,
                f"header {name} must be a string, not {_amqp_type(value)}",
            )
    invocation_type = str(header(table, INVOCATION_TYPE) or headers.REQUEST_RESPONSE)
    if invocation_type not in (headers.REQUEST_RESPONSE, headers.EVENT):
        return refuse(
            errors.INVALID_PARAMETER_VALUE,
            f"1 validation error detected: Value '{invocation_type}' at 'invocationType' failed "
            "to satisfy constraint: Member must satisfy enum value set: [Event, RequestResponse]",
        )
    if invocation_type == headers.REQUEST_RESPONSE and not reply_to:
        return Dropped("a RequestResponse request without reply_to")
    limit = (
        limits.MAX_ASYNC_PAYLOAD if invocation_type == headers.EVENT else limits.MAX_SYNC_PAYLOAD
    )
    if len(body) > limit:
        return refuse(
            errors.REQUEST_TOO_LARGE,
            f"Request must be smaller than {limit} bytes for the InvokeFunction operation",
        )
    client_context = decode_client_context(str(header(table, CLIENT_CONTEXT) or ""))
    if client_context is None:
        return refuse(
            errors.INVALID_PARAMETER_VALUE,
            "Client context must be a valid Base64-encoded JSON object of at most "
            f"{limits.MAX_CLIENT_CONTEXT} bytes",
        )
    count = header(table, DELIVERY_COUNT)
    if isinstance(count, int) and not isinstance(count, bool) and count >= REDELIVERY_LIMIT:
        return refuse(
            errors.SERVICE_EXCEPTION,
            f"the request was delivered {count} times and each time its instance went away; "
            "it is dropped instead of being delivered again",
        )
    attempt = header(table, ATTEMPT)
    accepted_at = header(table, ACCEPTED_AT)
    return RpcRequest(
        request_id=request_id,
        payload=body,
        invocation_type=invocation_type,
        reply_to=reply_to,
        client_context=client_context,
        trace_id=trace_header(str(header(table, TRACE_ID) or "")),
        log_tail=header(table, LOG_TYPE) == "Tail" and invocation_type == headers.REQUEST_RESPONSE,
        attempt=attempt if isinstance(attempt, int) and attempt > 0 else 1,
        accepted_at=(
            accepted_at / 1000
            if isinstance(accepted_at, int) and accepted_at > 0
            else (time.time() if now is None else now)
        ),
    )


def _amqp_type(value: object) -> str:
    kinds = (
        (bool, "a boolean"),
        (int, "an integer"),
        (float, "a number"),
        ((bytes, bytearray), "bytes"),
    )
    for kind, name in kinds:
        if isinstance(value, kind):
            return name
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, (list, tuple)):
        return "an array"
    return type(value).__name__


# --- replies ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message to publish: routing key on the default exchange, body and properties."""

    routing_key: str
    body: bytes
    properties: Mapping[str, object]


def reply(
    request: Properties,
    request_id: str,
    reply_to: str,
    body: bytes,
    *,
    content_type: str = headers.JSON_CONTENT_TYPE,
    added: Mapping[str, str],
) -> Outgoing:
    """A reply to ``request``: its echoed properties, ``added`` headers, and ``body``."""
    properties: dict[str, object] = {
        name: request[name] for name in _ECHOED if request.get(name) is not None
    }
    table = request.get("headers")
    echoed = writable_table(table) if isinstance(table, Mapping) else {}
    for name in (FUNCTION_ERROR, ERROR_TYPE, LOG_RESULT, REQUEST_ID, EXECUTED_VERSION):
        echoed.pop(name, None)  # a request cannot forge how its invocation ended
    echoed.update(added)
    properties["headers"] = echoed
    properties["content_type"] = content_type
    if not properties.get("correlation_id"):
        properties["correlation_id"] = request_id
    return Outgoing(reply_to, body, properties)


#: What the AMQP client library can write back into a header table.
_WRITABLE = (str, bool, int, float, decimal.Decimal, datetime.datetime, bytearray, type(None))


def writable_table(table: Mapping[str, object]) -> dict[str, object]:
    """``table`` with only values that can be written again.

    A long string that is not UTF-8 is read as ``bytes``, which cannot be written back: it is
    kept as a byte array.  Anything else that cannot be written is left out, so that echoing a
    request's headers can never make its reply impossible to publish.
    """
    written = {str(name): _writable(value) for name, value in table.items()}
    return {name: value for name, value in written.items() if value is not _DROP}


_DROP = object()


def _writable(value: object) -> object:
    if isinstance(value, bytes):
        return bytearray(value)
    if isinstance(value, _WRITABLE):
        return value
    if isinstance(value, Mapping):
        return writable_table(value)
    if isinstance(value, (list, tuple)):
        return [v for v in (_writable(item) for item in value) if v is not _DROP]
    return _DROP


def result_reply(
    request: Properties,
    request_id: str,
    reply_to: str,
    *,
    body: bytes,
    content_type: str,
    function_error: str,
    log_result: str,
    version: str,
) -> Outgoing:
    """The reply of an invocation that ran (successfully or not)."""
    added = {REQUEST_ID: request_id, EXECUTED_VERSION: version}
    if function_error:
        added[FUNCTION_ERROR] = function_error
        content_type = headers.JSON_CONTENT_TYPE
    if log_result:
        added[LOG_RESULT] = log_result
    return reply(request, request_id, reply_to, body, content_type=content_type, added=added)


def refusal_reply(request: Properties, refused: Refused) -> Outgoing:
    """The reply of a request refused before it ran: the Invoke API's service error."""
    return reply(
        request,
        refused.request_id,
        refused.reply_to,
        errors.service_error_body(refused.message),
        added={REQUEST_ID: refused.request_id, ERROR_TYPE: refused.error_type},
    )


def http_status(error_type: str) -> int:
    """The Invoke API's HTTP status for a service error type."""
    return errors.SERVICE_ERROR_STATUS.get(error_type, 400)


# --- Event messages -------------------------------------------------------------------------
def event_message(
    queue: str,
    request_id: str,
    payload: bytes,
    *,
    attempt: int = 1,
    accepted_at: float,
    trace_id: str = "",
) -> Outgoing:
    """An Event invocation for ``queue``, persistent, as the gateway and retries publish it."""
    table: dict[str, object] = {
        INVOCATION_TYPE: headers.EVENT,
        ATTEMPT: attempt,
        ACCEPTED_AT: int(accepted_at * 1000),
    }
    if trace_id:
        table[TRACE_ID] = trace_id
    return Outgoing(
        queue,
        payload,
        {
            "correlation_id": request_id,
            "message_id": uuid.uuid4().hex,  # unique: the client library matches returns by it
            "content_type": headers.JSON_CONTENT_TYPE,
            "delivery_mode": 2,
            "headers": table,
        },
    )


# --- the gateway's side ----------------------------------------------------------------------
#: RabbitMQ's direct reply-to pseudo-queue: replies go straight to the publishing channel.
DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"


def request_message(
    queue: str,
    request_id: str,
    payload: bytes,
    *,
    client_context: str = "",
    trace_id: str = "",
    log_tail: bool = False,
    timestamp: float = 0.0,
    expiration: float = 0.0,
) -> Outgoing:
    """A RequestResponse invocation as the gateway publishes it (``client_context`` is JSON)."""
    table: dict[str, object] = {}
    if client_context:
        table[CLIENT_CONTEXT] = base64.b64encode(client_context.encode()).decode()
    if trace_id:
        table[TRACE_ID] = trace_id
    if log_tail:
        table[LOG_TYPE] = "Tail"
    properties: dict[str, object] = {
        "correlation_id": request_id,
        "message_id": uuid.uuid4().hex,  # unique: the client library matches returns by it
        "reply_to": DIRECT_REPLY_TO,
        "content_type": headers.JSON_CONTENT_TYPE,
        "delivery_mode": 1,
        "headers": table,
    }
    if expiration:  # a request whose caller gave up is not worth running
        properties["expiration"] = str(max(1, int(expiration * 1000)))
    if timestamp:  # AMQP timestamps are whole seconds
        properties["timestamp"] = datetime.datetime.fromtimestamp(
            int(timestamp), datetime.timezone.utc
        )
    return Outgoing(queue, payload, properties)


@dataclass(frozen=True, slots=True)
class InvokeAnswer:
    """A reply as the synchronous Invoke API answers it."""

    status: int
    fields: tuple[tuple[str, str], ...]
    body: bytes


def invoke_answer(properties: Properties, body: bytes, request_id: str) -> InvokeAnswer:
    """The HTTP answer to a caller whose invocation got this reply.

    Replies from a Lambda Runtime API Daemon carry none of the added headers: they read as
    successes, which is all the daemon can say.
    """
    table = properties.get("headers")
    table = table if isinstance(table, Mapping) else {}
    replied_id = str(header(table, REQUEST_ID) or request_id)
    error_type = header(table, ERROR_TYPE)
    if isinstance(error_type, str) and error_type:
        return InvokeAnswer(
            http_status(error_type),
            (
                ("Content-Type", headers.JSON_CONTENT_TYPE),
                (ERROR_TYPE, error_type),
                (REQUEST_ID, replied_id),
            ),
            body,
        )
    content_type = properties.get("content_type")
    fields = [
        (
            "Content-Type",
            content_type
            if isinstance(content_type, str) and content_type
            else headers.JSON_CONTENT_TYPE,
        ),
        (REQUEST_ID, replied_id),
        (EXECUTED_VERSION, str(header(table, EXECUTED_VERSION) or "$LATEST")),
    ]
    function_error = str(header(table, FUNCTION_ERROR) or "")
    if function_error:
        fields.append((FUNCTION_ERROR, function_error))
    log_result = header(table, LOG_RESULT)
    if isinstance(log_result, str) and log_result:
        fields.append((LOG_RESULT, log_result))
    return InvokeAnswer(200, tuple(fields), body)
