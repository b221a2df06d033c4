"""The activity stream, in memory: who gets which events, and what a failing subscriber costs."""

from __future__ import annotations

import logging

import pytest

from lambdakit.emulator import activity as ev
from lambdakit.emulator.activity import Activity


def _events() -> list[ev.ActivityEvent]:
    return [
        ev.InvocationStarted("fn", "fn#1", "r1", 1.0, True, 2),
        ev.NextCalled("fn", "fn#1", "r1", "", 1.2),
        ev.OutputLine("fn", "fn#1", "r1", "function", "hello", 1.1),
        ev.InvocationEnded("fn", "fn#1", "r1", 1.3, "success", 0.3, 1, 30, None),
    ]


def test_a_subscriber_by_kind_gets_only_its_kinds_in_order() -> None:
    activity = Activity()
    started: list[ev.ActivityEvent] = []
    ended: list[ev.ActivityEvent] = []
    everything: list[ev.ActivityEvent] = []
    activity.subscribe_kinds(
        {ev.InvocationStarted: started.append, ev.InvocationEnded: ended.append}
    )
    activity.subscribe(everything.append)
    assert not activity.wants_lines
    for event in _events():
        activity.publish(event)
    first, after, line, end = _events()
    assert started == [first] and ended == [end]
    assert everything == [first, after, end]  # no output line without lines=True

    lines: list[ev.ActivityEvent] = []
    unsubscribe = activity.subscribe(lines.append, lines=True)
    assert activity.wants_lines
    activity.publish(line)
    assert lines == [line]
    unsubscribe()
    assert not activity.wants_lines


def test_a_kind_that_is_not_an_activity_event_is_refused() -> None:
    with pytest.raises(TypeError, match="not a kind of activity event"):
        Activity().subscribe_kinds({int: print})  # type: ignore[dict-item]


def test_a_failing_handler_ends_its_whole_subscription_and_spares_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    activity = Activity()
    kept: list[ev.ActivityEvent] = []

    def broken(event: ev.ActivityEvent) -> None:
        raise RuntimeError("broken")

    also: list[ev.ActivityEvent] = []
    activity.subscribe_kinds({ev.InvocationStarted: broken, ev.InvocationEnded: also.append})
    activity.subscribe(kept.append)
    with caplog.at_level(logging.ERROR, logger="lambdakit.activity"):
        for event in _events():
            activity.publish(event)
    assert "failed; unsubscribed" in caplog.text
    assert also == []  # the subscription that failed is gone, each of its kinds
    assert [type(e) for e in kept] == [ev.InvocationStarted, ev.NextCalled, ev.InvocationEnded]


def test_an_event_of_a_subclass_goes_to_its_kinds_handlers() -> None:
    class Retried(ev.EventRetried):
        pass

    activity = Activity()
    seen: list[ev.ActivityEvent] = []
    activity.subscribe_kinds({ev.EventRetried: seen.append})
    event = Retried("fn", "r1", 1, 1.0)
    activity.publish(event)
    activity.publish(event)
    assert seen == [event, event]
