"""``/metrics`` in memory: scripted activity events in, read back by prometheus_client's parser."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import pytest
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from lambdakit.emulator import activity as states
from lambdakit.emulator.activity import (
    Activity,
    AmqpMessage,
    EnvironmentState,
    EventRetried,
    InitEnded,
    InvocationEnded,
    InvocationResponded,
    InvocationStarted,
    NextCalled,
    OutputLine,
    Throttled,
)
from lambdakit.emulator.event_store import EventStore
from lambdakit.emulator.metrics import BUCKETS, Metrics

Labels = tuple[tuple[str, str], ...]


def scrape(metrics: Metrics) -> dict[str, dict[Labels, float]]:
    """Every sample of ``render()``, parsed by prometheus_client: name -> labels -> value."""
    response = metrics.render()
    assert response.status == 200
    assert dict(response.headers)["Content-Type"] == CONTENT_TYPE_LATEST
    samples: dict[str, dict[Labels, float]] = {}
    for family in text_string_to_metric_families(response.body.decode()):
        for sample in family.samples:
            labels = tuple(sorted(sample.labels.items()))
            assert labels not in samples.setdefault(sample.name, {}), sample
            samples[sample.name][labels] = sample.value
    return samples


def value(samples: dict[str, dict[Labels, float]], name: str, **labels: str) -> float:
    return samples[name][tuple(sorted(labels.items()))]


def invoke(
    activity: Activity,
    request_id: str,
    *,
    function: str = "f",
    environment: str = "f#1",
    at: float = 1000.0,
    respond_after: float | None = 0.002,
    end_after: float = 0.003,
    status: str = "success",
    duration_ms: float = 3.0,
    cold: bool = False,
) -> None:
    """One invocation's events, as a sandbox publishes them (``respond_after=None``: no answer,
    as when it timed out)."""
    activity.publish(InvocationStarted(function, environment, request_id, at, cold, 10))
    activity.publish(EnvironmentState(function, environment, states.BUSY, at))
    if respond_after is not None:
        responded = at + respond_after
        error_type = "" if status == "success" else "Unhandled"
        activity.publish(
            InvocationResponded(function, environment, request_id, responded, error_type, 2)
        )
        activity.publish(EnvironmentState(function, environment, states.AFTER_RESPONSE, responded))
        activity.publish(NextCalled(function, environment, request_id, "", at + end_after))
    activity.publish(
        InvocationEnded(
            function, environment, request_id, at + end_after, status, duration_ms, 3, 40, None
        )
    )
    activity.publish(EnvironmentState(function, environment, states.IDLE, at + end_after))


def test_counts_by_function_and_status() -> None:
    activity = Activity()
    metrics = Metrics(activity)
    for number in range(5):
        invoke(activity, f"f-{number}", cold=number == 0)
    invoke(activity, "f-error", status="error")
    invoke(activity, "f-timeout", status="timeout", respond_after=None)
    invoke(activity, "g-1", function="g", environment="g#1", cold=True)
    invoke(activity, "g-2", function="g", environment="g#2", cold=True, status="failure")
    for _ in range(3):
        activity.publish(Throttled("f", 1000.0))
    activity.publish(EventRetried("g", "g-9", 1, 1000.0))
    activity.publish(EventRetried("g", "g-9", 2, 1000.0))

    samples = scrape(metrics)
    assert samples["lambdakit_invocations_total"] == {
        (("function", "f"),): 7,
        (("function", "g"),): 2,
    }
    assert samples["lambdakit_invocation_errors_total"] == {
        (("function", "f"), ("status", "error")): 1,
        (("function", "f"), ("status", "failure")): 0,
        (("function", "f"), ("status", "timeout")): 1,
        (("function", "g"), ("status", "error")): 0,
        (("function", "g"), ("status", "failure")): 1,
        (("function", "g"), ("status", "timeout")): 0,
    }
    assert samples["lambdakit_cold_starts_total"] == {
        (("function", "f"),): 1,
        (("function", "g"),): 2,
    }
    assert samples["lambdakit_throttles_total"] == {
        (("function", "f"),): 3,
        (("function", "g"),): 0,
    }
    assert samples["lambdakit_event_retries_total"] == {
        (("function", "f"),): 0,
        (("function", "g"),): 2,
    }
    # No backlog was given: no queue depth at all.
    assert "lambdakit_event_queue_depth" not in samples


def test_histograms_count_sum_and_buckets() -> None:
    activity = Activity()
    metrics = Metrics(activity)
    # Responses in 0.5 ms, 2 ms and 7 s; work after them 0.5 ms, 0.8 ms, 1.5 ms.  The first
    # one's times are exactly a bucket's bound (at 0, the differences are exact).
    invoke(activity, "a", at=0.0, respond_after=0.0005, end_after=0.001, duration_ms=0.5)
    invoke(activity, "b", respond_after=0.002, end_after=0.0028, duration_ms=3.0)
    invoke(activity, "c", respond_after=7.0, end_after=7.0015, duration_ms=7001.0)
    # A timeout: no response, so it is in the duration but in neither phase histogram.
    invoke(activity, "d", respond_after=None, end_after=3.0, status="timeout", duration_ms=3000.0)
    samples = scrape(metrics)

    def bucket(name: str, le: str) -> float:
        return value(samples, name + "_bucket", function="f", le=le)

    response = "lambdakit_response_seconds"
    assert value(samples, response + "_count", function="f") == 3
    assert value(samples, response + "_sum", function="f") == pytest.approx(7.0025)
    assert bucket(response, "0.00025") == 0
    assert bucket(response, "0.0005") == 1  # a bound is "less or equal"
    assert bucket(response, "0.001") == 1
    assert bucket(response, "0.0025") == 2
    assert bucket(response, "5.0") == 2
    assert bucket(response, "10.0") == 3
    assert bucket(response, "+Inf") == 3
    # One bucket per bound, plus +Inf, every one of them exposed.
    assert len([labels for labels in samples[response + "_bucket"]]) == len(BUCKETS) + 1

    after = "lambdakit_after_response_seconds"
    assert value(samples, after + "_count", function="f") == 3
    assert value(samples, after + "_sum", function="f") == pytest.approx(0.0028)
    assert bucket(after, "0.00025") == 0
    assert bucket(after, "0.0005") == 1
    assert bucket(after, "0.001") == 2
    assert bucket(after, "0.0025") == 3

    duration = "lambdakit_invocation_duration_seconds"
    assert value(samples, duration + "_count", function="f") == 4
    assert value(samples, duration + "_sum", function="f") == pytest.approx(10.0045)
    assert bucket(duration, "0.0005") == 1
    assert bucket(duration, "0.0025") == 1
    assert bucket(duration, "0.005") == 2
    assert bucket(duration, "2.5") == 2
    assert bucket(duration, "5.0") == 3
    assert bucket(duration, "10.0") == 4
    assert value(samples, "lambdakit_invocations_total", function="f") == 4


def test_init_durations_by_result() -> None:
    activity = Activity()
    metrics = Metrics(activity)
    activity.publish(InitEnded("f", "f#1", 1000.0, 120.0))
    activity.publish(InitEnded("f", "f#2", 1000.0, 80.0))
    activity.publish(InitEnded("f", "f#3", 1000.0, 10_000.0, "Sandbox.Timedout"))
    samples = scrape(metrics)
    name = "lambdakit_init_duration_seconds"
    assert value(samples, name + "_count", function="f", result="ok") == 2
    assert value(samples, name + "_sum", function="f", result="ok") == pytest.approx(0.2)
    assert value(samples, name + "_bucket", function="f", result="ok", le="0.1") == 1
    assert value(samples, name + "_bucket", function="f", result="ok", le="0.25") == 2
    assert value(samples, name + "_count", function="f", result="error") == 1
    assert value(samples, name + "_sum", function="f", result="error") == pytest.approx(10.0)
    assert value(samples, name + "_bucket", function="f", result="error", le="5.0") == 0
    assert value(samples, name + "_bucket", function="f", result="error", le="10.0") == 1
    # Init alone invokes nothing.
    assert value(samples, "lambdakit_invocations_total", function="f") == 0


def test_environments_by_last_state_and_dead_ones_dropped() -> None:
    activity = Activity()
    metrics = Metrics(activity)

    def state(function: str, environment: str, state: str) -> None:
        activity.publish(EnvironmentState(function, environment, state, 1000.0))

    for environment in ("f#1", "f#2", "f#3", "f#4"):
        state("f", environment, states.STARTING)
    state("g", "g#1", states.STARTING)
    state("f", "f#1", states.BUSY)
    state("f", "f#2", states.IDLE)
    state("f", "f#2", states.FROZEN)
    state("f", "f#3", states.BUSY)
    state("f", "f#3", states.AFTER_RESPONSE)
    state("f", "f#4", states.STOPPING)
    state("f", "f#4", states.DEAD)
    state("g", "g#1", states.IDLE)
    state("g", "g#1", states.STOPPING)
    state("g", "g#1", states.DEAD)
    state("g", "g#2", states.STARTING)

    environments = scrape(metrics)["lambdakit_environments"]
    assert environments == {
        (("function", "f"), ("state", "after-response")): 1,
        (("function", "f"), ("state", "busy")): 1,
        (("function", "f"), ("state", "frozen")): 1,
        (("function", "f"), ("state", "idle")): 0,
        (("function", "f"), ("state", "starting")): 0,
        (("function", "f"), ("state", "stopping")): 0,
        (("function", "g"), ("state", "after-response")): 0,
        (("function", "g"), ("state", "busy")): 0,
        (("function", "g"), ("state", "frozen")): 0,
        (("function", "g"), ("state", "idle")): 0,
        (("function", "g"), ("state", "starting")): 1,
        (("function", "g"), ("state", "stopping")): 0,
    }
    # Dead environments are forgotten, not kept as "dead".
    state("f", "f#1", states.DEAD)
    state("f", "f#2", states.DEAD)
    state("f", "f#3", states.DEAD)
    state("g", "g#2", states.DEAD)
    assert scrape(metrics).get("lambdakit_environments", {}) == {}


def test_queue_depth_from_the_backlog_at_scrape_time() -> None:
    activity = Activity()
    depths: dict[str, int] = {"f": 3, "queued-only": 2}
    calls: list[int] = []

    def backlog() -> Mapping[str, int]:
        calls.append(1)
        return depths

    metrics = Metrics(activity, backlog)
    invoke(activity, "g-1", function="g", environment="g#1")
    assert calls == []  # read at scrape time, not per event
    assert scrape(metrics)["lambdakit_event_queue_depth"] == {
        (("function", "f"),): 3,
        (("function", "g"),): 0,
        (("function", "queued-only"),): 2,
    }
    depths.update(f=0, g=5)
    del depths["queued-only"]
    assert scrape(metrics)["lambdakit_event_queue_depth"] == {
        (("function", "f"),): 0,
        (("function", "g"),): 5,
    }
    assert len(calls) == 2


def test_a_failing_backlog_leaves_the_rest_of_the_scrape(caplog: pytest.LogCaptureFixture) -> None:
    activity = Activity()

    def backlog() -> Mapping[str, int]:
        raise RuntimeError("database is closed")

    metrics = Metrics(activity, backlog)
    invoke(activity, "f-1")
    with caplog.at_level(logging.WARNING, logger="lambdakit.metrics"):
        samples = scrape(metrics)
    assert value(samples, "lambdakit_invocations_total", function="f") == 1
    assert "lambdakit_event_queue_depth" not in samples
    assert "queue's depth could not be read" in caplog.text


def test_per_request_state_is_dropped_when_invocations_end() -> None:
    activity = Activity()
    metrics = Metrics(activity)
    for number in range(50):
        invoke(activity, f"r-{number}")
    invoke(activity, "timed-out", respond_after=None, status="timeout")
    assert metrics.pending == 0
    activity.publish(InvocationStarted("f", "f#1", "open", 1000.0, False, 0))
    assert metrics.pending == 1
    activity.publish(InvocationResponded("f", "f#1", "open", 1000.001, "", 0))
    assert metrics.pending == 1
    activity.publish(InvocationEnded("f", "f#1", "open", 1000.002, "success", 2.0, 2, 40, None))
    assert metrics.pending == 0


def test_pending_maps_are_capped_oldest_first(caplog: pytest.LogCaptureFixture) -> None:
    activity = Activity()
    metrics = Metrics(activity, pending_limit=20)
    # 21 starts whose other events were lost: past the limit, the oldest go, down to 90% of it.
    with caplog.at_level(logging.WARNING, logger="lambdakit.metrics"):
        for number in range(21):
            activity.publish(InvocationStarted("f", "f#1", f"lost-{number}", 1000.0, False, 0))
    assert metrics.pending == 18
    assert "over 20 invocations started" in caplog.text
    assert "forgot the oldest 3" in caplog.text
    for number in range(100):
        activity.publish(InvocationStarted("f", "f#1", f"more-{number}", 1000.0, False, 0))
        assert metrics.pending <= 20
    # The newest are kept: their responses are still measured, the forgotten ones' are not.
    activity.publish(InvocationResponded("f", "f#1", "lost-0", 1000.5, "", 0))
    activity.publish(InvocationResponded("f", "f#1", "more-99", 1000.25, "", 0))
    samples = scrape(metrics)
    assert value(samples, "lambdakit_response_seconds_count", function="f") == 1
    assert value(samples, "lambdakit_response_seconds_sum", function="f") == 0.25

    # Responses whose ends were lost are capped the same way.
    activity = Activity()
    metrics = Metrics(activity, pending_limit=20)
    for number in range(25):
        activity.publish(InvocationStarted("f", "f#1", f"answered-{number}", 1000.0, False, 0))
        activity.publish(InvocationResponded("f", "f#1", f"answered-{number}", 1000.0, "", 0))
        assert metrics.pending <= 20
    activity.publish(InvocationEnded("f", "f#1", "answered-0", 1000.5, "success", 1.0, 1, 1, None))
    activity.publish(InvocationEnded("f", "f#1", "answered-24", 1000.5, "success", 1.0, 1, 1, None))
    samples = scrape(metrics)
    assert value(samples, "lambdakit_after_response_seconds_count", function="f") == 1
    assert value(samples, "lambdakit_invocations_total", function="f") == 2


def test_output_lines_and_next_calls_cost_nothing() -> None:
    activity = Activity()
    metrics = Metrics(activity)
    assert not activity.wants_lines  # metrics never asks for output lines
    activity.publish(NextCalled("f", "f#1", "r", "ext", 1000.0))
    activity.publish(OutputLine("f", "f#1", "r", "function", "hello", 1000.0))
    assert metrics.functions == {}
    assert metrics.pending == 0


def test_unsubscribe_stops_counting() -> None:
    activity = Activity()
    metrics = Metrics(activity)
    invoke(activity, "one")
    metrics.unsubscribe()
    invoke(activity, "two")
    assert value(scrape(metrics), "lambdakit_invocations_total", function="f") == 1


def test_metrics_use_a_private_registry() -> None:
    from prometheus_client import REGISTRY, generate_latest

    activity = Activity()
    Metrics(activity)
    invoke(activity, "one")
    Metrics(activity)  # a second instance in one process does not clash
    assert b"lambdakit_" not in generate_latest(REGISTRY)


def test_event_store_pending_by_function(tmp_path: Path) -> None:
    store = EventStore(tmp_path)
    try:
        assert store.pending_by_function() == {}
        for number in range(3):
            store.add(f"f-{number}", "f", b"{}", "arn:f", "trace")
        for number in range(4):
            store.add(f"g-{number}", "g", b"{}", "arn:g", "trace")
        store.add("h-0", "h", b"{}", "arn:h", "trace")
        store.start("f-0")  # running: in an environment, no longer queued
        store.start("g-0")
        store.retry("g-0", 1e12, "boom")  # waiting for its retry: queued
        store.fail("g-1", "RetriesExhausted", "boom")  # failed: not queued
        store.succeed("g-2")
        store.start("h-0")
        assert store.pending_by_function() == {"f": 2, "g": 2}
    finally:
        store.close()


def test_amqp_outcomes_by_function_only_when_the_door_reports_them() -> None:
    activity = Activity()
    metrics = Metrics(activity)
    invoke(activity, "r1")
    assert "lambdakit_amqp_messages_total" not in scrape(metrics)  # no AMQP door, no family
    for outcome in ("run", "run", "replied", "refused", "lost"):
        activity.publish(AmqpMessage("f", outcome, 1000.0))
    samples = scrape(metrics)
    assert value(samples, "lambdakit_amqp_messages_total", function="f", outcome="run") == 2
    assert value(samples, "lambdakit_amqp_messages_total", function="f", outcome="replied") == 1
    assert value(samples, "lambdakit_amqp_messages_total", function="f", outcome="refused") == 1
    assert value(samples, "lambdakit_amqp_messages_total", function="f", outcome="lost") == 1


def test_managed_instances_ends_count_no_after_response_time() -> None:
    activity = Activity()
    metrics = Metrics(activity)
    activity.publish(InvocationStarted("f", "f#1", "r1", 1000.0, False, 10))
    activity.publish(InvocationResponded("f", "f#1", "r1", 1000.5, "", 2))
    activity.publish(
        InvocationEnded("f", "f#1", "r1", 1000.5, "success", 500.0, 500, 20, None, False)
    )
    samples = scrape(metrics)
    assert value(samples, "lambdakit_response_seconds_count", function="f") == 1
    assert value(samples, "lambdakit_after_response_seconds_count", function="f") == 0
    assert value(samples, "lambdakit_invocations_total", function="f") == 1
    assert not metrics.pending  # nothing kept for r1


def test_on_demand_environments_are_moved_by_their_invocations() -> None:
    """No EnvironmentState per invocation: START, the answer and END say busy, after, idle."""
    activity = Activity()
    metrics = Metrics(activity)
    activity.publish(EnvironmentState("f", "f#1", states.IDLE, 999.0))  # after Init
    activity.publish(InvocationStarted("f", "f#1", "r1", 1000.0, True, 10))
    assert value(scrape(metrics), "lambdakit_environments", function="f", state="busy") == 1
    activity.publish(InvocationResponded("f", "f#1", "r1", 1000.1, "", 2))
    samples = scrape(metrics)
    assert value(samples, "lambdakit_environments", function="f", state="after-response") == 1
    assert value(samples, "lambdakit_environments", function="f", state="busy") == 0
    activity.publish(InvocationEnded("f", "f#1", "r1", 1000.3, "success", 300.0, 300, 20, 5.0))
    assert value(scrape(metrics), "lambdakit_environments", function="f", state="idle") == 1
    # A Managed Instances environment says busy and idle itself; its answers move nothing.
    activity.publish(EnvironmentState("f", "f#2", states.BUSY, 1001.0))
    activity.publish(InvocationStarted("f", "f#2", "r2", 1001.0, True, 10, True))
    activity.publish(InvocationResponded("f", "f#2", "r2", 1001.1, "", 2))
    activity.publish(
        InvocationEnded("f", "f#2", "r2", 1001.1, "success", 100.0, 100, 20, 5.0, False)
    )
    samples = scrape(metrics)
    assert value(samples, "lambdakit_environments", function="f", state="busy") == 1
    assert value(samples, "lambdakit_environments", function="f", state="after-response") == 0
