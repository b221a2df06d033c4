"""``lambdakit extension run TARGET [SCRIPT]``: run a Python external extension.

TARGET is ``module:attribute`` or ``path/to/file.py:attribute``; the attribute is an
:class:`~lambdakit.extensions.Extension` subclass (instantiated with no arguments) or instance.
Lambda recognises an external extension by its registered name, which must be the file name of
the executable it started from /opt/extensions; so the name is, in order: ``--name``, the file
name of SCRIPT (the executable, which a shebang line passes as the last argument), the target's
``name`` attribute, ``LAMBDAKIT_EXTENSION_NAME``.  A file in the extensions directory can be::

    #!/usr/bin/env -S python3 -m lambdakit.extensions run my_extension:Audit

or, where ``lambdakit`` is on PATH::

    #!/bin/sh
    exec lambdakit extension run my_extension:Audit "$0"
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from lambdakit.extensions.client import (
    ExtensionConfigError,
    ExtensionsApiClient,
    ExtensionsApiError,
)
from lambdakit.extensions.external import Extension

#: Names the extension when neither ``--name`` nor SCRIPT does.
NAME_VARIABLE = "LAMBDAKIT_EXTENSION_NAME"
#: Log level of lambdakit's own messages in the extension's output (default: WARNING).
LOG_LEVEL_VARIABLE = "LAMBDAKIT_EXTENSION_LOG_LEVEL"


class UsageError(Exception):
    pass


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lambdakit extension",
        description="Run a Python external extension against the Extensions API.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="register an Extension and serve its events")
    run.add_argument("target", help="module:attribute or file.py:attribute")
    run.add_argument(
        "script",
        nargs="?",
        help="the executable in the extensions directory (its file name is the extension's)",
    )
    run.add_argument("--name", help="the name to register (default: SCRIPT's file name)")
    return parser


def load_extension(target: str, search: Sequence[str] = ()) -> Extension:
    """Import ``module:attribute`` (or ``file.py:attribute``) and return an Extension."""
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise UsageError(f"TARGET must be module:attribute, got {target!r}")
    for directory in search:
        if directory not in sys.path:
            sys.path.insert(0, directory)
    if module_name.endswith(".py"):
        spec = importlib.util.spec_from_file_location(Path(module_name).stem, module_name)
        if spec is None or spec.loader is None:
            raise UsageError(f"cannot load {module_name!r}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(module_name)
    found = getattr(module, attribute, None)
    if isinstance(found, type) and issubclass(found, Extension):
        return found()
    if isinstance(found, Extension):
        return found
    raise UsageError(f"{target} is not an Extension subclass or instance (got {found!r})")


def main(argv: Sequence[str], environ: Mapping[str, str]) -> int:
    try:
        args = _parser().parse_args(list(argv))
    except SystemExit as exc:  # argparse's own exit (usage errors, --help)
        return int(exc.code or 0)
    search = [os.getcwd()]
    if args.script:
        search.append(str(Path(args.script).resolve().parent))
    try:
        extension = load_extension(args.target, search)
        name = (
            args.name
            or (Path(args.script).name if args.script else None)
            or extension.name
            or environ.get(NAME_VARIABLE)
        )
        if not name:
            raise UsageError(f"name the extension: --name, SCRIPT, or {NAME_VARIABLE}")
        client = ExtensionsApiClient.from_environ(environ)
    except (UsageError, ExtensionConfigError, ImportError) as exc:
        sys.stderr.write(f"lambdakit extension: {exc}\n")
        return 2
    _setup_output(environ)
    try:
        return extension.run(name, environ, client)
    except (OSError, ExtensionsApiError) as exc:
        sys.stderr.write(f"lambdakit extension: the Extensions API failed: {exc}\n")
        return 1


def _setup_output(environ: Mapping[str, str]) -> None:
    """Lines must reach Lambda's log as they are written, not when a pipe buffer fills."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(line_buffering=True)
    logging.basicConfig(
        level=environ.get(LOG_LEVEL_VARIABLE, "WARNING").upper(),
        format="[%(name)s] %(levelname)s %(message)s",
        stream=sys.stdout,
    )
