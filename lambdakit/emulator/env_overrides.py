"""``serve --env-vars env.json``: environment variables over the functions', as ``sam local``.

The file is SAM's (https://docs.aws.amazon.com/serverless-application-model/latest/developerguide/serverless-sam-cli-using-invoke.html#serverless-sam-cli-using-invoke-environment-file):
``{"Parameters": {NAME: value}, "Orders": {NAME: value}}``.  ``Parameters`` applies to every
function, a function's own section (by logical id, else by function name, the logical id first
as in SAM) over it.  As in SAM, only the variables a function declares (in the template's
``Environment.Variables``, or a ``lambdakit.toml`` function's ``env`` / ``env_file``) take a
value from the file: a name the function does not declare is not added, and a warning says so
(SAM ignores it in silence, a common surprise).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from lambdakit.emulator.config import FunctionConfig

SHARED = "Parameters"


def apply_env_vars(
    functions: Mapping[str, FunctionConfig],
    sections: Mapping[str, Mapping[str, str]],
    where: str,
    logical_ids: Mapping[str, str] | None = None,
) -> tuple[dict[str, FunctionConfig], list[str]]:
    """``functions`` with the file's values over their declared variables, and the warnings.

    ``logical_ids`` maps a template's logical ids to function names; ``where`` names the file.
    """
    logical_ids = logical_ids or {}
    warnings: list[str] = []
    own: dict[str, dict[str, str]] = {}
    ranked = []
    for section in sections:
        if section == SHARED:
            continue
        if section in logical_ids:
            ranked.append((1, section, logical_ids[section]))
        elif section in functions:
            ranked.append((0, section, section))
        else:
            known = ", ".join(sorted({*functions, *logical_ids}))
            warnings.append(
                f"{where}: section {section!r} names no function of this service ({known}); ignored"
            )
    for _, section, name in sorted(ranked):
        own.setdefault(name, {}).update(sections[section])
    shared = sections.get(SHARED, {})
    result: dict[str, FunctionConfig] = {}
    for name, function in functions.items():
        wanted = {**shared, **own.get(name, {})}
        env = dict(function.env)
        for key in env:
            if key in wanted:
                env[key] = wanted[key]
        result[name] = dataclasses.replace(function, env=env) if env != function.env else function
        for key in own.get(name, {}):
            if key not in env:
                warnings.append(
                    f"{where}: {name}.{key}: {name} does not declare {key}; not set (only "
                    "variables a function declares are overridden, as with sam local)"
                )
    for key in shared:
        if not any(key in function.env for function in functions.values()):
            warnings.append(
                f"{where}: {SHARED}.{key}: no function declares {key}; not set (only variables a "
                "function declares are overridden, as with sam local)"
            )
    return result, warnings
