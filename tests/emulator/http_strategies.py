"""Hypothesis strategies for HTTP/1.1 requests, and a raw-socket client that reads one answer.

The client parses answers itself (status line, fields, a Content-Length or chunked body) and
says when something is not HTTP/1.1, so that a property can require "always a well-formed
answer" without trusting a library that would repair it.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st


def bounded(max_examples: int) -> settings:
    """Settings for a bounded, reproducible run: no deadline, derandomized, no database."""
    return settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


#: Field-name characters (RFC 9110 token) and path characters a client may send unescaped.
TOKEN = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
PATH_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~%/:@!$&'()*+,;="
#: Methods a client may send; HEAD is left to its own test (its answers must carry no body).
METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "BREW", "get")


@dataclass(frozen=True)
class RawRequest:
    method: str
    target: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    chunked: bool
    #: Where the encoded request is cut into the pieces that are sent (or fed) one by one.
    cuts: tuple[int, ...] = ()

    def encode(self) -> bytes:
        head = [f"{self.method} {self.target} HTTP/1.1\r\n".encode("latin-1")]
        head.append(b"Host: lambdakit\r\n")
        for name, value in self.headers:
            head.append(f"{name}: {value}\r\n".encode("latin-1"))
        if self.chunked:
            head.append(b"Transfer-Encoding: chunked\r\n\r\n")
            pieces = [self.body[i : i + 7] for i in range(0, len(self.body), 7)]
            body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
        else:
            head.append(b"Content-Length: %d\r\n\r\n" % len(self.body))
            body = self.body
        return b"".join(head) + body

    def pieces(self) -> list[bytes]:
        return split(self.encode(), self.cuts)


def split(data: bytes, cuts: tuple[int, ...]) -> list[bytes]:
    """``data`` cut at the given offsets (taken modulo its length, sorted, deduplicated)."""
    points = sorted({c % len(data) for c in cuts if data} - {0})
    out, last = [], 0
    for point in points:
        out.append(data[last:point])
        last = point
    out.append(data[last:])
    return [p for p in out if p]


# Header names lambdakit's doors read, so that random values reach real code paths.
KNOWN_HEADERS = (
    "Content-Type",
    "X-Amz-Invocation-Type",
    "X-Amz-Log-Type",
    "X-Amz-Client-Context",
    "X-Amz-Tenant-Id",
    "X-Amzn-Trace-Id",
    "X-Amz-Function-Error",
    "Lambda-Runtime-Function-Error-Type",
    "Lambda-Runtime-Function-Response-Mode",
    "Lambda-Extension-Name",
    "Lambda-Extension-Identifier",
    "Lambda-Extension-Accept-Feature",
    "Expect",
    "Connection",
    "Accept",
    "Origin",
)
HEADER_VALUES = st.one_of(
    st.sampled_from(
        ["", "Event", "RequestResponse", "DryRun", "Tail", "None", "e30=", "!!", "close", "1"]
    ),
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=40).map(
        str.strip
    ),
)
header_fields = st.lists(
    st.tuples(
        st.one_of(st.sampled_from(KNOWN_HEADERS), st.text(TOKEN, min_size=1, max_size=20)),
        HEADER_VALUES,
    ).filter(lambda f: f[0].lower() not in ("host", "content-length", "transfer-encoding")),
    max_size=6,
)
bodies = st.one_of(
    st.binary(max_size=300),
    st.sampled_from([b"", b"{}", b"[]", b"null", b'"x"', b"1e999", b"{", b"\xff\xfe", b"[[[[]]]]"]),
    st.recursive(
        st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=10)),
        lambda inner: st.one_of(
            st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)
        ),
        max_leaves=10,
    ).map(lambda v: __import__("json").dumps(v).encode()),
)
cuts = st.lists(st.integers(min_value=1, max_value=4000), max_size=6).map(tuple)


def requests(paths: st.SearchStrategy[str]) -> st.SearchStrategy[RawRequest]:
    """Well-formed requests to ``paths`` (with any query), random in everything else."""
    return st.builds(
        RawRequest,
        method=st.sampled_from(METHODS),
        target=paths,
        headers=header_fields.map(tuple),
        body=bodies,
        chunked=st.booleans(),
        cuts=cuts,
    )


def segment() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(
            ["", "functions", "invocations", "next", "response", "error", "%0A", "%2F", ".."]
        ),
        st.text(PATH_CHARS.replace("/", ""), max_size=12),
    )


def paths_under(*prefixes: str) -> st.SearchStrategy[str]:
    """Paths that start with one of ``prefixes`` (or ``/``) and go on at random, with a query."""
    return st.builds(
        lambda prefix, rest, query: prefix + "/".join(rest) + (f"?{query}" if query else ""),
        st.sampled_from([*prefixes, "/"]),
        st.lists(segment(), max_size=4),
        st.one_of(st.just(""), st.text(PATH_CHARS.replace("/", "") + "=&", max_size=20)),
    )


@dataclass
class Answer:
    status: int
    reason: str
    headers: dict[str, str]
    body: bytes
    #: Bytes that came after the answer's end (a well-behaved server sends none).
    extra: bytes = b""
    repeated: list[str] = field(default_factory=list)


class Malformed(AssertionError):
    """The server's bytes were not an HTTP/1.1 answer."""


def _read_until(sock: socket.socket, buf: bytearray, marker: bytes, deadline: float) -> int:
    while (index := buf.find(marker)) < 0:
        _recv(sock, buf, deadline)
    return index


def _recv(sock: socket.socket, buf: bytearray, deadline: float) -> None:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("no complete answer in time")
    sock.settimeout(left)
    data = sock.recv(65536)
    if not data:
        raise EOFError(f"connection closed after {len(buf)} bytes: {bytes(buf[:200])!r}")
    buf += data


def read_answer(
    sock: socket.socket, timeout: float, head_request: bool = False, buf: bytearray | None = None
) -> Answer:
    """Read one answer (skipping 100 Continue); raise Malformed if it is not HTTP/1.1."""
    deadline = time.monotonic() + timeout
    buf = bytearray() if buf is None else buf
    while True:
        end = _read_until(sock, buf, b"\r\n\r\n", deadline)
        head = bytes(buf[:end]).decode("latin-1")
        del buf[: end + 4]
        lines = head.split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or parts[0] != "HTTP/1.1" or not parts[1].isdigit():
            raise Malformed(f"bad status line {lines[0]!r}")
        status = int(parts[1])
        if status == 100:
            continue
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if not colon or not name or name != name.strip():
                raise Malformed(f"bad header line {line!r}")
            headers[name.lower()] = value.strip()
        break
    body = bytearray()
    if head_request or status in (204, 304):
        pass
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            end = _read_until(sock, buf, b"\r\n", deadline)
            size = int(bytes(buf[:end]).split(b";")[0], 16)
            del buf[: end + 2]
            if size == 0:
                _read_until(sock, buf, b"\r\n", deadline)  # trailers end with an empty line
                while not buf.startswith(b"\r\n"):
                    end = _read_until(sock, buf, b"\r\n", deadline)
                    del buf[: end + 2]
                    _read_until(sock, buf, b"\r\n", deadline)
                del buf[:2]
                break
            while len(buf) < size + 2:
                _recv(sock, buf, deadline)
            body += buf[:size]
            del buf[: size + 2]
    elif "content-length" in headers:
        if not headers["content-length"].isdigit():
            raise Malformed(f"bad Content-Length {headers['content-length']!r}")
        size = int(headers["content-length"])
        while len(buf) < size:
            _recv(sock, buf, deadline)
        body += buf[:size]
        del buf[:size]
    else:
        raise Malformed(f"an answer without Content-Length nor chunked: {head!r}")
    return Answer(status, parts[2] if len(parts) > 2 else "", headers, bytes(body), bytes(buf))


def exchange(
    host: str, port: int, pieces: list[bytes], timeout: float = 20.0, half_close: bool = False
) -> Answer | None:
    """Send ``pieces`` one by one on a new connection and read one answer.

    Returns None when the server closed the connection without an answer the client could
    read: after a ``half_close`` (the request never ended, so there was nothing to answer), or
    when it refused the request and closed before the client had sent all of it (the client's
    further bytes then reset the connection, and the kernel drops the unread answer).
    """
    with socket.create_connection((host, port), timeout=timeout) as sock:
        refused = False
        try:
            for piece in pieces:
                sock.sendall(piece)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError, OSError):
            refused = True
        try:
            return read_answer(sock, timeout)
        except EOFError as exc:
            if "after 0 bytes" in str(exc) and (half_close or refused):
                return None
            raise
        except ConnectionResetError:
            if half_close or refused:
                return None
            raise
