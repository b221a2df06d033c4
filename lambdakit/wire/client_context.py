"""What a caller says of itself: ``X-Amz-Client-Context`` and ``X-Amzn-Trace-Id``.

The client context is base64 of a JSON object, at most 3583 bytes
(https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html#API_Invoke_RequestSyntax); the
trace header is X-Ray's ``Root=...;Parent=...;Sampled=...``.  Both are handed to the runtime in
HTTP headers of the Runtime API, so both come out of here as printable ASCII only.
"""

from __future__ import annotations

import base64
import binascii
import json
import re

from lambdakit.wire import limits


def decode_client_context(value: str) -> str | None:
    """The JSON object inside the header, as ASCII JSON text; "" if absent; None if invalid."""
    if not value:
        return ""
    if len(value) > limits.MAX_CLIENT_CONTEXT:
        return None
    try:
        text = base64.b64decode(value, validate=True).decode()
        decoded = json.loads(text)
    except (binascii.Error, ValueError, RecursionError):  # nesting too deep, too
        return None
    if not isinstance(decoded, dict):
        return None
    if _PRINTABLE.fullmatch(text):
        return text  # as the caller wrote it
    return json.dumps(decoded)  # non-ASCII or line breaks: escaped, fit for a header


_PRINTABLE = re.compile(r"^[\x20-\x7e]*$")
#: An X-Ray trace header: printable ASCII without spaces, starting with its root.
_TRACE_HEADER = re.compile(r"^Root=[\x21-\x7e]{1,1024}$")


def trace_header(value: str) -> str:
    """``value`` if it is a well-formed trace header, else "" (the platform makes one)."""
    return value if _TRACE_HEADER.fullmatch(value) else ""
