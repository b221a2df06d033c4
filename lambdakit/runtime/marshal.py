"""Events in, responses out: JSON with UTF-8 kept, ``Decimal`` exact, and no invalid JSON.

Where this differs from awslambdaric (on purpose):
- non-ASCII text stays UTF-8 whatever ``AWS_EXECUTION_ENV`` says (awslambdaric escapes it to
  ``\\uXXXX`` outside the managed 3.12+ runtimes, spending 6 bytes of the 6 MB limit per letter);
- ``NaN`` and ``Infinity`` (float or Decimal) are a ``Runtime.MarshalError`` instead of the
  invalid JSON tokens ``NaN``/``Infinity``.
Like awslambdaric (which encodes with simplejson): ``Decimal`` is written as its exact literal,
``bytes`` inside a value (and as keys) are decoded as UTF-8, named tuples and objects with an
``_asdict()`` method become objects, a returned ``bytes`` goes out unchanged as
``application/unknown``, and an event whose content type is not JSON reaches the handler as bytes.
"""

from __future__ import annotations

import sys

from lambdakit.runtime import fastjson
from lambdakit.runtime.errors import FaultError
from lambdakit.wire import errors
from lambdakit.wire import headers as h

TYPE_CHECKING = False
if TYPE_CHECKING:
    from decimal import Decimal


class _DecimalSeen(Exception):
    """Raised by the fast encoder's ``default`` hook: this value needs the exact-Decimal path."""


def _default(value: object) -> object:
    """What the C encoder cannot write itself, as simplejson's defaults write it."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    asdict = getattr(value, "_asdict", None)
    if callable(asdict):
        return asdict()
    decimal = sys.modules.get("decimal")
    if decimal is not None and isinstance(value, decimal.Decimal):
        raise _DecimalSeen
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _needs_slow_path(value: object, depth: int = 0) -> bool:
    """True if ``value`` holds something the C encoder gets wrong: a named tuple (it would
    write an array) or a ``bytes`` key."""
    if depth > 100:
        return False  # the encoder reports deep recursion itself
    if isinstance(value, dict):
        return any(isinstance(k, bytes) or _needs_slow_path(v, depth + 1) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        if type(value) is not tuple and type(value) is not list and hasattr(value, "_asdict"):
            return True
        return any(_needs_slow_path(v, depth + 1) for v in value)
    return False


def _encode(value: object) -> str:
    return fastjson.dumps(value, allow_nan=False)


def _encode_fast(value: object) -> str:
    return fastjson.dumps(value, allow_nan=False, default=_default)


def unmarshal_event(body: bytes, content_type: str | None) -> object:
    """The handler's ``event``: parsed JSON, or the raw bytes for other content types."""
    if content_type != h.JSON_CONTENT_TYPE:
        return body
    try:
        return fastjson.loads(body)
    except Exception as exc:
        raise FaultError(
            errors.RUNTIME_UNMARSHAL_ERROR, f"Unable to unmarshal input: {exc}"
        ) from exc


def marshal_response(response: object) -> tuple[bytes, str]:
    """Encode a handler's return value as (body, content type)."""
    if isinstance(response, bytes):
        return response, h.BINARY_CONTENT_TYPE
    try:
        text = to_json(response)
    except Exception as exc:
        raise FaultError(errors.RUNTIME_MARSHAL_ERROR, _marshal_message(exc)) from exc
    try:
        return text.encode(), h.JSON_CONTENT_TYPE
    except UnicodeEncodeError:  # a lone surrogate: JSON's \\u escape still carries it
        return fastjson.dumps(fastjson.loads(text), ensure_ascii=True).encode(), (
            h.JSON_CONTENT_TYPE
        )


def to_json(value: object) -> str:
    """Encode ``value``; Decimals (anywhere inside) are written exactly."""
    if isinstance(value, (dict, list, tuple)) and _needs_slow_path(value):
        return "".join(_iter_exact(value))
    try:
        return _encode_fast(value)
    except _DecimalSeen:
        return "".join(_iter_exact(value))


def _marshal_message(exc: Exception) -> str:
    text = str(exc)
    if isinstance(exc, ValueError) and text.startswith("Out of range float values"):
        text = "NaN and Infinity are not valid JSON (" + text + ")"
    return f"Unable to marshal response: {text}"


def _iter_exact(value: object) -> list[str]:
    """The slow path (a Decimal, a named tuple or a bytes key inside): JSON text, Decimals exact."""
    decimal = sys.modules.get("decimal")
    out: list[str] = []
    _write(value, out, decimal.Decimal if decimal is not None else None)
    return out


def _write(value: object, out: list[str], decimal_type: type[Decimal] | None) -> None:
    asdict = getattr(value, "_asdict", None)
    if isinstance(value, tuple) and callable(asdict):
        value = asdict()
    if isinstance(value, dict):
        out.append("{")
        for i, (key, item) in enumerate(value.items()):
            out.append(", " if i else "")
            out.append(_encode(_key(key)))
            out.append(": ")
            _write(item, out, decimal_type)
        out.append("}")
    elif isinstance(value, (list, tuple)):
        out.append("[")
        for i, item in enumerate(value):
            out.append(", " if i else "")
            _write(item, out, decimal_type)
        out.append("]")
    elif decimal_type is not None and isinstance(value, decimal_type):
        if not value.is_finite():
            raise ValueError(f"Out of range float values are not JSON compliant: {value}")
        out.append(str(value))
    else:
        out.append(_encode_fast(value))


def _key(key: object) -> str:
    """Dictionary keys as ``json`` converts them (str, and int/float/bool/None as text)."""
    if isinstance(key, str):
        return key
    if isinstance(key, bytes):
        return key.decode("utf-8")
    if key is None or isinstance(key, (bool, int, float)):
        return _encode(key)  # null, true, false, 1, 1.5
    raise TypeError(f"keys must be str, bytes, int, float, bool or None, not {type(key).__name__}")
