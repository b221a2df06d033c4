"""The sandbox's I/O-free core, in memory: every entry of every lifecycle table, by behaviour.

Each scenario drives a :class:`SandboxMachine` (or an :class:`Invocation`) through the calls a
runtime, the pool and the shell make, and checks the outcomes.  Removing a table entry makes
the scenario that needs it raise ``IllegalTransition`` or get a refusal;
``test_the_scenarios_visit_every_table_entry`` fails when an entry has no scenario.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from lambdakit.emulator import lifecycle
from lambdakit.emulator.invocation import Invocation, InvocationRequest, InvocationResult
from lambdakit.emulator.lifecycle import (
    IllegalTransition,
    InvocationState,
    RuntimeState,
    SandboxEvent,
    SandboxState,
)
from lambdakit.emulator.sandbox_machine import (
    GONE,
    HELD,
    INIT_ENDED,
    Accepted,
    Delivered,
    InvokeEnded,
    SandboxMachine,
    UnknownRequest,
    WrongState,
)
from tests.emulator.core.table_coverage import Table, unvisited

S, R = SandboxState, RuntimeState


def _invocation(request_id: str = "r-1") -> Invocation:
    results: list[InvocationResult] = []
    return Invocation(InvocationRequest(b"{}", "arn:aws:lambda:x"), results.append, request_id)


def _states(machine: SandboxMachine) -> tuple[SandboxState, RuntimeState]:
    return machine.state, machine.runtime_state


def _idle() -> SandboxMachine:
    machine = SandboxMachine("f#1")
    assert machine.runtime_next() is HELD
    assert machine.phase_over(extensions_waiting=True) is INIT_ENDED
    return machine


def _invoked(request_id: str = "r-1") -> tuple[SandboxMachine, Invocation]:
    machine = _idle()
    invocation = _invocation(request_id)
    machine.invoke(invocation, 1234)
    assert machine.delivered() == Delivered(invocation, 1234)
    return machine, invocation


def _responded() -> tuple[SandboxMachine, Invocation]:
    machine, invocation = _invoked()
    assert machine.runtime_result("r-1") == Accepted(invocation)
    return machine, invocation


# Scenarios ----------------------------------------------------------------------------------------
def init_ends_when_the_runtime_and_every_extension_wait() -> None:
    machine = SandboxMachine("f#1")
    assert _states(machine) == (S.STARTING, R.STARTED)
    assert machine.phase_over(extensions_waiting=True) is None  # the runtime has not asked yet
    assert machine.runtime_next() is HELD
    assert machine.phase_over(extensions_waiting=False) is None
    assert machine.phase_over(extensions_waiting=True) is INIT_ENDED
    assert _states(machine) == (S.IDLE, R.WAITING)


def a_second_next_replaces_the_held_one() -> None:
    machine = SandboxMachine("f#1")
    assert machine.runtime_next() is HELD
    assert machine.runtime_next() is HELD
    assert _states(machine) == (S.STARTING, R.WAITING)


def an_invocation_goes_out_on_the_held_next() -> None:
    machine, invocation = _invoked()
    assert _states(machine) == (S.INVOKING, R.INVOKED)
    assert invocation.state is InvocationState.RUNNING
    assert machine.current is invocation


def a_retried_next_gets_the_event_its_dropped_predecessor_missed() -> None:
    machine = _idle()
    invocation = _invocation()
    machine.invoke(invocation, 99)
    assert _states(machine) == (S.INVOKING, R.ASSIGNED)
    assert machine.runtime_next() == Delivered(invocation, 99)
    assert _states(machine) == (S.INVOKING, R.INVOKED)


def a_response_ends_the_phase_only_at_the_next_next() -> None:
    machine, invocation = _responded()
    assert _states(machine) == (S.RESPONDED, R.RESPONDED)
    assert machine.phase_over(extensions_waiting=True) is None  # work after the response
    assert machine.runtime_next() is HELD
    assert machine.phase_over(extensions_waiting=False) is None  # an extension is still busy
    assert machine.phase_over(extensions_waiting=True) == InvokeEnded(invocation)
    assert _states(machine) == (S.IDLE, R.WAITING)
    assert machine.current is None


def a_response_may_come_from_a_runtime_whose_next_dropped() -> None:
    machine = _idle()
    invocation = _invocation()
    machine.invoke(invocation, 1)
    assert machine.runtime_result("r-1") == Accepted(invocation)
    assert _states(machine) == (S.RESPONDED, R.RESPONDED)


def a_stream_is_settled_by_its_end() -> None:
    machine, invocation = _invoked()
    assert machine.stream_started("r-1") == Accepted(invocation)
    assert _states(machine) == (S.INVOKING, R.STREAMING)
    assert machine.runtime_next() == WrongState("Running", "Ready")
    assert machine.runtime_result("r-1") == Accepted(invocation)
    assert _states(machine) == (S.RESPONDED, R.RESPONDED)


def a_stream_may_start_after_a_dropped_next() -> None:
    machine = _idle()
    invocation = _invocation()
    machine.invoke(invocation, 1)
    assert machine.stream_started("r-1") == Accepted(invocation)
    assert machine.runtime_state is R.STREAMING


def calls_out_of_turn_are_refused_not_applied() -> None:
    machine, _ = _invoked()
    assert machine.runtime_next() == WrongState("Running", "Ready")
    assert machine.runtime_result("r-2") == UnknownRequest("r-2")
    assert machine.init_error() == WrongState("Running", "InitError")
    assert machine.runtime_result("r-1") == Accepted(machine.current)
    assert machine.runtime_result("r-1") == WrongState("InvocationResponse", "InvocationResponse")
    assert machine.stream_started("r-1") == WrongState("InvocationResponse", "InvocationResponse")
    assert _states(machine) == (S.RESPONDED, R.RESPONDED)
    idle = _idle()
    assert idle.runtime_result("r-1") == UnknownRequest("r-1")
    assert idle.init_error() == WrongState("Ready", "InitError")


def an_init_error_before_next_fails_init() -> None:
    machine = SandboxMachine("f#1")
    assert machine.init_error() == Accepted()
    assert _states(machine) == (S.STOPPING, R.FAILED)
    assert machine.runtime_next() is GONE


def an_init_error_while_extensions_initialize_fails_init() -> None:
    machine = SandboxMachine("f#1")
    assert machine.runtime_next() is HELD
    assert machine.init_error() == Accepted()
    assert _states(machine) == (S.STOPPING, R.FAILED)


def failures_during_init() -> None:
    for event in (SandboxEvent.TIMEOUT, SandboxEvent.EXIT, SandboxEvent.STOP):
        machine = SandboxMachine("f#1")
        assert machine.fail(event) is None
        assert machine.over


def failures_of_an_idle_environment() -> None:
    for event in (SandboxEvent.EXIT, SandboxEvent.STOP):
        machine = _idle()
        assert machine.fail(event) is None
        assert machine.state is S.STOPPING
    with pytest.raises(IllegalTransition):
        _idle().fail(SandboxEvent.TIMEOUT)  # no deadline runs between phases


def failures_cut_off_the_invocation_in_flight() -> None:
    for make in (_invoked, _responded):
        for event in (SandboxEvent.TIMEOUT, SandboxEvent.EXIT, SandboxEvent.STOP):
            machine, invocation = make()
            assert machine.fail(event) is invocation
            assert machine.current is None
            assert machine.runtime_result("r-1") == UnknownRequest("r-1")
            assert machine.runtime_next() is GONE


def a_stopping_environment_takes_more_failures_then_is_reaped() -> None:
    machine = _idle()
    machine.fail(SandboxEvent.STOP)
    for event in (SandboxEvent.EXIT, SandboxEvent.STOP, SandboxEvent.TIMEOUT):
        assert machine.fail(event) is None
    machine.reaped()
    assert machine.state is S.DEAD
    assert machine.runtime_next() is GONE
    with pytest.raises(IllegalTransition, match="event 'invoke' is not allowed in state 'dead'"):
        machine.invoke(_invocation(), 1)


def only_an_idle_environment_takes_work() -> None:
    machine, _ = _invoked()
    with pytest.raises(IllegalTransition, match=r"sandbox f#1: event 'invoke'.*'invoking'"):
        machine.invoke(_invocation("r-2"), 1)
    with pytest.raises(IllegalTransition):
        SandboxMachine("f#2").invoke(_invocation(), 1)


def an_invocation_resolves_exactly_once() -> None:
    queued = _invocation()
    queued.resolve(InvocationResult(b"{}"))  # refused or failed before an environment took it
    assert queued.done
    running = _invocation()
    running.dispatched()
    running.resolve(InvocationResult(b"{}"))
    with pytest.raises(IllegalTransition, match="invocation: event 'resolve'"):
        running.resolve(InvocationResult(b"{}"))


SCENARIOS: list[Callable[[], None]] = [
    init_ends_when_the_runtime_and_every_extension_wait,
    a_second_next_replaces_the_held_one,
    an_invocation_goes_out_on_the_held_next,
    a_retried_next_gets_the_event_its_dropped_predecessor_missed,
    a_response_ends_the_phase_only_at_the_next_next,
    a_response_may_come_from_a_runtime_whose_next_dropped,
    a_stream_is_settled_by_its_end,
    a_stream_may_start_after_a_dropped_next,
    calls_out_of_turn_are_refused_not_applied,
    an_init_error_before_next_fails_init,
    an_init_error_while_extensions_initialize_fails_init,
    failures_during_init,
    failures_of_an_idle_environment,
    failures_cut_off_the_invocation_in_flight,
    a_stopping_environment_takes_more_failures_then_is_reaped,
    only_an_idle_environment_takes_work,
    an_invocation_resolves_exactly_once,
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__)
def test_scenario(scenario: Callable[[], None]) -> None:
    scenario()


# Coverage of the tables -------------------------------------------------------------------------
def test_the_scenarios_visit_every_table_entry() -> None:
    tables: dict[str, Table] = {
        "sandbox": lifecycle.SANDBOX_TRANSITIONS,
        "runtime": lifecycle.RUNTIME_TRANSITIONS,
        "invocation": lifecycle.INVOCATION_TRANSITIONS,
    }
    missing = unvisited(tables, SCENARIOS)
    assert not missing, "table entries no scenario exercises:\n" + "\n".join(missing)
