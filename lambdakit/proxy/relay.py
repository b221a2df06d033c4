"""The proxy's fast lane: the two calls every invocation makes, read with a handful of C calls.

Theory of operation
-------------------
Each invocation passes two calls through a Runtime API proxy
(https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html): ``GET next`` and its event,
then ``POST …/{id}/response`` and its ``202``.  A proxy sits on the invocation's critical path
twice and on the way to the next invocation twice more, and on a loaded machine each of those
relays runs with cold caches, so what matters is how many Python operations a relay costs, not
how fast each one is.  Reading these messages through :mod:`lambdakit.wire.http1` and building a
:class:`~lambdakit.proxy.calls.Call` and a :class:`~lambdakit.proxy.calls.Reply` for each cost
the post-runner twice the CPU of a proxy that only looked for ``Content-Length``, and most of
its added latency (bench/results/postrun_latency.md).

So a head is first *scanned* here.  A scan accepts only messages whose framing is plain: a
``Content-Length`` (or none, for a request), no ``Transfer-Encoding``, ``Connection`` or
``Expect``, no obs-fold, no control character but CRLF line ends and HTAB, every field name a
token.  Whatever a scan accepts, the codec accepts and frames the same way; whatever it does not
(chunked bodies, interim responses, anything odd) returns None and goes through the codec and
the hooks as before, which also decides what is an error.  A scan does no I/O and keeps no
state but a cache of field names already seen to be tokens.
"""

from __future__ import annotations

from lambdakit.wire import paths

#: Every control byte but HTAB: a head may hold CR and LF only as its CRLF line ends.
_CONTROLS = bytes(range(0x09)) + bytes(range(0x0A, 0x20)) + b"\x7f"
#: tchar (RFC 9110 §5.6.2), as bytes: ``name.strip(_TCHAR)`` is empty exactly for a token.
_TCHAR = b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
#: A field name that makes a message take the codec's path (its framing is not plain).
_NOT_PLAIN = frozenset((b"transfer-encoding", b"connection", b"expect"))
_CONTENT_LENGTH = b"content-length"
_REQUEST_ID = b"lambda-runtime-aws-request-id"
_DEADLINE = b"lambda-runtime-deadline-ms"
_MAX_LENGTH_DIGITS = 19

_NEXT_LINE = f"GET {paths.RUNTIME_NEXT} HTTP/1.1".encode()
_RESPONSE_PREFIX = f"POST {paths.RUNTIME_INVOCATION_PREFIX}".encode()
_RESPONSE_SUFFIX = f"{paths.RESPONSE_SUFFIX} HTTP/1.1".encode()
#: What a request id may hold here: unreserved characters (RFC 3986 §2.3), which need no
#: escaping in a path (Lambda's ids are UUIDs).
_ID_BYTES = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-._~"

#: Field names seen to be tokens, as received -> lower case (bounded: runtimes use a handful).
_NAMES: dict[bytes, bytes] = {}
_MAX_NAMES = 256


def _plain_fields(head: bytes, start: int) -> dict[bytes, bytes] | None:
    """The fields after the start line (``head[start:]``) by lower-case name, if all is plain.

    None when a line is not ``token ":" value``, a name repeats (``Content-Length`` twice is
    the codec's to judge) or names a field that takes the codec's path.
    """
    if len(head) - len(head.translate(None, _CONTROLS)) != 2 * head.count(b"\r\n"):
        return None  # a control byte, or a bare CR or LF
    fields: dict[bytes, bytes] = {}
    names = _NAMES
    for line in head[start:-4].split(b"\r\n"):
        name, colon, value = line.partition(b":")
        lowered = names.get(name)
        if lowered is None or not colon:
            if not colon or not name or name.strip(_TCHAR):
                return None  # obs-fold, whitespace before the colon, not a token
            lowered = name.lower()
            if len(names) < _MAX_NAMES:
                names[name] = lowered
        if lowered in fields or lowered in _NOT_PLAIN:
            return None
        fields[lowered] = value
    return fields


def _length(fields: dict[bytes, bytes]) -> int:
    """The ``Content-Length`` among plain fields (0 without one); -1 if it is not plain."""
    value = fields.get(_CONTENT_LENGTH)
    if value is None:
        return 0
    value = value.strip(b" \t")
    if not value.isdigit() or len(value) > _MAX_LENGTH_DIGITS:
        return -1
    return int(value)


#: Scans of heads that come back byte for byte (a runtime's ``GET next``, the Runtime API's
#: ``202``): a dict lookup instead of a scan.  Emptied when full.
#: (A miss is the common case for heads that carry a request id: ``get``, not ``[]`` and a
#: KeyError, which costs a raised exception per invocation.)
_SEEN_REQUESTS: dict[bytes, tuple[bool, str, int]] = {}
_SEEN_REPLIES: dict[bytes, tuple[int, int, str, int]] = {}
_MAX_SEEN = 64


def scan_request(head: bytes) -> tuple[bool, str, int] | None:
    """A plain ``GET next`` or buffered ``POST …/{id}/response`` head (``head`` ends with its
    empty line): ``(is_next, request id, body length)``; None for anything else."""
    seen = _SEEN_REQUESTS.get(head)
    if seen is not None:
        return seen
    scan = _scan_request(head)
    if scan is not None and scan[0]:  # responses carry their own request id: never the same
        if len(_SEEN_REQUESTS) >= _MAX_SEEN:
            _SEEN_REQUESTS.clear()
        _SEEN_REQUESTS[head] = scan
    return scan


def _scan_request(head: bytes) -> tuple[bool, str, int] | None:
    line_end = head.find(b"\r\n")
    start = head[:line_end]
    if start == _NEXT_LINE:
        is_next, request_id = True, ""
    elif start.startswith(_RESPONSE_PREFIX) and start.endswith(_RESPONSE_SUFFIX):
        raw_id = start[len(_RESPONSE_PREFIX) : -len(_RESPONSE_SUFFIX)]
        if not raw_id or raw_id.strip(_ID_BYTES):
            return None
        is_next, request_id = False, raw_id.decode("ascii")
    else:
        return None
    fields = _plain_fields(head, line_end + 2)
    if fields is None:
        return None
    length = _length(fields)
    if length < 0 or (is_next and length):
        return None
    return is_next, request_id, length


def scan_reply(head: bytes) -> tuple[int, int, str, int] | None:
    """A plain ``HTTP/1.1`` reply head with a ``Content-Length``: ``(status, body length,
    request id, deadline ms)``, the last two from a ``next`` reply's fields ("" and 0 when
    absent); None for anything else (interim, 204 or 304, read until close, chunked, …)."""
    seen = _SEEN_REPLIES.get(head)
    if seen is not None:
        return seen
    scan = _scan_reply(head)
    if scan is not None and not scan[2]:  # a next reply carries its own request id
        if len(_SEEN_REPLIES) >= _MAX_SEEN:
            _SEEN_REPLIES.clear()
        _SEEN_REPLIES[head] = scan
    return scan


def _scan_reply(head: bytes) -> tuple[int, int, str, int] | None:
    line_end = head.find(b"\r\n")
    if not head.startswith(b"HTTP/1.1 ") or line_end < 12 or head[12:13] not in (b" ", b"\r"):
        return None
    code = head[9:12]
    if not code.isdigit():
        return None
    status = int(code)
    if status < 200 or status in (204, 304):
        return None
    fields = _plain_fields(head, line_end + 2)
    if fields is None or _CONTENT_LENGTH not in fields:
        return None
    length = _length(fields)
    if length < 0:
        return None
    request_id = fields.get(_REQUEST_ID, b"").strip(b" \t")
    deadline = fields.get(_DEADLINE, b"").strip(b" \t")
    return (
        status,
        length,
        request_id.decode("latin-1"),
        int(deadline) if deadline.isdigit() and len(deadline) < _MAX_LENGTH_DIGITS else 0,
    )
