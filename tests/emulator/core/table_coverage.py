"""Which entries of the lifecycle tables a set of scenarios makes a Lifecycle move on."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from lambdakit.emulator import lifecycle

Table = Mapping[Any, Mapping[Any, Any]]


@contextmanager
def _recording() -> Iterator[set[tuple[int, Any, Any]]]:
    seen: set[tuple[int, Any, Any]] = set()
    original = lifecycle.Lifecycle.fire

    def fire(self: Any, event: Any) -> Any:
        seen.add((id(self._table), self.state, event))
        return original(self, event)

    lifecycle.Lifecycle.fire = fire  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        lifecycle.Lifecycle.fire = original  # type: ignore[method-assign]


def unvisited(tables: Mapping[str, Table], scenarios: Iterable[Callable[[], None]]) -> list[str]:
    """The entries of ``tables`` that none of ``scenarios`` fires, as ``name: state --event-->``."""
    with _recording() as seen:
        for scenario in scenarios:
            scenario()
    return [
        f"{name}: {state.value} --{event.value}-->"
        for name, table in tables.items()
        for state, moves in table.items()
        for event in moves
        if (id(table), state, event) not in seen
    ]
