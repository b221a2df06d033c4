"""Reading a CloudFormation (SAM) template: YAML with the short intrinsic tags, or JSON.

CloudFormation's YAML writes intrinsic functions as tags (``!Ref Name``, ``!Sub "..."``,
``!GetAtt Res.Attr``) that a plain YAML loader refuses.  :class:`TemplateLoader` is PyYAML's
safe loader with a constructor for each of them, building the long form a JSON template spells
(``{"Ref": "Name"}``, ``{"Fn::Sub": "..."}``, ``{"Fn::GetAtt": ["Res", "Attr"]}``), so that one
resolver (:mod:`lambdakit.emulator.intrinsics`) reads both
(https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/intrinsic-function-reference.html).
Errors are one line naming the file, and for bad YAML the line and column.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from lambdakit.emulator.option_kinds import ConfigError

#: Short tags whose long form is ``Fn::<Name>``; ``!Ref`` and ``!Condition`` keep their name.
_FUNCTIONS = (
    "And",
    "Base64",
    "Cidr",
    "Equals",
    "FindInMap",
    "GetAZs",
    "GetAtt",
    "If",
    "ImportValue",
    "Join",
    "Length",
    "Not",
    "Or",
    "Select",
    "Split",
    "Sub",
    "ToJsonString",
    "Transform",
)


class TemplateLoader(yaml.SafeLoader):
    """PyYAML's safe loader, with CloudFormation's short intrinsic tags."""


def _node_value(loader: TemplateLoader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    assert isinstance(node, yaml.MappingNode)
    return loader.construct_mapping(node, deep=True)


def _long_form(key: str) -> Any:
    def construct(loader: TemplateLoader, node: yaml.Node) -> dict[str, Any]:
        value = _node_value(loader, node)
        if key == "Fn::GetAtt" and isinstance(value, str):
            # !GetAtt Resource.Attribute (the attribute may itself hold dots)
            value = value.split(".", 1)
        return {key: value}

    return construct


TemplateLoader.add_constructor("!Ref", _long_form("Ref"))
TemplateLoader.add_constructor("!Condition", _long_form("Condition"))
for _name in _FUNCTIONS:
    TemplateLoader.add_constructor(f"!{_name}", _long_form(f"Fn::{_name}"))


def _timestamp_as_text(loader: TemplateLoader, node: yaml.Node) -> Any:
    # CloudFormation reads '2010-09-09' as text, not a date.
    return loader.construct_scalar(node)  # type: ignore[arg-type]


TemplateLoader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp_as_text)


def load_template(path: Path, flag: str = "--template") -> dict[str, Any]:
    """The template at ``path`` as plain data; :class:`ConfigError` names ``flag`` and the file."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{flag}: cannot read {str(path)!r}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{flag}: {path} is not a text file") from None
    try:
        document = yaml.load(text, Loader=TemplateLoader)  # a SafeLoader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigError(f"{flag}: {path} is not valid YAML{where}: {problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{flag}: {path} is not valid YAML: {exc}") from None
    if not isinstance(document, dict):
        raise ConfigError(f"{flag}: {path} is not a template (expected a mapping at the top)")
    return document
