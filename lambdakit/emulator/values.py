"""Immutable values that are cheap to make, for what the warm path creates per invocation.

A ``@dataclass(frozen=True)`` sets each field through ``object.__setattr__`` in its
``__init__``, which made building the activity stream's seven events of each invocation cost
about twice what a plain slotted dataclass costs.  :func:`value` gives the type checker a frozen
dataclass (mypy refuses any assignment to a field: ``dataclass_transform(frozen_default=True)``,
PEP 681) and the interpreter a plain ``@dataclass(slots=True)``: the same immutability where it
is checked, none of the cost where it runs.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from typing_extensions import dataclass_transform
else:  # only the type checker reads it (typing has it from Python 3.11 on)

    def dataclass_transform(**_: Any) -> Any:
        return lambda decorated: decorated


T = TypeVar("T")


@dataclass_transform(frozen_default=True)
def value(cls: type[T]) -> type[T]:
    """A slotted dataclass that the type checker treats as frozen (see the module's docstring)."""
    return dataclasses.dataclass(slots=True)(cls)
