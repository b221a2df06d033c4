"""The Managed Instances environment's I/O-free core, in memory: every table entry, by behaviour.

Each scenario drives a :class:`ManagedMachine` as workers, the pool and the shell would, and
checks the outcomes.  ``test_the_scenarios_visit_every_table_entry`` fails when an entry of
``MANAGED_SANDBOX_TRANSITIONS`` or ``SLOT_TRANSITIONS`` has no scenario.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from lambdakit.emulator import lifecycle
from lambdakit.emulator.invocation import Invocation, InvocationRequest, InvocationResult
from lambdakit.emulator.lifecycle import IllegalTransition, SandboxEvent, SandboxState, SlotState
from lambdakit.emulator.managed_machine import Ended, ManagedMachine
from lambdakit.emulator.sandbox_machine import (
    ACCEPTED,
    GONE,
    HELD,
    INIT_ENDED,
    Accepted,
    Expired,
    UnknownRequest,
    WrongState,
)
from tests.emulator.core.table_coverage import Table, unvisited

S = SandboxState


class Worker:
    """A worker's held ``GET next``; ``alive`` goes False when its connection drops."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.alive = True

    def __repr__(self) -> str:
        return f"<Worker {self.name}>"


def _invocation(request_id: str) -> Invocation:
    results: list[InvocationResult] = []
    return Invocation(InvocationRequest(b"{}", "arn:aws:lambda:x"), results.append, request_id)


def _phase(machine: ManagedMachine) -> SandboxState:
    """The phase, read afresh (so that type narrowing does not carry over between events)."""
    return machine.state


def _ready(limit: int = 2, workers: int = 2) -> tuple[ManagedMachine, list[Worker]]:
    machine = ManagedMachine("f#1", limit)
    waiting = [Worker(f"w{n}") for n in range(workers)]
    for worker in waiting:
        assert machine.runtime_next(worker) is HELD
    assert machine.phase_over(extensions_waiting=True) is INIT_ENDED
    return machine, waiting


# Init -------------------------------------------------------------------------------------------
def init_ends_once_a_worker_and_every_extension_wait() -> None:
    machine = ManagedMachine("f#1", 4)
    assert machine.phase_over(extensions_waiting=True) is None  # no worker yet
    assert machine.runtime_next(Worker("w0")) is HELD
    assert machine.phase_over(extensions_waiting=False) is None
    assert machine.free_slots == 0  # no work before Init is over
    assert machine.phase_over(extensions_waiting=True) is INIT_ENDED
    assert machine.state is S.IDLE and machine.free_slots == 1
    assert machine.phase_over(extensions_waiting=True) is None  # once


def the_first_init_error_counts_and_later_ones_are_refused() -> None:
    machine = ManagedMachine("f#1", 3)
    assert machine.init_error() is ACCEPTED
    assert machine.state is S.STOPPING
    assert machine.init_error() == WrongState("InitError", "InitError")
    assert machine.runtime_next(Worker("late")) is GONE


def failures_during_init() -> None:
    for event in (SandboxEvent.TIMEOUT, SandboxEvent.EXIT, SandboxEvent.STOP):
        machine = ManagedMachine("f#1", 2)
        assert machine.fail(event) == ()
        assert machine.state is S.STOPPING


# Work -------------------------------------------------------------------------------------------
def invocations_overlap_up_to_the_limit_and_end_in_any_order() -> None:
    machine, workers = _ready(limit=2, workers=2)
    extra = Worker("extra")  # more workers than the limit may wait; work stays within it
    assert machine.runtime_next(extra) is HELD
    first, second = _invocation("a"), _invocation("b")
    assigned = machine.invoke(first, 100)
    assert assigned.waiter is workers[0] and assigned.slot.invocation is first  # FIFO workers
    assert machine.state is S.INVOKING and machine.free_slots == 1
    assert machine.invoke(second, 200).waiter is workers[1]
    assert machine.waiting == 1 and machine.free_slots == 0
    with pytest.raises(RuntimeError, match="no free slot"):
        machine.invoke(_invocation("c"), 300)
    assert machine.runtime_result("b") == Accepted(second)
    assert machine.end("b") == Ended(second, idle=False)
    assert machine.runtime_result("a") == Accepted(first)
    assert machine.end("a") == Ended(first, idle=True)
    assert _phase(machine) is S.IDLE and not machine.slots


def results_name_an_invocation_in_flight() -> None:
    machine, _ = _ready()
    assert machine.runtime_result("nobody") == UnknownRequest("nobody")
    assert machine.stream_started("nobody") == UnknownRequest("nobody")
    machine.invoke(_invocation("a"), 100)
    assert machine.runtime_result("a") == Accepted(machine.slots["a"].invocation)
    # Answered twice before it left: refused (400, as AWS's RIE), never applied.
    assert machine.runtime_result("a") == UnknownRequest("a")
    assert machine.stream_started("a") == UnknownRequest("a")
    machine.end("a")
    assert machine.runtime_result("a") == UnknownRequest("a")


def a_stream_is_settled_by_its_end() -> None:
    machine, _ = _ready()
    invocation = _invocation("a")
    machine.invoke(invocation, 100)
    assert machine.stream_started("a") == Accepted(invocation)
    assert machine.slots["a"].lifecycle.state is SlotState.STREAMING
    assert machine.runtime_result("a") == Accepted(invocation)
    assert machine.end("a").idle


def a_timeout_ends_that_invocation_only() -> None:
    machine, _ = _ready(limit=3, workers=3)
    slow, streaming, other = _invocation("slow"), _invocation("streaming"), _invocation("other")
    for invocation in (slow, streaming, other):
        machine.invoke(invocation, 100)
    machine.stream_started("streaming")
    assert machine.time_out("slow") == Ended(slow, idle=False)
    assert machine.time_out("streaming") == Ended(streaming, idle=False)
    assert machine.state is S.INVOKING
    # Its worker answers late: told once that it timed out, then the id is unknown.
    assert machine.runtime_result("slow") == Expired("slow")
    assert machine.runtime_result("slow") == UnknownRequest("slow")
    assert machine.stream_started("streaming") == Expired("streaming")
    assert machine.time_out("slow") is None
    assert machine.runtime_result("other") == Accepted(other)
    assert machine.time_out("other") is None  # responded: its timer lost the race
    assert machine.end("other").idle


def the_last_timeout_makes_the_environment_idle() -> None:
    machine, _ = _ready()
    invocation = _invocation("a")
    machine.invoke(invocation, 100)
    assert machine.time_out("a") == Ended(invocation, idle=True)
    assert machine.state is S.IDLE


def a_worker_whose_connection_dropped_gets_no_work() -> None:
    machine, workers = _ready(limit=3, workers=2)
    workers[0].alive = False
    assert machine.waiting == 1 and machine.free_slots == 1
    assert machine.invoke(_invocation("a"), 100).waiter is workers[1]
    assert machine.free_slots == 0


# Failures ---------------------------------------------------------------------------------------
def a_crash_takes_every_invocation_in_flight_down() -> None:
    machine, _ = _ready()
    first, second = _invocation("a"), _invocation("b")
    machine.invoke(first, 100)
    machine.invoke(second, 100)
    assert machine.fail(SandboxEvent.EXIT) == (first, second)
    assert machine.state is S.STOPPING and machine.free_slots == 0
    assert machine.runtime_next(Worker("late")) is GONE
    assert machine.fail(SandboxEvent.EXIT) == ()  # another process exiting meanwhile
    assert machine.fail(SandboxEvent.STOP) == ()
    assert machine.release_waiters() == []
    machine.reaped()
    assert _phase(machine) is S.DEAD
    with pytest.raises(IllegalTransition):
        machine.fail(SandboxEvent.STOP)


def a_stop_takes_every_invocation_in_flight_down() -> None:
    machine, workers = _ready(limit=3, workers=3)
    invocation = _invocation("a")
    machine.invoke(invocation, 100)
    assert machine.fail(SandboxEvent.STOP) == (invocation,)
    assert machine.release_waiters() == workers[1:]


def failures_of_an_idle_environment() -> None:
    for event in (SandboxEvent.EXIT, SandboxEvent.STOP):
        machine, workers = _ready()
        assert machine.fail(event) == ()
        assert machine.state is S.STOPPING
        assert machine.release_waiters() == workers


SCENARIOS: list[Callable[[], None]] = [
    init_ends_once_a_worker_and_every_extension_wait,
    the_first_init_error_counts_and_later_ones_are_refused,
    failures_during_init,
    invocations_overlap_up_to_the_limit_and_end_in_any_order,
    results_name_an_invocation_in_flight,
    a_stream_is_settled_by_its_end,
    a_timeout_ends_that_invocation_only,
    the_last_timeout_makes_the_environment_idle,
    a_worker_whose_connection_dropped_gets_no_work,
    a_crash_takes_every_invocation_in_flight_down,
    a_stop_takes_every_invocation_in_flight_down,
    failures_of_an_idle_environment,
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__)
def test_scenario(scenario: Callable[[], None]) -> None:
    scenario()


def test_the_scenarios_visit_every_table_entry() -> None:
    tables: dict[str, Table] = {
        "managed sandbox": lifecycle.MANAGED_SANDBOX_TRANSITIONS,
        "slot": lifecycle.SLOT_TRANSITIONS,
    }
    missing = unvisited(tables, SCENARIOS)
    assert not missing, "table entries no scenario exercises:\n" + "\n".join(missing)
