"""The ``X-Amz-Client-Context`` header: base64 of a JSON object, at most 3583 bytes.

https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html#API_Invoke_RequestSyntax
"""

from __future__ import annotations

import base64
import binascii
import json

from lambdakit.wire import limits


def decode_client_context(value: str) -> str | None:
    """The JSON text inside the header; "" if absent; None if it is not valid."""
    if not value:
        return ""
    if len(value) > limits.MAX_CLIENT_CONTEXT:
        return None
    try:
        decoded = base64.b64decode(value, validate=True).decode()
        if not isinstance(json.loads(decoded), dict):
            return None
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    return decoded
