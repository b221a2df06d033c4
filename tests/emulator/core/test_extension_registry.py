"""The Extensions API registry, in memory: registration rules, held ``next``, event delivery."""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from lambdakit.emulator import lifecycle
from lambdakit.emulator.extension_registry import (
    INVOKE,
    Extension,
    ExtensionRegistry,
    FunctionIdentity,
)
from lambdakit.emulator.http import Request, Response
from lambdakit.emulator.lifecycle import ExtensionState
from lambdakit.wire import headers
from tests.emulator.core.table_coverage import unvisited

IDENTITY = FunctionIdentity("f", "$LATEST", "app.handler", "123456789012")


class Calls:
    def __init__(self) -> None:
        self.waiting = 0
        self.failed: list[tuple[str, str, bool]] = []

    def on_waiting(self) -> None:
        self.waiting += 1

    def on_failed(self, extension: Extension, error_type: str, body: bytes, init: bool) -> None:
        self.failed.append((extension.name, error_type, init))


def _request(fields: dict[str, str], body: bytes = b"") -> Request:
    return Request("POST", "/", "", {k.lower(): v for k, v in fields.items()}, body)


def _register(registry: ExtensionRegistry, name: str, events: list[str]) -> str:
    reply = registry.register(
        _request({headers.EXTENSION_NAME: name}, json.dumps({"events": events}).encode())
    )
    assert reply.status == 200, reply.body
    identifier = dict(reply.headers)["Lambda-Extension-Identifier"]
    return identifier


def _next(registry: ExtensionRegistry, identifier: str) -> asyncio.Future[Response]:
    reply = registry.next(_request({headers.EXTENSION_IDENTIFIER: identifier}))
    assert isinstance(reply, asyncio.Future), reply
    return reply


def _state(extension: Extension) -> ExtensionState:
    return extension.state


def _run(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(scenario())


def _registry(external: frozenset[str] = frozenset()) -> tuple[ExtensionRegistry, Calls]:
    calls = Calls()
    return ExtensionRegistry(IDENTITY, external, calls.on_waiting, calls.on_failed), calls


async def _events_wait_for_next_and_next_ends_the_event() -> None:
    registry, calls = _registry(frozenset({"ext"}))
    identifier = _register(registry, "ext", [INVOKE, "SHUTDOWN"])
    extension = registry.by_id[identifier]
    assert extension.external
    assert _state(extension) is ExtensionState.REGISTERED
    assert not registry.all_waiting()
    registry.invoke("r-1", 5, "arn", "Root=1")  # queued: the extension is still initializing
    first = _next(registry, identifier)  # REGISTERED --next--> WAITING, then the queued event
    assert json.loads(first.result().body)["requestId"] == "r-1"
    assert _state(extension) is ExtensionState.BUSY
    second = _next(registry, identifier)  # BUSY --next--> WAITING: done with the event
    assert not second.done() and registry.all_waiting() and calls.waiting == 1
    third = _next(registry, identifier)  # WAITING --next--> WAITING: replaces the held one
    assert second.cancelled() and not third.done()
    registry.shutdown("spindown", 9)  # WAITING --event--> BUSY
    assert json.loads(third.result().body) == {
        "eventType": "SHUTDOWN",
        "shutdownReason": "spindown",
        "deadlineMs": 9,
    }


async def _errors_end_an_extension_in_any_state() -> None:
    registry, calls = _registry()
    registered = _register(registry, "a", [])
    waiting = _register(registry, "b", [])
    busy = _register(registry, "c", [INVOKE])
    _next(registry, waiting)
    _next(registry, busy)
    registry.invoke("r-1", 5, "arn", "")
    assert registry.by_id[busy].state is ExtensionState.BUSY
    for identifier, phase in ((registered, "init"), (waiting, "exit"), (busy, "exit")):
        fields = {headers.EXTENSION_IDENTIFIER: identifier, headers.EXTENSION_ERROR_TYPE: "E.x"}
        assert registry.report_error(_request(fields), phase).status == 202
        assert registry.by_id[identifier].state is ExtensionState.FAILED
    assert [(name, init) for name, _, init in calls.failed] == [
        ("a", True),
        ("b", False),
        ("c", False),
    ]
    refused = registry.next(_request({headers.EXTENSION_IDENTIFIER: registered}))
    assert isinstance(refused, Response) and refused.status == 403


async def _registration_rules() -> None:
    registry, _ = _registry()
    assert registry.register(_request({})).status == 403
    _register(registry, "a", [])
    assert registry.register(_request({headers.EXTENSION_NAME: "a"})).status == 403
    internal_shutdown = _request({headers.EXTENSION_NAME: "b"}, b'{"events": ["SHUTDOWN"]}')
    assert registry.register(internal_shutdown).status == 403
    deep = b"[" * 100_000 + b"]" * 100_000  # nested deeper than the parser goes: bad input
    assert registry.register(_request({headers.EXTENSION_NAME: "d"}, deep)).status == 400
    registry.open = False
    assert registry.register(_request({headers.EXTENSION_NAME: "c"})).status == 403


SCENARIOS = [
    _events_wait_for_next_and_next_ends_the_event,
    _errors_end_an_extension_in_any_state,
    _registration_rules,
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__.strip("_"))
def test_scenario(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    _run(scenario)


def test_the_scenarios_visit_every_extension_table_entry() -> None:
    scenarios = [functools.partial(_run, scenario) for scenario in SCENARIOS]
    missing = unvisited({"extension": lifecycle.EXTENSION_TRANSITIONS}, scenarios)
    assert not missing, missing
