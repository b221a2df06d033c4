"""JSON on CPython's ``_json`` accelerator directly, without importing the ``json`` package.

``import json`` costs about 3.5 ms in a bare interpreter, most of it ``re`` (and ``enum``), which
``json.decoder`` needs only for its pure-Python fallback.  The C scanner and encoder do the same
work as ``json.loads``/``json.dumps`` (same results, same error messages: errors are raised
through the real ``json`` module, imported then).  Where ``_json`` lacks them (other
interpreters), this module falls back to ``json``.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

try:
    import _json
except ImportError:  # pragma: no cover - not CPython
    _json = None  # type: ignore[assignment]

# Looked up with getattr: the accelerator's callables are private and may be absent.
make_scanner: Any = getattr(_json, "make_scanner", None)
make_encoder: Any = getattr(_json, "make_encoder", None)
encode_basestring: Any = getattr(_json, "encode_basestring", None)
encode_basestring_ascii: Any = getattr(_json, "encode_basestring_ascii", None)

_WHITESPACE = " \t\n\r"
_CONSTANTS = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}


class _ScanContext:
    """The attributes ``_json.make_scanner`` reads (those of ``json.JSONDecoder()``)."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = _CONSTANTS.__getitem__
    memo: dict[str, object] = {}


_scan = make_scanner(_ScanContext()) if make_scanner and make_encoder else None


def loads(data: bytes | str) -> object:
    """``json.loads`` for UTF-8 bytes or str."""
    if _scan is None or (isinstance(data, bytes) and data[:3] == b"\xef\xbb\xbf"):
        return _stdlib_loads(data)
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError:
        return _stdlib_loads(data)  # UTF-16/32 JSON, or the stdlib's error for bad bytes
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        value, end = _scan(text, start)
    except StopIteration:
        return _stdlib_loads(text)  # raises "Expecting value: ..."
    if len(text.rstrip(_WHITESPACE)) != end:
        return _stdlib_loads(text)  # raises "Extra data: ..."
    return value


def dumps(
    value: object,
    *,
    ensure_ascii: bool = False,
    allow_nan: bool = True,
    default: Callable[[object], object] | None = None,
) -> str:
    """``json.dumps`` with the default separators."""
    if _scan is None:
        import json

        return json.dumps(value, ensure_ascii=ensure_ascii, allow_nan=allow_nan, default=default)
    if isinstance(value, str):
        encoded: str = (encode_basestring_ascii if ensure_ascii else encode_basestring)(value)
        return encoded
    encode = make_encoder(
        {},  # markers: detects circular references, like check_circular=True
        default or _default,
        encode_basestring_ascii if ensure_ascii else encode_basestring,
        None,
        ": ",
        ", ",
        False,
        False,
        allow_nan,
    )
    return "".join(encode(value, 0))


def _default(value: object) -> object:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _stdlib_loads(data: bytes | str) -> object:
    import json

    return json.loads(data)
