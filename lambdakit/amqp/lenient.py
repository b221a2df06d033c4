"""Lenient decoding of message properties: one poison message must not take a connection down.

pamqp, which aiormq decodes frames with, raises on a short string that is not UTF-8 (a
``correlation_id``, ``reply_to`` or ``message_id``, a header name) and on a timestamp outside
the range of ``datetime``.  aiormq's frame reader then drops the whole connection: the broker
requeues everything the instance held and hands the poison message to the next instance, which
loses its connection the same way, forever.  These wrappers decode such a string with U+FFFD
in place of the bad bytes, and such a timestamp as absent, so that the message arrives and the
door answers it (or refuses it) like any other.  Written by hand because the library offers no
hook for it; installed once, when :mod:`lambdakit.amqp.link` is imported.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable

from pamqp import decode

_Decoder = Callable[[bytes], tuple[int, object]]


def install() -> None:
    """Replace pamqp's short-string and timestamp decoders with lenient ones (idempotent)."""
    if getattr(decode, "_lambdakit_lenient", False):
        return
    strict_string: _Decoder = decode.short_str
    strict_timestamp: _Decoder = decode.timestamp

    def short_str(value: bytes) -> tuple[int, str]:
        try:
            consumed, text = strict_string(value)
        except UnicodeDecodeError:
            length = value[0]
            return length + 1, value[1 : length + 1].decode("utf-8", "replace")
        return consumed, str(text)

    def timestamp(value: bytes) -> tuple[int, datetime.datetime | None]:
        try:
            consumed, moment = strict_timestamp(value)
        except (OverflowError, OSError, ValueError):
            if len(value) < 8:
                raise
            return 8, None
        return consumed, moment if isinstance(moment, datetime.datetime) else None

    decode.short_str = short_str  # field tables call it by name
    decode.timestamp = timestamp  # type: ignore[assignment]
    decode.METHODS["shortstr"] = short_str
    decode.METHODS["timestamp"] = timestamp
    decode.TABLE_MAPPING[b"T"] = timestamp
    setattr(decode, "_lambdakit_lenient", True)  # noqa: B010
