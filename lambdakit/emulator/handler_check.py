"""A Python handler's name checked when serve starts, without importing the user's code.

Lambda finds a Python handler ``pkg/mod.function`` (or ``pkg.mod.function``) by importing the
module from the task root (then the rest of ``sys.path``) and reading the attribute; a mistake
surfaces only at the first invocation, as ``Runtime.ImportModuleError`` or
``Runtime.HandlerNotFound`` (https://docs.aws.amazon.com/lambda/latest/dg/python-handler.html).
serve checks what it can before that, and says what to do:

- a handler without a function part (``app``) is an error;
- a module found neither in the code directory nor on the path the runtime will have
  (``PYTHONPATH``, this interpreter's ``sys.path``) is an error naming the code directory;
- a function that the module's source does not define at top level is a warning with the
  closest names, since a module may make it at import time (``globals()``, ``__getattr__``);
  so is a module whose source does not parse.

Modules are found with :class:`importlib.machinery.PathFinder` part by part (which reads
directories, never runs a module) and read with :mod:`ast`.
"""

from __future__ import annotations

import ast
import difflib
import importlib.machinery
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from lambdakit.emulator.option_kinds import ConfigError


def check_python_handler(
    handler: str, code_dir: Path, env: Mapping[str, str], key: str, code_dir_key: str
) -> tuple[str, ...]:
    """Errors as :class:`ConfigError` (naming ``key``); the warnings, for serve to print."""
    module, dot, function = handler.rpartition(".")
    if not dot or not module or not function:
        example = f"{handler.strip('.') or 'app'}.handler"
        raise ConfigError(
            f"{key}: {handler!r} names no function: write MODULE.FUNCTION, e.g. {example!r}"
        )
    dotted = module.replace("/", ".")
    origin = _find_module(dotted, _search_path(code_dir, env))
    if origin is None:
        raise ConfigError(
            f"{key}: {handler}: no module {dotted!r} in the code directory {str(code_dir)!r} "
            f"({code_dir_key}){_close_modules(dotted, code_dir)}"
        )
    if not origin.endswith(".py"):
        return ()
    return _check_source(Path(origin), function, key, handler, code_dir)


def _search_path(code_dir: Path, env: Mapping[str, str]) -> list[str]:
    """Where the runtime will look: its task root, ``PYTHONPATH``, then this interpreter's path
    (the runtime is this interpreter; ``sys.path[0]`` is this process's own start directory)."""
    extra = [entry for entry in env.get("PYTHONPATH", "").split(os.pathsep) if entry]
    return [str(code_dir), *extra, *sys.path[1:]]


def _find_module(dotted: str, path: Sequence[str]) -> str | None:
    """The module's file (or "" for a namespace package or one that is not a file); None if
    it is nowhere.  Nothing is imported."""
    parts = dotted.split(".")
    locations: Sequence[str] | None = path
    spec = None
    for depth in range(len(parts)):
        name = ".".join(parts[: depth + 1])
        spec = importlib.machinery.PathFinder.find_spec(name, locations)
        if spec is None:
            if depth == 0 and _found_by_other_finders(name):
                return ""  # an editable install's finder, a builtin: the runtime will see it
            return None
        locations = spec.submodule_search_locations
        if locations is None and depth < len(parts) - 1:
            return None  # a module, not a package, has no submodules
    assert spec is not None
    return spec.origin or ""


def _found_by_other_finders(name: str) -> bool:
    for finder in sys.meta_path:
        if finder is importlib.machinery.PathFinder:
            continue
        find_spec = getattr(finder, "find_spec", None)
        if find_spec is None:
            continue
        try:
            if find_spec(name, None) is not None:
                return True
        except (ImportError, ValueError, TypeError):
            continue
    return False


def _close_modules(dotted: str, code_dir: Path) -> str:
    try:
        here = [p.stem for p in code_dir.iterdir() if p.suffix == ".py"]
    except OSError:
        return ""
    close = difflib.get_close_matches(dotted, here, n=1)
    if close:
        return f"; did you mean {close[0]!r}?"
    if here:
        return f"; it has {', '.join(repr(n) for n in sorted(here)[:5])}"
    return ""


def _check_source(
    source: Path, function: str, key: str, handler: str, code_dir: Path
) -> tuple[str, ...]:
    try:
        tree = ast.parse(source.read_bytes(), filename=str(source))
    except SyntaxError as exc:
        return (
            f"{key}: {handler}: {_shown(source, code_dir)} line {exc.lineno}: {exc.msg}; the "
            "function will "
            "fail with Runtime.UserCodeSyntaxError until it is fixed",
        )
    except (OSError, ValueError) as exc:
        return (f"{key}: {handler}: cannot read {source}: {exc}",)
    names = set(_top_level_names(tree.body))
    if function in names or "__getattr__" in names or "*" in names:
        return ()
    functions = sorted(
        node.name for node in tree.body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    )
    close = difflib.get_close_matches(function, sorted(names), n=1)
    hint = (
        f"did you mean {close[0]!r}?"
        if close
        else f"its functions: {', '.join(functions)}"
        if functions
        else "it defines no function"
    )
    return (
        f"{key}: {handler}: {_shown(source, code_dir)} defines no {function!r} at top level "
        f"({hint}); "
        "unless it is made at import time, invocations will fail with Runtime.HandlerNotFound",
    )


def _shown(source: Path, code_dir: Path) -> str:
    """The module's file, relative to the code directory when it is there."""
    try:
        return str(source.relative_to(code_dir))
    except ValueError:
        return str(source)


def _top_level_names(body: Sequence[ast.stmt]) -> Iterator[str]:
    """Names a module binds when it runs: definitions, assignments and imports, also inside
    top-level ``if``/``try``/``with``/``for`` blocks (not inside functions or classes)."""
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            yield node.name
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                yield from _bound(target)
        elif isinstance(node, ast.AnnAssign | ast.AugAssign):
            yield from _bound(node.target)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            for alias in node.names:
                yield alias.asname or alias.name.split(".")[0]
        else:
            for field in ("body", "orelse", "finalbody", "handlers"):
                for child in getattr(node, field, ()):
                    if isinstance(child, ast.ExceptHandler):
                        yield from _top_level_names(child.body)
                    elif isinstance(child, ast.stmt):
                        yield from _top_level_names([child])


def _bound(target: ast.expr) -> Iterator[str]:
    if isinstance(target, ast.Name):
        yield target.id
    elif isinstance(target, ast.Tuple | ast.List):
        for element in target.elts:
            yield from _bound(element)
    elif isinstance(target, ast.Starred):
        yield from _bound(target.value)
