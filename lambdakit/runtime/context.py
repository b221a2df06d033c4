"""The Context object a handler receives, with the members awslambdaric's has plus ``deadline_ms``.

Python context: https://docs.aws.amazon.com/lambda/latest/dg/python-context.html
"""

from __future__ import annotations

import os
import time

from lambdakit.wire import environment as env

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

#: Keys of ``clientContext.w3c`` exposed by ``w3c()``; the rest are ignored.
_W3C_FIELDS = ("traceparent", "tracestate", "baggage")


class CognitoIdentity:
    """The Amazon Cognito identity that authorized the call (fields are None when absent)."""

    __slots__ = ("cognito_identity_id", "cognito_identity_pool_id")

    def __init__(self, fields: Mapping[str, object] | None = None) -> None:
        fields = fields or {}
        self.cognito_identity_id = fields.get("cognitoIdentityId")
        self.cognito_identity_pool_id = fields.get("cognitoIdentityPoolId")

    def __repr__(self) -> str:
        return (
            f"CognitoIdentity([cognito_identity_id={self.cognito_identity_id},"
            f"cognito_identity_pool_id={self.cognito_identity_pool_id}])"
        )


class Client:
    """The mobile client that invoked the function (from the client context)."""

    __slots__ = (
        "app_package_name",
        "app_title",
        "app_version_code",
        "app_version_name",
        "installation_id",
    )

    def __init__(self, fields: Mapping[str, object]) -> None:
        for name in self.__slots__:
            setattr(self, name, fields.get(name))

    def __repr__(self) -> str:
        inner = ",".join(f"{name}={getattr(self, name)}" for name in self.__slots__)
        return f"Client([{inner}])"


class ClientContext:
    """``X-Amz-Client-Context`` of the call: ``custom``, ``env`` and ``client``."""

    __slots__ = ("client", "custom", "env")

    def __init__(self, fields: Mapping[str, object]) -> None:
        client = fields.get("client")
        self.client = Client(client) if isinstance(client, dict) else None
        self.custom = fields.get("custom")
        self.env = fields.get("env")

    def __repr__(self) -> str:
        return f"ClientContext([custom={self.custom},env={self.env},client={self.client}])"


class LambdaContext:
    """Invocation and environment facts for the handler.

    ``memory_limit_in_mb`` is a string, as awslambdaric gives it (``int()`` it for arithmetic).
    ``deadline_ms`` is the invocation deadline in Unix epoch milliseconds.
    """

    def __init__(
        self,
        *,
        aws_request_id: str,
        deadline_ms: int,
        invoked_function_arn: str | None = None,
        tenant_id: str | None = None,
        client_context: Mapping[str, object] | None = None,
        cognito_identity: Mapping[str, object] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        environ = os.environ if environ is None else environ
        self.aws_request_id = aws_request_id
        self.deadline_ms = deadline_ms
        self.invoked_function_arn = invoked_function_arn
        self.tenant_id = tenant_id
        self.function_name = environ.get(env.FUNCTION_NAME)
        self.function_version = environ.get(env.FUNCTION_VERSION)
        self.memory_limit_in_mb = environ.get(env.FUNCTION_MEMORY_SIZE)
        self.log_group_name = environ.get(env.LOG_GROUP_NAME)
        self.log_stream_name = environ.get(env.LOG_STREAM_NAME)
        self.identity = CognitoIdentity(cognito_identity)
        client_fields = dict(client_context) if client_context is not None else None
        self._w3c = _pop_w3c(client_fields)
        self.client_context = ClientContext(client_fields) if client_fields is not None else None

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the deadline (wall clock), never negative."""
        return max(self.deadline_ms - int(time.time() * 1000), 0)

    def w3c(self) -> dict[str, str]:
        """The caller's W3C trace context (``traceparent``, ``tracestate``, ``baggage``)."""
        return dict(self._w3c)

    def log(self, message: object) -> None:
        """Write ``message`` to the function's log as is (no newline added)."""
        import sys

        sys.stdout.write(str(message))

    def __repr__(self) -> str:
        return (
            "LambdaContext(["
            f"aws_request_id={self.aws_request_id},"
            f"log_group_name={self.log_group_name},"
            f"log_stream_name={self.log_stream_name},"
            f"function_name={self.function_name},"
            f"memory_limit_in_mb={self.memory_limit_in_mb},"
            f"function_version={self.function_version},"
            f"invoked_function_arn={self.invoked_function_arn},"
            f"client_context={self.client_context},"
            f"identity={self.identity},"
            f"tenant_id={self.tenant_id},"
            f"deadline_ms={self.deadline_ms}"
            "])"
        )


def _pop_w3c(client_context: dict[str, object] | None) -> dict[str, str]:
    """Remove ``w3c`` from the client context and keep its known string fields."""
    raw = client_context.pop("w3c", None) if client_context is not None else None
    if not isinstance(raw, dict):
        return {}
    return {key: raw[key] for key in _W3C_FIELDS if isinstance(raw.get(key), str)}
