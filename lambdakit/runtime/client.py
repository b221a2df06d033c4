"""The runtime side of the Runtime API: get the next event, post its result, report init errors.

Runtime API: https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html
"""

from __future__ import annotations

import sys

from lambdakit import __version__
from lambdakit.runtime.transport import Connection, RuntimeApiError
from lambdakit.wire import headers as h
from lambdakit.wire import paths

TYPE_CHECKING = False
if TYPE_CHECKING:
    from lambdakit.runtime.transport import ChunkedUpload

_OK = 200


class NextEvent:
    """One event from ``GET next``: its headers, decoded, and the raw payload. Immutable."""

    __slots__ = (
        "body",
        "client_context",
        "cognito_identity",
        "content_type",
        "deadline_ms",
        "invocation_id",
        "invoked_function_arn",
        "request_id",
        "tenant_id",
        "trace_id",
    )

    body: bytes
    client_context: str | None
    cognito_identity: str | None
    content_type: str | None
    deadline_ms: int
    invocation_id: str | None
    invoked_function_arn: str | None
    request_id: str
    tenant_id: str | None
    trace_id: str | None

    def __init__(self, fields: dict[str, str], body: bytes) -> None:
        request_id = fields.get(h.REQUEST_ID)
        if not request_id:
            raise RuntimeApiError(f"next invocation has no {h.REQUEST_ID} header")
        deadline = fields.get(h.DEADLINE_MS, "")
        values = {
            "body": body,
            "client_context": fields.get(h.CLIENT_CONTEXT) or None,
            "cognito_identity": fields.get(h.COGNITO_IDENTITY) or None,
            "content_type": fields.get(h.CONTENT_TYPE),
            "deadline_ms": int(deadline) if deadline.isdigit() else 0,
            "invocation_id": fields.get(h.INVOCATION_ID) or None,
            "invoked_function_arn": fields.get(h.INVOKED_FUNCTION_ARN) or None,
            "request_id": request_id,
            "tenant_id": fields.get(h.TENANT_ID) or None,
            "trace_id": fields.get(h.TRACE_ID) or None,
        }
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"NextEvent is immutable; cannot set {name!r}")

    def __repr__(self) -> str:
        return f"NextEvent(request_id={self.request_id!r}, body={len(self.body)} bytes)"


class PostRejected(RuntimeApiError):
    """The Runtime API answered a post with an error status (e.g. 413 for a response too large)."""

    def __init__(self, path: str, status: int, body: bytes) -> None:
        detail = body[:512].decode("utf-8", "replace")
        super().__init__(f"POST {path} was rejected with status {status}: {detail}")
        self.status = status


class RuntimeApiClient:
    """Speaks the Runtime API over one keep-alive connection."""

    def __init__(self, address: str) -> None:
        version = "{}.{}.{}".format(*sys.version_info[:3])
        self._conn = Connection(address, f"lambdakit-python/{version}-{__version__}")

    def close(self) -> None:
        self._conn.close()

    def next_invocation(self) -> NextEvent:
        """Block until the next event arrives."""
        response = self._conn.request("GET", paths.RUNTIME_NEXT)
        if response.status != _OK:
            raise RuntimeApiError(
                f"GET {paths.RUNTIME_NEXT} answered {response.status}: {response.body[:512]!r}"
            )
        return NextEvent(response.headers, response.body)

    def post_response(self, invocation: NextEvent, body: bytes, content_type: str) -> None:
        fields = [(h.CONTENT_TYPE, content_type)]
        if invocation.invocation_id:
            fields.append((h.INVOCATION_ID, invocation.invocation_id))
        self._post(paths.runtime_response(invocation.request_id), body, fields)

    def start_streaming_response(self, invocation: NextEvent, content_type: str) -> ChunkedUpload:
        """Send the head of a streamed ``/response``; the body follows chunk by chunk.

        The error trailers are declared up front, as the Runtime API requires, whether or not
        they are sent in the end.
        """
        fields = [
            (h.CONTENT_TYPE, content_type),
            (h.FUNCTION_RESPONSE_MODE, h.RESPONSE_MODE_STREAMING),
            (h.TRAILER, f"{h.FUNCTION_ERROR_TYPE}, {h.FUNCTION_ERROR_BODY}"),
        ]
        if invocation.invocation_id:
            fields.append((h.INVOCATION_ID, invocation.invocation_id))
        return self._conn.start_chunked(
            "POST", paths.runtime_response(invocation.request_id), fields
        )

    def finish_streaming_response(
        self, upload: ChunkedUpload, invocation: NextEvent, trailers: list[tuple[str, str]]
    ) -> None:
        """End a streamed ``/response`` (with error trailers, if any), then close the connection.

        "Close the underlying connection after it has successfully written the response" (the
        custom runtime guide); the next ``GET next`` opens a fresh one.
        """
        try:
            response = upload.finish(trailers)
        finally:
            self._conn.close()
        if not 200 <= response.status < 300:
            path = paths.runtime_response(invocation.request_id)
            raise PostRejected(path, response.status, response.body)

    def post_error(
        self, invocation: NextEvent, error: bytes, error_type: str, xray_cause: bytes
    ) -> None:
        fields = [(h.CONTENT_TYPE, h.JSON_CONTENT_TYPE), (h.FUNCTION_ERROR_TYPE, error_type)]
        if xray_cause and len(xray_cause) < h.XRAY_ERROR_CAUSE_MAX:
            fields.append((h.XRAY_ERROR_CAUSE, xray_cause.decode("latin-1")))
        if invocation.invocation_id:
            fields.append((h.INVOCATION_ID, invocation.invocation_id))
        self._post(paths.runtime_error(invocation.request_id), error, fields)

    def post_init_error(self, error: bytes, error_type: str) -> None:
        fields = [(h.CONTENT_TYPE, h.JSON_CONTENT_TYPE), (h.FUNCTION_ERROR_TYPE, error_type)]
        self._post(paths.RUNTIME_INIT_ERROR, error, fields)

    def _post(self, path: str, body: bytes, fields: list[tuple[str, str]]) -> None:
        response = self._conn.request("POST", path, body, fields)
        if not 200 <= response.status < 300:  # Lambda answers 202; any 2xx is success
            raise PostRejected(path, response.status, response.body)
