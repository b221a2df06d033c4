"""Turn a handler string (``pkg.sub.mod.fn``, ``pkg/sub/mod.fn``) into the function to call.

Error types and messages are awslambdaric's, byte for byte, so callers and alarms that match on
them keep working (see docs/runtime.md for the table).
"""

from __future__ import annotations

import importlib
import sys

from lambdakit.runtime.errors import FaultError
from lambdakit.wire import errors

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable


def load_handler(handler: str) -> Callable[..., object]:
    """Import the handler's module (the function's init code) and return the function."""
    try:
        modname, fname = handler.rsplit(".", 1)
    except ValueError as exc:
        raise FaultError(
            errors.RUNTIME_MALFORMED_HANDLER_NAME, f"Bad handler '{handler}': {exc}"
        ) from None
    if modname.split(".")[0] in sys.builtin_module_names:
        raise FaultError(
            errors.RUNTIME_BUILT_IN_MODULE_CONFLICT,
            f"Cannot use built-in module {modname} as a handler module",
        )
    try:
        module = importlib.import_module(modname.replace("/", "."))
    except ImportError as exc:
        raise FaultError(
            errors.RUNTIME_IMPORT_MODULE_ERROR, f"Unable to import module '{modname}': {exc}"
        ) from None
    except SyntaxError as exc:
        trace = [f'  File "{exc.filename}" Line {exc.lineno}\n    {exc.text}']
        raise FaultError(
            errors.RUNTIME_USER_CODE_SYNTAX_ERROR,
            f"Syntax error in module '{modname}': {exc}",
            trace,
        ) from None
    try:
        function: Callable[..., object] = getattr(module, fname)
    except AttributeError:
        raise FaultError(
            errors.RUNTIME_HANDLER_NOT_FOUND, f"Handler '{fname}' missing on module '{modname}'"
        ) from None
    return function
