"""The live view's model, fed a scripted sequence of activity events (no processes, no sockets)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from lambdakit.emulator import activity as ev
from lambdakit.emulator import live_view
from lambdakit.emulator.activity import Activity
from lambdakit.emulator.http.messages import Request, Response, Streamed
from lambdakit.emulator.live_view import LiveView


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


class FakeWriter:
    """A :class:`ResponseWriter` that keeps what is written; ``gone()`` is the browser leaving."""

    def __init__(self) -> None:
        self.status = 0
        self.headers: Sequence[tuple[str, str]] = ()
        self.data = bytearray()
        self.finished = False
        self._gone = False
        self.pause: Callable[[], None] | None = None
        self.resume: Callable[[], None] | None = None

    def start(self, status: int, headers: Sequence[tuple[str, str]]) -> None:
        self.status, self.headers = status, headers

    def write(self, data: bytes) -> None:
        assert not self.closed
        self.data += data

    def finish(self) -> None:
        self.finished = True

    @property
    def closed(self) -> bool:
        return self.finished or self._gone

    def set_flow(self, pause: Callable[[], None], resume: Callable[[], None]) -> None:
        self.pause, self.resume = pause, resume

    def gone(self) -> None:
        self._gone = True

    def events(self) -> list[tuple[str, dict[str, Any]]]:
        """The Server-Sent Events written so far, as (event, data)."""
        out = []
        for block in bytes(self.data).decode().split("\n\n"):
            fields = dict(
                line.split(": ", 1) for line in block.splitlines() if not line.startswith(":")
            )
            if "event" in fields:
                out.append((fields["event"], json.loads(fields["data"])))
        return out


def get(view: LiveView, path: str, method: str = "GET") -> Response | Streamed:
    reply = view(Request(method, path, "", {}, b""))
    assert isinstance(reply, (Response, Streamed))
    return reply


def state(view: LiveView) -> Any:
    reply = get(view, "/_lambdakit/state")
    assert isinstance(reply, Response) and reply.status == 200
    assert ("Content-Type", "application/json") in reply.headers
    result = json.loads(reply.body)
    assert isinstance(result, dict)
    return result


def open_stream(view: LiveView) -> FakeWriter:
    reply = get(view, "/_lambdakit/events")
    assert isinstance(reply, Streamed)
    writer = FakeWriter()
    reply.attach(writer)
    return writer


def invocation(
    activity: Activity,
    clock: Clock,
    request_id: str,
    *,
    function: str = "fn",
    environment: str = "fn#1",
    cold: bool = False,
    error: str = "",
    after: float = 0.5,
    status: str = "success",
    extension: str = "",
) -> None:
    """One invocation's events, 0.1 s until the response and ``after`` s after it."""
    at = clock.now
    activity.publish(ev.InvocationStarted(function, environment, request_id, at, cold, 10))
    activity.publish(ev.EnvironmentState(function, environment, ev.BUSY, at))
    activity.publish(ev.InvocationResponded(function, environment, request_id, at + 0.1, error, 7))
    activity.publish(ev.EnvironmentState(function, environment, ev.AFTER_RESPONSE, at + 0.1))
    activity.publish(ev.NextCalled(function, environment, request_id, "", at + 0.1 + after))
    if extension:
        activity.publish(ev.NextCalled(function, environment, request_id, extension, at + 0.7))
    end = at + 0.1 + max(after, 0.6 if extension else 0)
    activity.publish(
        ev.InvocationEnded(
            function, environment, request_id, end, status, 612.3, 613, 40, 55.5 if cold else None
        )
    )
    activity.publish(ev.EnvironmentState(function, environment, ev.IDLE, end))
    clock.now = end + 1


def test_the_state_holds_environments_counters_and_invocations() -> None:
    activity, clock = Activity(), Clock()
    view = LiveView(activity, ["fn", "other"], clock=clock)
    activity.publish(ev.EnvironmentState("fn", "fn#1", ev.STARTING, clock.now))
    activity.publish(ev.InitEnded("fn", "fn#1", clock.now + 0.05, 50.0))
    invocation(activity, clock, "r1", cold=True, extension="audit")
    # A function error: the response has its type, the end says "error" (as PhaseLog publishes).
    invocation(activity, clock, "r2", error="Function.Unhandled", status="error")
    activity.publish(ev.Throttled("fn", clock.now))
    activity.publish(ev.EventRetried("fn", "r2", 1, clock.now))
    activity.publish(ev.InitEnded("other", "other#1", clock.now, 12.0, "Runtime.ExitError"))

    result = state(view)
    assert result["now"] == clock.now
    functions = {f["name"]: f for f in result["functions"]}
    assert list(functions) == ["fn", "other"]
    assert functions["fn"]["counters"] == {
        "invocations": 2,
        "errors": 1,
        "throttles": 1,
        "cold_starts": 1,
        "init_errors": 0,
        "retries": 1,
    }
    assert functions["other"]["counters"]["init_errors"] == 1
    [env] = functions["fn"]["environments"]
    assert env["name"] == "fn#1" and env["state"] == ev.IDLE and env["invocations"] == 2
    assert env["current"] is None
    first, second = result["invocations"]
    assert first["request_id"] == "r1" and first["status"] == "success"
    assert first["init_ms"] == 55.5  # REPORT's Init Duration wins over INIT's own figure
    assert set(first["next"]) == {"runtime", "audit"}
    assert abs(first["ended"] - first["responded"] - 0.6) < 1e-6
    assert first["payload_bytes"] == 10 and first["response_bytes"] == 7
    assert first["duration_ms"] == 612.3 and first["billed_duration_ms"] == 613
    assert first["max_memory_used_mb"] == 40
    assert second["status"] == "error" and second["error_type"] == "Function.Unhandled"
    assert second["init_ms"] is None
    assert set(second) == {
        "request_id",
        "function",
        "environment",
        "started",
        "init_ms",
        "responded",
        "ended",
        "status",
        "error_type",
        "payload_bytes",
        "response_bytes",
        "duration_ms",
        "billed_duration_ms",
        "max_memory_used_mb",
        "next",
        "lines",
    }


def test_a_running_invocation_and_a_timeout() -> None:
    activity, clock = Activity(), Clock()
    view = LiveView(activity, ["fn"], clock=clock)
    activity.publish(ev.InvocationStarted("fn", "fn#1", "r1", clock.now, False, 2))
    [running] = state(view)["invocations"]
    assert running["status"] == "running" and running["responded"] is None
    assert state(view)["functions"][0]["environments"][0]["current"] == "r1"
    activity.publish(
        ev.InvocationEnded("fn", "fn#1", "r1", clock.now + 3, "timeout", 3000, 3000, 1, None)
    )
    [timed_out] = state(view)["invocations"]
    assert timed_out["status"] == "timeout" and timed_out["responded"] is None
    assert state(view)["functions"][0]["counters"]["errors"] == 1


def test_the_model_is_bounded() -> None:
    activity, clock = Activity(), Clock()
    view = LiveView(activity, ["fn"], clock=clock)
    writer = open_stream(view)  # lines are kept only while someone watches
    for n in range(live_view.HISTORY + 30):
        invocation(activity, clock, f"r{n}", after=0.0)
    last = f"r{live_view.HISTORY + 29}"
    for n in range(live_view.LINES + 20):
        activity.publish(ev.OutputLine("fn", "fn#1", last, "function", f"line {n}", clock.now))
    invocations = state(view)["invocations"]
    assert isinstance(invocations, list) and len(invocations) == live_view.HISTORY
    assert invocations[0]["request_id"] == "r30" and invocations[-1]["request_id"] == last
    lines = invocations[-1]["lines"]
    assert len(lines) == live_view.LINES
    assert lines[0][2] == "line 20" and lines[-1][2] == f"line {live_view.LINES + 19}"
    # Stopped environments: only the most recent few stay.
    for n in range(live_view.DEAD_KEPT + 5):
        activity.publish(ev.EnvironmentState("fn", f"fn#{n + 2}", ev.DEAD, clock.now))
    envs = state(view)["functions"][0]["environments"]
    assert len([e for e in envs if e["state"] == ev.DEAD]) == live_view.DEAD_KEPT
    assert "fn#1" in [e["name"] for e in envs]
    view.close()
    assert writer.finished


def test_lines_are_asked_for_only_while_a_stream_is_open() -> None:
    activity, clock = Activity(), Clock()
    view = LiveView(activity, ["fn"], clock=clock)
    assert not activity.wants_lines and not view.wants_lines
    first = open_stream(view)
    second = open_stream(view)
    assert activity.wants_lines and view.streams == 2
    first.gone()
    view.sweep()
    assert activity.wants_lines and view.streams == 1
    second.gone()
    assert view.sweep() is False
    assert not activity.wants_lines and not view.wants_lines
    # Events keep coming to the model without lines.
    invocation(activity, clock, "r1")
    assert state(view)["invocations"][0]["lines"] == []
    # A browser that leaves is noticed on the next write too.
    third = open_stream(view)
    third.gone()
    invocation(activity, clock, "r2")
    assert not activity.wants_lines and view.streams == 0


def test_lines_attach_to_their_invocation_or_the_environment_s_current_one() -> None:
    activity, clock = Activity(), Clock()
    view = LiveView(activity, ["fn"], clock=clock)
    writer = open_stream(view)
    activity.publish(ev.InvocationStarted("fn", "fn#1", "r1", clock.now, False, 2))
    activity.publish(ev.OutputLine("fn", "fn#1", "r1", "function", "named", clock.now))
    activity.publish(ev.OutputLine("fn", "fn#1", "", "extension", "unnamed", clock.now))
    activity.publish(ev.OutputLine("fn", "fn#1", "", "platform", "EXTENSION x", clock.now))
    activity.publish(ev.InvocationEnded("fn", "fn#1", "r1", clock.now, "success", 1, 1, 1, None))
    activity.publish(ev.OutputLine("fn", "fn#1", "", "function", "between", clock.now))
    [inv] = state(view)["invocations"]
    assert [line[1:] for line in inv["lines"]] == [
        ["function", "named"],
        ["extension", "unnamed"],
        ["platform", "EXTENSION x"],
    ]
    lines = [data for kind, data in writer.events() if kind == "line"]
    assert [data["request_id"] for data in lines] == ["r1", "r1", "r1", None]
    assert lines[-1]["line"][2] == "between"
    view.close()


def test_the_event_stream_starts_with_a_snapshot_then_follows() -> None:
    activity, clock = Activity(), Clock()
    view = LiveView(activity, ["fn"], clock=clock)
    invocation(activity, clock, "before")
    writer = open_stream(view)
    assert writer.status == 200
    assert ("Content-Type", "text/event-stream; charset=utf-8") in writer.headers
    kind, snapshot = writer.events()[0]
    assert kind == "snapshot"
    assert [i["request_id"] for i in snapshot["invocations"]] == ["before"]
    invocation(activity, clock, "after", cold=True)
    kinds = [kind for kind, _ in writer.events()]
    assert {"invocation", "environment", "function"} <= set(kinds[1:])
    updates = [data for kind, data in writer.events() if kind == "invocation"]
    assert all(data["request_id"] == "after" for data in updates)
    assert updates[-1]["status"] == "success" and updates[-1]["ended"] is not None
    # A ping every PING_INTERVAL seconds keeps proxies from closing it.
    clock.now += live_view.PING_INTERVAL
    assert view.sweep()
    assert bytes(writer.data).endswith(b": ping\n\n")
    view.close()
    assert writer.finished and not activity.wants_lines
    # Closed: nothing more is written, and the view has left the stream.
    size = len(writer.data)
    invocation(activity, clock, "late")
    assert len(writer.data) == size


def test_a_reader_that_falls_behind_is_cut_off() -> None:
    activity, clock = Activity(), Clock()
    view = LiveView(activity, ["fn"], clock=clock)
    writer = open_stream(view)
    assert writer.pause is not None and writer.resume is not None
    writer.pause()
    size = len(writer.data)
    invocation(activity, clock, "r1")
    assert len(writer.data) == size  # held while paused
    writer.resume()
    assert any(data.get("request_id") == "r1" for _, data in writer.events())
    writer.pause()
    big = "x" * 10_000
    for n in range(live_view.BACKLOG_LIMIT // 10_000 + 2):
        activity.publish(ev.InvocationStarted("fn", "fn#1", f"big{n}", clock.now, False, 1))
        activity.publish(ev.OutputLine("fn", "fn#1", f"big{n}", "function", big, clock.now))
    assert writer.finished and view.streams == 0 and not activity.wants_lines


def test_paths() -> None:
    view = LiveView(Activity(), ["fn"])
    page = get(view, "/_lambdakit/")
    assert isinstance(page, Response) and page.status == 200
    assert ("Content-Type", "text/html; charset=utf-8") in page.headers
    assert b"<title>lambdakit live view</title>" in page.body
    assert b"http://" not in page.body and b"https://" not in page.body  # works offline
    redirect = get(view, "/_lambdakit")
    assert isinstance(redirect, Response) and redirect.status == 301
    missing = get(view, "/_lambdakit/nothing")
    assert isinstance(missing, Response) and missing.status == 404
    assert json.loads(missing.body)["error"] == "NotFound"
    post = get(view, "/_lambdakit/state", "POST")
    assert isinstance(post, Response) and post.status == 405


def test_a_broken_event_does_not_unsubscribe_the_view() -> None:
    activity, clock = Activity(), Clock()
    view = LiveView(activity, ["fn"], clock=clock)
    activity.publish(ev.NextCalled("fn", "fn#1", "unknown", "", clock.now))  # ignored
    activity.publish(
        ev.InvocationEnded("fn", "fn#9", "unknown", clock.now, "success", 1, 1, 1, None)
    )
    invocation(activity, clock, "r1")
    assert [i["request_id"] for i in state(view)["invocations"]] == ["r1"]


def test_unwatched_events_wait_unapplied_until_someone_asks_and_counters_stay_exact() -> None:
    activity, clock = Activity(), Clock()
    view = LiveView(activity, ["fn"], clock=clock)
    invocation(activity, clock, "r-1")
    assert len(view._unread) == 7 and not view._invocations  # queued, the model untouched
    assert [i["request_id"] for i in state(view)["invocations"]] == ["r-1"]  # caught up
    assert not view._unread
    writer = open_stream(view)  # a page is open: each event is applied at once
    invocation(activity, clock, "r-2")
    assert not view._unread and "r-2" in view._invocations
    assert any(
        kind == "invocation" and data["request_id"] == "r-2" for kind, data in writer.events()
    )
    writer.gone()
    view.sweep()
    activity.publish(ev.EnvironmentState("fn", "fn#2", ev.FROZEN, clock.now))
    for n in range(live_view.UNREAD_KEPT):  # far more than the queue keeps: the oldest go
        activity.publish(ev.Throttled("fn", clock.now + n))
    invocation(activity, clock, "r-3")
    assert len(view._unread) == live_view.UNREAD_KEPT
    figures = state(view)
    assert figures["invocations"][-1]["request_id"] == "r-3"
    counters = figures["functions"][0]["counters"]
    assert counters["throttles"] == live_view.UNREAD_KEPT  # counters are exact all the same
    assert counters["invocations"] == 3
    environments = {e["name"]: e for e in figures["functions"][0]["environments"]}
    assert environments["fn#2"]["state"] == ev.FROZEN  # its change fell out of the queue
    assert environments["fn#1"]["invocations"] == 3


def test_an_on_demand_environment_follows_its_invocations_events() -> None:
    activity, clock = Activity(), Clock()
    view = LiveView(activity, ["fn"], clock=clock)

    def env_state(name: str) -> str:
        environments = state(view)["functions"][0]["environments"]
        return str(next(e["state"] for e in environments if e["name"] == name))

    at = clock.now
    activity.publish(ev.EnvironmentState("fn", "fn#1", ev.IDLE, at))
    activity.publish(ev.InvocationStarted("fn", "fn#1", "r1", at + 1, True, 10))
    assert env_state("fn#1") == ev.BUSY  # unwatched: caught up on asking
    activity.publish(ev.InvocationResponded("fn", "fn#1", "r1", at + 2, "", 3))
    assert env_state("fn#1") == ev.AFTER_RESPONSE
    writer = open_stream(view)  # watched: at once, and sent to the page
    activity.publish(ev.InvocationEnded("fn", "fn#1", "r1", at + 3, "success", 2e3, 2000, 9, None))
    assert env_state("fn#1") == ev.IDLE
    assert any(k == "environment" and d["state"] == ev.IDLE for k, d in writer.events())
    # Managed Instances: the environment says busy and idle itself.
    activity.publish(ev.EnvironmentState("fn", "fn#2", ev.BUSY, at + 4))
    activity.publish(ev.InvocationStarted("fn", "fn#2", "r2", at + 4, True, 10, True))
    activity.publish(ev.InvocationResponded("fn", "fn#2", "r2", at + 5, "", 3))
    activity.publish(
        ev.InvocationEnded("fn", "fn#2", "r2", at + 5, "success", 1e3, 1000, 9, None, False)
    )
    assert env_state("fn#2") == ev.BUSY


def test_a_state_an_invocation_implied_survives_its_events_falling_out_of_the_queue() -> None:
    activity, clock = Activity(), Clock()
    view = LiveView(activity, ["fn"], clock=clock)
    at = clock.now
    # On demand, as PhaseLog publishes it: no EnvironmentState, the invocation's events say it.
    activity.publish(ev.InvocationStarted("fn", "fn#1", "a", at, False, 1))
    activity.publish(ev.InvocationStarted("fn", "fn#2", "b", at, False, 1))
    activity.publish(ev.InvocationResponded("fn", "fn#2", "b", at + 0.1, "", 1))
    activity.publish(ev.InvocationStarted("fn", "fn#3", "c", at, False, 1))
    activity.publish(ev.InvocationResponded("fn", "fn#3", "c", at + 0.1, "", 1))
    activity.publish(ev.InvocationEnded("fn", "fn#3", "c", at + 0.2, "success", 1.0, 1, 1, None))
    # Managed Instances: the events of one of its invocations imply nothing of the environment.
    activity.publish(ev.EnvironmentState("fn", "fn#4", ev.BUSY, at))
    activity.publish(ev.InvocationStarted("fn", "fn#4", "d", at, False, 1, concurrent=True))
    activity.publish(ev.InvocationResponded("fn", "fn#4", "d", at + 0.1, "", 1))
    activity.publish(
        ev.InvocationEnded(
            "fn", "fn#4", "d", at + 0.2, "success", 1.0, 1, 1, None, after_response_known=False
        )
    )
    for n in range(live_view.UNREAD_KEPT):  # every event above falls out of the queue
        activity.publish(ev.NextCalled("fn", "fn#9", f"x{n}", "", at + 1))
    environments = {e["name"]: e["state"] for e in state(view)["functions"][0]["environments"]}
    assert environments["fn#1"] == ev.BUSY
    assert environments["fn#2"] == ev.AFTER_RESPONSE
    assert environments["fn#3"] == ev.IDLE
    assert environments["fn#4"] == ev.BUSY
