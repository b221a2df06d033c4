"""A pool and its sandboxes inside the test's own event loop, with the real bash runtime."""

from __future__ import annotations

import asyncio
import io
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from lambdakit.emulator.activity import (
    ActivityEvent,
    EnvironmentState,
    InvocationEnded,
    InvocationResponded,
    InvocationStarted,
    NextCalled,
    OutputLine,
)
from lambdakit.emulator.config import FunctionConfig, ServiceConfig
from lambdakit.emulator.invocation import Invocation, InvocationRequest, InvocationResult
from lambdakit.emulator.lifecycle import IllegalTransition, SandboxEvent, SandboxState
from lambdakit.emulator.logs import LogSink
from lambdakit.emulator.pool import Pool
from lambdakit.emulator.sandbox_machine import SandboxMachine
from tests.serving import BASH_RUNTIME, process_alive

TIMEOUT = 30.0


def _function(handler: str, timeout: float = 3.0) -> FunctionConfig:
    return FunctionConfig(
        name="f",
        command=(str(BASH_RUNTIME / "bootstrap"),),
        code_dir=BASH_RUNTIME,
        handler=handler,
        timeout=timeout,
        concurrency=1,
    )


async def _with_pool(
    function: FunctionConfig, body: Callable[[Pool, io.BytesIO], Awaitable[None]]
) -> None:
    stream = io.BytesIO()
    sink = LogSink(stream)
    pool = Pool(ServiceConfig({"f": function}), function, sink, dict(os.environ))
    try:
        await body(pool, stream)
    finally:
        await asyncio.wait_for(pool.stop(), TIMEOUT)


async def _invoke(pool: Pool, payload: bytes) -> InvocationResult:
    done: asyncio.Future[InvocationResult] = asyncio.get_running_loop().create_future()
    pool.submit(Invocation(InvocationRequest(payload, "arn:aws:lambda:f"), done.set_result))
    return await asyncio.wait_for(done, TIMEOUT)


def test_a_warm_environment_answers_and_reports_init_duration_once() -> None:
    async def body(pool: Pool, stream: io.BytesIO) -> None:
        first = await _invoke(pool, b'{"n": 1}')
        second = await _invoke(pool, b'{"n": 2}')
        assert (first.body, second.body) == (b'{"n": 1}', b'{"n": 2}')
        assert len(pool.sandboxes) == 1
        sandbox = next(iter(pool.sandboxes))
        for _ in range(100):  # the invoke phase ends when the runtime asks for the next event
            if sandbox.state is SandboxState.IDLE:
                break
            await asyncio.sleep(0.05)
        log = stream.getvalue().decode()
        assert log.count("REPORT RequestId") == 2, log
        assert log.count("Init Duration") == 1, log

    asyncio.run(_with_pool(_function("function.echo_event"), body))


def test_an_illegal_transition_in_a_timer_fails_the_invocation_and_resets(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug in a timer callback is logged, the caller is answered, no process is left."""
    original = SandboxMachine.fail
    broken: list[SandboxEvent] = []

    def fail_once(self: SandboxMachine, event: SandboxEvent) -> Any:
        if event is SandboxEvent.TIMEOUT and not broken:
            broken.append(event)
            raise IllegalTransition("sandbox f#1", event, self.state)
        return original(self, event)

    monkeypatch.setattr(SandboxMachine, "fail", fail_once)

    async def body(pool: Pool, stream: io.BytesIO) -> None:
        result = await _invoke(pool, b"{}")  # sleep_long outlives the 0.5 s timeout
        assert result.error_type == "Sandbox.Failure", result
        assert b"internal error" in result.body
        sandbox = next(iter(pool.sandboxes), None)
        if sandbox is not None:
            await asyncio.wait_for(asyncio.shield(sandbox.closed), TIMEOUT)
        assert not pool.sandboxes
        again = await _invoke(pool, b"{}")  # a fresh environment; it times out the usual way
        assert again.error_type == "Sandbox.Timedout", again

    with caplog.at_level(logging.ERROR, logger="lambdakit.sandbox"):
        asyncio.run(_with_pool(_function("function.sleep_long", timeout=0.5), body))
    assert broken == [SandboxEvent.TIMEOUT]
    messages = [r.getMessage() for r in caplog.records]
    assert any("f#1: internal error" in m for m in messages), messages
    errors = [r for r in caplog.records if r.exc_info]
    assert errors and isinstance(errors[0].exc_info[1], IllegalTransition)  # type: ignore[index]
    assert not any(process_alive(pid) for pid in _bash_children())


def _bash_children() -> list[int]:
    """Processes of this test still running the tests' bash runtime."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                if str(BASH_RUNTIME / "bootstrap").encode() in cmdline.read():
                    with open(f"/proc/{entry}/stat") as stat:
                        if int(stat.read().rsplit(")", 1)[1].split()[1]) == os.getpid():
                            found.append(int(entry))
        except (OSError, ValueError, IndexError):
            continue
    return found


def test_the_activity_stream_tells_each_phase_of_an_invocation_in_order() -> None:
    """What the metrics and the live view read: one event per moment, in the order it happened."""
    seen: list[ActivityEvent] = []

    async def body(pool: Pool, stream: io.BytesIO) -> None:
        pool.activity.subscribe(seen.append, lines=True)
        await _invoke(pool, b'{"n": 1}')
        await _invoke(pool, b'{"n": 2}')
        sandbox = next(iter(pool.sandboxes))
        for _ in range(100):
            if sandbox.state is SandboxState.IDLE and isinstance(seen[-1], EnvironmentState):
                break
            await asyncio.sleep(0.05)

    asyncio.run(_with_pool(_function("function.echo_event"), body))
    kinds = [
        e.state if isinstance(e, EnvironmentState) else type(e).__name__
        for e in seen
        if not isinstance(e, OutputLine)
        and not (isinstance(e, EnvironmentState) and e.state == "frozen")  # when idle 20 ms
    ]
    # Each invocation's own events move the environment (busy, after-response, idle): four.
    one = ["InvocationStarted", "InvocationResponded", "NextCalled", "InvocationEnded"]
    assert kinds[:3] == ["starting", "InitEnded", "idle"]
    assert kinds[3:11] == one + one, kinds
    assert kinds[-2:] == ["stopping", "dead"]
    started = [e for e in seen if isinstance(e, InvocationStarted)]
    assert [e.cold for e in started] == [True, False]
    assert [e.payload_bytes for e in started] == [8, 8]
    responded = next(e for e in seen if isinstance(e, InvocationResponded))
    ended = next(e for e in seen if isinstance(e, InvocationEnded))
    nexts = [e for e in seen if isinstance(e, NextCalled)]
    assert responded.request_id == ended.request_id == started[0].request_id
    assert (responded.error_type, responded.response_bytes) == ("", 8)
    assert started[0].at <= responded.at <= nexts[0].at <= ended.at
    assert nexts[0].who == "" and ended.status == "success" and ended.init_duration_ms
    lines = [e for e in seen if isinstance(e, OutputLine) and e.kind == "function"]
    assert any(e.request_id == started[0].request_id for e in lines), lines


def test_a_function_error_ends_with_status_error_in_the_activity_stream() -> None:
    seen: list[ActivityEvent] = []

    async def body(pool: Pool, stream: io.BytesIO) -> None:
        pool.activity.subscribe(seen.append)
        result = await _invoke(pool, b"{}")
        assert not result.ok
        for _ in range(100):
            if any(isinstance(e, InvocationEnded) for e in seen):
                break
            await asyncio.sleep(0.05)
        assert "Status:" not in stream.getvalue().decode()  # REPORT says nothing, as Lambda's

    asyncio.run(_with_pool(_function("function.fail"), body))
    responded = next(e for e in seen if isinstance(e, InvocationResponded))
    ended = next(e for e in seen if isinstance(e, InvocationEnded))
    assert responded.error_type and ended.status == "error"
