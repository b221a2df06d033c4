"""CloudFormation's intrinsic functions, resolved where what they need is known locally.

Theory of operation
-------------------
A template's values may be intrinsic functions
(https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/intrinsic-function-reference.html)
in their long form (:mod:`lambdakit.emulator.template_yaml` turns the short tags into it).  This
module resolves those whose inputs a local service has: ``Ref`` of a parameter (its value from
``--parameter-overrides``, else its ``Default``), of a pseudo parameter (``AWS::Region`` is the
service's region) and of a resource the template serves (a function's name); ``Fn::GetAtt`` of a
function's ``Arn``; ``Fn::Sub``, ``Fn::Join``, ``Fn::Select``, ``Fn::Split``, ``Fn::FindInMap``,
``Fn::Base64``, ``Fn::Length``, ``Fn::ToJsonString``; ``Fn::If`` with the template's
``Conditions`` (``Fn::Equals``, ``Fn::Not``, ``Fn::And``, ``Fn::Or``, ``Condition``).
``AWS::NoValue`` removes the property or item that holds it.

What cannot be known here (an attribute of a table, an imported value, a parameter without a
value) becomes :class:`Unresolved`, and a warning naming where it was: the caller decides what
the property then means (an environment variable is empty, a code directory is an error).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

#: Pseudo parameters with one value everywhere (AWS::Region and AWS::AccountId are the service's).
_FIXED_PSEUDO = {
    "AWS::Partition": "aws",
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::StackName": "local",
}
_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")


@dataclass(frozen=True)
class Unresolved:
    """A value a local service cannot know; ``text`` shows the function (``!GetAtt T.Arn``)."""

    text: str


class _NoValue:
    def __repr__(self) -> str:
        return "AWS::NoValue"


#: ``!Ref AWS::NoValue``: the property or list item holding it is removed.
NO_VALUE: Any = _NoValue()


@dataclass(frozen=True)
class Scope:
    """What the template's values may refer to."""

    #: Each parameter's value, or Unresolved when it has none.
    parameters: Mapping[str, Any]
    region: str
    account_id: str
    #: A served resource's ``Ref`` value (a function's name), by logical id.
    refs: Mapping[str, str] = field(default_factory=dict)
    #: ``(logical id, attribute)`` to its value (a function's ``Arn``).
    attributes: Mapping[tuple[str, str], str] = field(default_factory=dict)
    conditions: Mapping[str, Any] = field(default_factory=dict)
    mappings: Mapping[str, Any] = field(default_factory=dict)


def short(value: Any) -> str:
    """An intrinsic as a person writes it: ``!Ref Name``, ``!GetAtt Res.Attr``."""
    if isinstance(value, dict) and len(value) == 1:
        ((key, argument),) = value.items()
        name = key.removeprefix("Fn::")
        if key == "Fn::GetAtt" and isinstance(argument, list):
            argument = ".".join(str(part) for part in argument)
        if isinstance(argument, (str, int, float)):
            return f"!{name} {argument}"
        return f"!{name} {json.dumps(argument, default=str)}"
    return json.dumps(value, default=str)


def is_intrinsic(value: Any) -> bool:
    """Whether ``value`` is one intrinsic function in its long form (``{"Ref": ...}``)."""
    return (
        isinstance(value, dict)
        and len(value) == 1
        and (next(iter(value)) in {"Ref", "Condition"} or next(iter(value)) in _FUNCTIONS)
    )


class Resolver:
    """Resolves values against a :class:`Scope`; each unknown is reported to ``warn``."""

    def __init__(self, scope: Scope, warn: Callable[[str], None]) -> None:
        self._scope = scope
        self._warn = warn
        self._conditions: dict[str, Any] = {}

    def resolve(self, value: Any, where: str) -> Any:
        """``value`` with every intrinsic resolved (or Unresolved), ``AWS::NoValue`` removed."""
        if isinstance(value, dict):
            if is_intrinsic(value):
                ((key, argument),) = value.items()
                if key == "Condition":
                    return self.condition(str(argument), where)
                if key == "Ref":
                    return self._ref(argument, where)
                return _FUNCTIONS[key](self, argument, where)
            resolved = {k: self.resolve(v, f"{where}.{k}") for k, v in value.items()}
            return {k: v for k, v in resolved.items() if v is not NO_VALUE}
        if isinstance(value, list):
            items = [self.resolve(item, where) for item in value]
            return [item for item in items if item is not NO_VALUE]
        return value

    def unresolved(self, value: Any, where: str, why: str = "") -> Unresolved:
        text = short(value)
        self._warn(f"{where}: {text} cannot be resolved locally{why}")
        return Unresolved(text)

    # --- Ref and conditions ---------------------------------------------------------------------
    def _ref(self, name: Any, where: str) -> Any:
        scope = self._scope
        if not isinstance(name, str):
            return self.unresolved({"Ref": name}, where)
        if name in scope.parameters:
            value = scope.parameters[name]
            if isinstance(value, Unresolved):
                why = " (the parameter has no Default: give it with --parameter-overrides)"
                return self.unresolved({"Ref": name}, where, why)
            return value
        if name == "AWS::NoValue":
            return NO_VALUE
        if name == "AWS::Region":
            return scope.region
        if name == "AWS::AccountId":
            return scope.account_id
        if name in _FIXED_PSEUDO:
            return _FIXED_PSEUDO[name]
        if name == "AWS::NotificationARNs":
            return []
        if name in scope.refs:
            return scope.refs[name]
        return self.unresolved({"Ref": name}, where)

    def condition(self, name: str, where: str) -> Any:
        """The value of the template's condition ``name`` (True, False or Unresolved)."""
        if name not in self._conditions:
            definition = self._scope.conditions.get(name)
            if definition is None:
                self._conditions[name] = self.unresolved(
                    {"Condition": name}, where, " (no such condition)"
                )
            else:
                self._conditions[name] = Unresolved(f"!Condition {name}")  # a cycle stays unknown
                self._conditions[name] = self._truth(
                    self.resolve(definition, f"Conditions.{name}"), where
                )
        return self._conditions[name]

    def _truth(self, value: Any, where: str) -> Any:
        if isinstance(value, (bool, Unresolved)):
            return value
        if isinstance(value, str) and value.lower() in {"true", "false"}:
            return value.lower() == "true"
        return self.unresolved(value, where, " (not a condition)")


def _all_known(*values: Any) -> Unresolved | None:
    for value in values:
        if isinstance(value, Unresolved):
            return value
        if isinstance(value, list):
            found = _all_known(*value)
            if found:
                return found
    return None


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _sub(resolver: Resolver, argument: Any, where: str) -> Any:
    variables: dict[str, Any] = {}
    if isinstance(argument, list) and len(argument) == 2 and isinstance(argument[1], dict):
        template = argument[0]
        variables = resolver.resolve(argument[1], where)
    else:
        template = argument
    if not isinstance(template, str):
        return resolver.unresolved({"Fn::Sub": argument}, where)
    unknown: list[str] = []

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.startswith("!"):
            return "${" + name[1:] + "}"
        if name in variables:
            value = variables[name]
        elif "." in name:
            value = resolver.resolve({"Fn::GetAtt": name.split(".", 1)}, where)
        else:
            value = resolver.resolve({"Ref": name}, where)
        if isinstance(value, Unresolved) or value is NO_VALUE:
            unknown.append(name)
            return match.group(0)
        return _text(value)

    text = _SUB_VARIABLE.sub(replace, template)
    return Unresolved(short({"Fn::Sub": argument})) if unknown else text


def _get_att(resolver: Resolver, argument: Any, where: str) -> Any:
    if isinstance(argument, list) and len(argument) == 2:
        resource, attribute = resolver.resolve(argument, where)
        key = (str(resource), str(attribute))
        if key in resolver._scope.attributes:
            return resolver._scope.attributes[key]
    return resolver.unresolved({"Fn::GetAtt": argument}, where)


def _join(resolver: Resolver, argument: Any, where: str) -> Any:
    resolved = resolver.resolve(argument, where)
    if not (isinstance(resolved, list) and len(resolved) == 2 and isinstance(resolved[1], list)):
        return (
            resolved
            if isinstance(resolved, Unresolved)
            else resolver.unresolved({"Fn::Join": argument}, where)
        )
    delimiter, items = resolved
    if _all_known(delimiter, items):
        return Unresolved(short({"Fn::Join": argument}))
    return _text(delimiter).join(_text(item) for item in items)


def _select(resolver: Resolver, argument: Any, where: str) -> Any:
    resolved = resolver.resolve(argument, where)
    if _all_known(resolved):
        return Unresolved(short({"Fn::Select": argument}))
    try:
        index, items = resolved
        return items[int(index)]
    except (TypeError, ValueError, IndexError, KeyError):
        return resolver.unresolved({"Fn::Select": argument}, where, " (bad index or list)")


def _split(resolver: Resolver, argument: Any, where: str) -> Any:
    resolved = resolver.resolve(argument, where)
    if _all_known(resolved):
        return Unresolved(short({"Fn::Split": argument}))
    if isinstance(resolved, list) and len(resolved) == 2 and isinstance(resolved[1], str):
        return resolved[1].split(_text(resolved[0]))
    return resolver.unresolved({"Fn::Split": argument}, where)


def _find_in_map(resolver: Resolver, argument: Any, where: str) -> Any:
    resolved = resolver.resolve(argument, where)
    if _all_known(resolved):
        return Unresolved(short({"Fn::FindInMap": argument}))
    try:
        name, top, second = resolved[:3]
        return resolver.resolve(resolver._scope.mappings[name][top][second], where)
    except (TypeError, ValueError, KeyError):
        return resolver.unresolved({"Fn::FindInMap": argument}, where, " (no such entry)")


def _if(resolver: Resolver, argument: Any, where: str) -> Any:
    if not (isinstance(argument, list) and len(argument) == 3):
        return resolver.unresolved({"Fn::If": argument}, where)
    truth = resolver.condition(str(argument[0]), where)
    if isinstance(truth, Unresolved):
        return Unresolved(short({"Fn::If": argument}))
    return resolver.resolve(argument[1] if truth else argument[2], where)


def _equals(resolver: Resolver, argument: Any, where: str) -> Any:
    resolved = resolver.resolve(argument, where)
    if _all_known(resolved):
        return Unresolved(short({"Fn::Equals": argument}))
    if isinstance(resolved, list) and len(resolved) == 2:
        return _text(resolved[0]) == _text(resolved[1])
    return resolver.unresolved({"Fn::Equals": argument}, where)


def _logic(combine: Callable[[list[bool]], bool], name: str) -> Any:
    def evaluate(resolver: Resolver, argument: Any, where: str) -> Any:
        items = argument if isinstance(argument, list) else [argument]
        truths = [resolver._truth(resolver.resolve(item, where), where) for item in items]
        if _all_known(truths):
            return Unresolved(short({name: argument}))
        return combine(truths)

    return evaluate


def _base64(resolver: Resolver, argument: Any, where: str) -> Any:
    value = resolver.resolve(argument, where)
    if isinstance(value, Unresolved):
        return value
    return base64.b64encode(_text(value).encode()).decode()


def _length(resolver: Resolver, argument: Any, where: str) -> Any:
    value = resolver.resolve(argument, where)
    if _all_known(value) or not isinstance(value, list):
        return Unresolved(short({"Fn::Length": argument}))
    return len(value)


def _to_json(resolver: Resolver, argument: Any, where: str) -> Any:
    value = resolver.resolve(argument, where)
    if _all_known(value):
        return Unresolved(short({"Fn::ToJsonString": argument}))
    return json.dumps(value, separators=(",", ":"))


def _unknowable(name: str) -> Any:
    def evaluate(resolver: Resolver, argument: Any, where: str) -> Any:
        return resolver.unresolved({name: argument}, where)

    return evaluate


_FUNCTIONS: dict[str, Callable[[Resolver, Any, str], Any]] = {
    "Fn::Sub": _sub,
    "Fn::GetAtt": _get_att,
    "Fn::Join": _join,
    "Fn::Select": _select,
    "Fn::Split": _split,
    "Fn::FindInMap": _find_in_map,
    "Fn::If": _if,
    "Fn::Equals": _equals,
    "Fn::Not": _logic(lambda truths: not truths[0], "Fn::Not"),
    "Fn::And": _logic(all, "Fn::And"),
    "Fn::Or": _logic(any, "Fn::Or"),
    "Fn::Base64": _base64,
    "Fn::Length": _length,
    "Fn::ToJsonString": _to_json,
    "Fn::GetAZs": _unknowable("Fn::GetAZs"),
    "Fn::ImportValue": _unknowable("Fn::ImportValue"),
    "Fn::Cidr": _unknowable("Fn::Cidr"),
    "Fn::Transform": _unknowable("Fn::Transform"),
}
