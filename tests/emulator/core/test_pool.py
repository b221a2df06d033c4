"""The pool's scheduling, in memory, with sandboxes that are only their lifecycle."""

from __future__ import annotations

import asyncio
import types
from collections.abc import Callable, Coroutine
from typing import Any, cast

import pytest

from lambdakit.emulator import pool as pool_module
from lambdakit.emulator.config import FunctionConfig, ServiceConfig
from lambdakit.emulator.invocation import Invocation, InvocationRequest, InvocationResult
from lambdakit.emulator.lifecycle import SandboxState
from lambdakit.emulator.logs import LogSink
from lambdakit.emulator.pool import Pool, Throttled
from lambdakit.emulator.sandbox_base import SandboxListener
from lambdakit.emulator.sandbox_machine import InitFailure


class FakeSandbox:
    """Records what the pool asks; the test plays the runtime's side."""

    def __init__(self, listener: SandboxListener, number: int) -> None:
        self.listener = listener
        self.name = f"f#{number}"
        self.idle_since = 0.0
        self.state = SandboxState.STARTING
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.invoked: list[Invocation] = []
        #: Workers waiting for an invocation (one, for an on-demand environment).
        self.free = 0
        self.stopped = False
        #: True while the pool is inside a call this sandbox made (re-entrancy check).
        self.reporting = False

    async def start(self) -> None:
        pass

    def invoke(self, invocation: Invocation) -> None:
        assert not self.reporting, "the pool handed work over on the sandbox's own stack"
        assert self.has_slot
        self.free -= 1
        self.state = SandboxState.INVOKING
        invocation.dispatched()
        self.invoked.append(invocation)

    @property
    def has_slot(self) -> bool:
        return self.free > 0 and self.state in (SandboxState.IDLE, SandboxState.INVOKING)

    @property
    def in_flight(self) -> int:
        return 0 if self.state is SandboxState.IDLE else 1

    def stop(self, grace: float = 0) -> None:
        self.stopped = True
        self.state = SandboxState.STOPPING

    def kill(self) -> None:
        pass

    # The test's side -----------------------------------------------------------------------------
    def ready(self, workers: int = 1) -> None:
        """Init or the invoke phase is over; ``workers`` wait for work (Managed Instances: more)."""
        self.state = SandboxState.IDLE
        self.free += workers
        self.reporting = True
        try:
            self.listener.sandbox_idle(self)  # type: ignore[arg-type]
        finally:
            self.reporting = False

    def dead(self, failure: InitFailure | None = None) -> None:
        self.state = SandboxState.DEAD
        self.listener.sandbox_dead(self, failure)  # type: ignore[arg-type]
        self.closed.set_result(None)


class Harness:
    def __init__(self, concurrency: int = 2, max_queue: int = 1) -> None:
        function = types.SimpleNamespace(
            name="f",
            concurrency=concurrency,
            max_queue=max_queue,
            idle_timeout=60.0,
            max_concurrency=None,
        )
        self.made: list[FakeSandbox] = []

        def factory(listener: SandboxListener, number: int) -> FakeSandbox:
            sandbox = FakeSandbox(listener, number)
            self.made.append(sandbox)
            return sandbox

        self.pool = Pool(
            cast(ServiceConfig, None),
            cast(FunctionConfig, function),
            cast(LogSink, None),
            {},
            factory,
        )
        self.results: dict[str, InvocationResult] = {}

    def invocation(self, request_id: str) -> Invocation:
        def done(result: InvocationResult) -> None:
            self.results[request_id] = result

        return Invocation(InvocationRequest(b"{}", "arn"), done, request_id)

    def submit(self, request_id: str, *, bounded: bool = True) -> Invocation:
        invocation = self.invocation(request_id)
        self.pool.submit(invocation, bounded=bounded)
        return invocation


async def _turn() -> None:
    """Let callbacks scheduled with call_soon run."""
    await asyncio.sleep(0)
    await asyncio.sleep(0)


async def _scale_out_delay() -> None:
    """Let the pool's wait before it starts another environment pass."""
    await asyncio.sleep(pool_module.SCALE_OUT_DELAY * 5)


def _run(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(scenario())


async def _a_cold_start_then_warm_reuse() -> None:
    h = Harness()
    first = h.submit("r-1")
    assert len(h.made) == 1 and h.pool.busy == 2  # one starting, one waiting
    sandbox = h.made[0]
    sandbox.ready()  # Init over: the pool does not invoke on this stack
    assert sandbox.invoked == []
    await _turn()
    assert sandbox.invoked == [first]
    sandbox.ready()  # the invoke phase is over, nothing waits: it goes to the idle stack
    second = h.submit("r-2")
    assert sandbox.invoked == [first, second] and len(h.made) == 1


async def _the_most_recently_idle_environment_is_reused() -> None:
    h = Harness()
    h.submit("r-1")
    h.submit("r-2")
    a, b = h.made
    a.ready()
    b.ready()
    await _turn()
    a.ready()
    b.ready()  # b is idle most recently
    third = h.submit("r-3")
    assert b.invoked[-1] is third


async def _queued_work_keeps_its_order_and_the_queue_is_bounded() -> None:
    h = Harness(concurrency=1, max_queue=1)
    h.submit("r-1")
    h.submit("r-2")  # the bound covers the environment that is starting, plus max_queue
    with pytest.raises(Throttled):
        h.submit("r-3")
    h.submit("r-3", bounded=False)  # a door with its own bound (AMQP prefetch) always queues
    (sandbox,) = h.made
    sandbox.ready()
    await _turn()
    sandbox.ready()
    await _turn()
    sandbox.ready()
    await _turn()
    assert [i.request_id for i in sandbox.invoked] == ["r-1", "r-2", "r-3"]


async def _new_work_waits_behind_queued_work() -> None:
    h = Harness(concurrency=1, max_queue=5)
    h.submit("r-1")
    (sandbox,) = h.made
    sandbox.ready()
    late = h.submit("r-2")  # the sandbox is idle but r-1 is waiting: r-2 must not jump ahead
    await _turn()
    assert sandbox.invoked[0].request_id == "r-1"
    sandbox.ready()
    await _turn()
    assert sandbox.invoked[1] is late


async def _an_init_failure_takes_one_waiting_invocation_down() -> None:
    h = Harness(concurrency=1, max_queue=5)
    h.submit("r-1")
    h.submit("r-2")
    (first,) = h.made
    first.dead(InitFailure("Runtime.ExitError", "exited"))
    assert h.results["r-1"].error_type == "Runtime.ExitError"
    assert "r-2" not in h.results
    assert len(h.made) == 2  # a fresh environment for the rest
    h.made[1].ready()
    await _turn()
    assert [i.request_id for i in h.made[1].invoked] == ["r-2"]


async def _stop_fails_queued_work_and_stops_every_environment() -> None:
    h = Harness(concurrency=1, max_queue=5)
    h.submit("r-1")
    (sandbox,) = h.made
    stopping = asyncio.ensure_future(h.pool.stop())
    await _turn()
    assert sandbox.stopped
    assert h.results["r-1"].error_type == "Sandbox.Failure"
    with pytest.raises(Throttled):
        h.submit("r-2")
    sandbox.dead()
    await stopping


async def _an_environment_that_dies_idle_is_not_reused() -> None:
    h = Harness()
    h.submit("r-1")
    (sandbox,) = h.made
    sandbox.ready()
    await _turn()
    sandbox.ready()
    sandbox.dead()
    h.submit("r-2")
    assert len(h.made) == 2 and sandbox.invoked[-1].request_id == "r-1"


async def _one_environment_running_r1() -> tuple[Harness, FakeSandbox]:
    """A function that may have 4 environments, its first one running ``r-1``."""
    h = Harness(concurrency=4, max_queue=5)
    h.submit("r-1")
    (sandbox,) = h.made
    sandbox.ready()
    await _turn()
    return h, sandbox


async def _a_busy_environment_that_asks_for_next_soon_takes_the_work_no_new_one() -> None:
    h, sandbox = await _one_environment_running_r1()
    second = h.submit("r-2")  # its caller is a little ahead of the runtime's next
    assert len(h.made) == 1
    sandbox.ready()  # r-1's invoke phase is over
    await _turn()
    assert sandbox.invoked[-1] is second
    await _scale_out_delay()
    assert len(h.made) == 1  # no cold start for nothing
    third = h.submit("r-3")  # this time the runtime stays busy: another environment starts
    await _scale_out_delay()
    assert len(h.made) == 2
    h.made[1].ready()
    await _turn()
    assert h.made[1].invoked == [third]


async def _an_environment_asking_for_next_as_the_wait_ends_takes_the_work_no_new_one() -> None:
    h, sandbox = await _one_environment_running_r1()
    second = h.submit("r-2")
    timer = h.pool._scale_timer
    assert timer is not None
    # r-1's phase ends in the loop iteration in which the wait ends, just before the timer runs
    asyncio.get_running_loop().call_at(timer.when() - 1e-9, sandbox.ready)
    await _scale_out_delay()
    assert sandbox.invoked[-1] is second
    assert len(h.made) == 1  # no cold start for nothing


async def _an_environment_that_is_stopping_is_not_waited_for() -> None:
    h, sandbox = await _one_environment_running_r1()
    sandbox.ready()
    h.pool.reap_idle()  # idle too long (since 0.0): stopping, not dead yet
    assert sandbox.stopped
    h.submit("r-2")
    assert len(h.made) == 2  # started at once: the stopping one will not ask for next


SCENARIOS = [
    _a_busy_environment_that_asks_for_next_soon_takes_the_work_no_new_one,
    _an_environment_asking_for_next_as_the_wait_ends_takes_the_work_no_new_one,
    _an_environment_that_is_stopping_is_not_waited_for,
    _a_cold_start_then_warm_reuse,
    _the_most_recently_idle_environment_is_reused,
    _queued_work_keeps_its_order_and_the_queue_is_bounded,
    _new_work_waits_behind_queued_work,
    _an_init_failure_takes_one_waiting_invocation_down,
    _stop_fails_queued_work_and_stops_every_environment,
    _an_environment_that_dies_idle_is_not_reused,
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__.strip("_"))
def test_scenario(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    _run(scenario)


# --- reload (serve --watch) ---------------------------------------------------------------------
async def _a_reload_lets_running_work_finish_and_stops_the_old_environments() -> None:
    h = Harness(concurrency=3, max_queue=5)
    h.submit("r-1")
    (busy,) = h.made
    busy.ready()
    await _turn()
    h.submit("r-2")
    await _scale_out_delay()  # busy runs r-1: r-2 waits a moment for it before a new one starts
    idle = h.made[1]
    idle.ready()
    await _turn()
    idle.ready()  # r-2 answered: idle; busy still runs r-1
    h.pool.reload()
    assert idle.stopped and not busy.stopped
    assert len(h.made) == 3 and h.pool.stale == 2  # one new environment at once (pre-warm)
    fresh = h.made[2]
    late = h.submit("r-3")  # new work never goes to an old environment
    assert busy.invoked[-1].request_id == "r-1" and late not in busy.invoked
    busy.ready()  # r-1 is over: the old environment stops instead of taking work
    assert busy.stopped
    await _turn()
    fresh.ready()
    await _turn()
    assert fresh.invoked == [late]
    assert "r-1" not in h.results  # r-1 was never cut off
    busy.dead()
    idle.dead()
    assert h.pool.stale == 0 and len(h.made) == 3


async def _a_reload_keeps_the_concurrency() -> None:
    h = Harness(concurrency=1, max_queue=5)
    h.submit("r-1")
    (old,) = h.made
    old.ready()
    await _turn()
    h.pool.reload()
    h.submit("r-2")
    assert len(h.made) == 1 and not old.stopped  # at most one environment, even now
    old.ready()
    assert old.stopped
    await _turn()
    assert [i.request_id for i in old.invoked] == ["r-1"]
    old.dead()
    assert len(h.made) == 2
    h.made[1].ready()
    await _turn()
    assert [i.request_id for i in h.made[1].invoked] == ["r-2"]


async def _a_reload_stops_an_environment_in_init_and_starts_none_for_an_unused_function() -> None:
    h = Harness(concurrency=2, max_queue=5)
    h.pool.reload()
    assert h.made == []  # nothing was warm: nothing to warm again
    h.submit("r-1")
    (starting,) = h.made
    h.pool.reload()  # its Init may have read the old code
    assert starting.stopped and len(h.made) == 2
    starting.dead(InitFailure("Runtime.ExitError", "stopped"))
    assert "r-1" not in h.results  # its failure is not the waiting invocation's
    h.made[1].ready()
    await _turn()
    assert [i.request_id for i in h.made[1].invoked] == ["r-1"]


SCENARIOS += [
    _a_reload_lets_running_work_finish_and_stops_the_old_environments,
    _a_reload_keeps_the_concurrency,
    _a_reload_stops_an_environment_in_init_and_starts_none_for_an_unused_function,
]
