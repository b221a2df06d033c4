"""The live view: ``/_lambdakit/`` on the Invoke API port, and the figures ``lambdakit top`` reads.

Theory of operation
-------------------
:class:`LiveView` is one more subscriber of the service's
:class:`~lambdakit.emulator.activity.Activity` stream and keeps nothing the stream does not say:
per function its environments (state, since when, invocations taken) and counters, and the most
recent invocations as plain dicts, ready for JSON.  An invocation's phases are its times:
``started`` (START, after ``init_ms`` of Init when cold), ``responded`` (the caller has its
answer), one ``next`` time for the runtime and for each extension (who asked last ends the work
after the response) and ``ended`` (END and REPORT).  The model is bounded: :data:`HISTORY`
invocations, :data:`LINES` lines each, :data:`DEAD_KEPT` stopped environments per function.

Nobody looks most of the time, so while no page is open the view keeps its counters exact (a few
additions per invocation) and only queues the events that build the rest, applying them when
someone asks (``/state``, a new event stream); the queue holds :data:`UNREAD_KEPT`, enough for the
:data:`HISTORY` invocations shown, and each environment's last change is kept apart.  With a page
open it applies each event at once.  Output lines cost
the warm path more, so the view asks for them (a second subscription, with
``lines=True``) only while some browser holds ``/_lambdakit/events`` open.  A line that names no
invocation, or names one the view does not know, goes to its environment's current invocation.

``GET /_lambdakit/`` is one static page (``live_view.html``, inline CSS and JS, no external URL);
``GET /_lambdakit/state`` the model as JSON; ``GET /_lambdakit/events`` Server-Sent Events: a
``snapshot`` with the state, then ``invocation``, ``environment``, ``function`` and ``line``
events as they happen, and a ``: ping`` comment every :data:`PING_INTERVAL` seconds.  A stream
whose reader falls behind by more than :data:`BACKLOG_LIMIT` bytes is closed (the browser
reconnects and gets a fresh snapshot).  Everything runs on the service's event loop, on the stack
of whoever publishes; times are wall-clock seconds since the epoch.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from importlib import resources
from typing import Any

from lambdakit.emulator import activity as events
from lambdakit.emulator.activity import Activity, ActivityEvent
from lambdakit.emulator.http.messages import Reply, Request, Response, ResponseWriter, Streamed

logger = logging.getLogger("lambdakit.live_view")

PREFIX = "/_lambdakit"
#: Invocations kept, most recent last.
HISTORY = 200
#: Output lines kept per invocation, most recent last.
LINES = 100
#: Stopped environments kept per function (the timeline's rows of the past).
DEAD_KEPT = 20
#: Seconds between ``: ping`` comments on an open event stream.
PING_INTERVAL = 15.0
#: How often open streams are checked for a browser that went away.
SWEEP_INTERVAL = 1.0
#: Bytes an event stream may fall behind before it is closed.
BACKLOG_LIMIT = 1 << 20
#: Events kept unread while nobody looks (about a dozen per invocation: enough for HISTORY).
UNREAD_KEPT = HISTORY * 12

Json = dict[str, Any]
_JSON_HEADERS = (("Content-Type", "application/json"), ("Cache-Control", "no-store"))
_SSE_HEADERS = (
    ("Content-Type", "text/event-stream; charset=utf-8"),
    ("Cache-Control", "no-store"),
    ("X-Accel-Buffering", "no"),
)
_ERRORS = ("error", "timeout", "failure")


def _dumps(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _message(kind: str, data: object) -> bytes:
    return f"event: {kind}\ndata: {_dumps(data)}\n\n".encode()


def _not_found(path: str) -> Response:
    body = _dumps({"error": "NotFound", "message": f"no {path} in the live view"}).encode()
    return Response(404, _JSON_HEADERS, body)


class _Stream:
    """One browser's ``/_lambdakit/events``: a writer, and what waits while it is paused."""

    __slots__ = ("_backlog", "_backlog_bytes", "_paused", "done", "writer")

    def __init__(self, writer: ResponseWriter) -> None:
        self.writer = writer
        self.done = False
        self._paused = False
        self._backlog: list[bytes] = []
        self._backlog_bytes = 0
        writer.set_flow(self._pause, self._resume)

    @property
    def closed(self) -> bool:
        return self.done or self.writer.closed

    def send(self, data: bytes) -> None:
        if self.closed:
            return
        if not self._paused:
            self.writer.write(data)
            return
        self._backlog.append(data)
        self._backlog_bytes += len(data)
        if self._backlog_bytes > BACKLOG_LIMIT:
            logger.info("closing a live view stream that fell %d bytes behind", BACKLOG_LIMIT)
            self.finish()

    def finish(self) -> None:
        if self.done:
            return
        self.done = True
        self._backlog.clear()
        self.writer.finish()

    def _pause(self) -> None:
        self._paused = True

    def _resume(self) -> None:
        self._paused = False
        backlog, self._backlog, self._backlog_bytes = self._backlog, [], 0
        for data in backlog:
            self.send(data)


class _Function:
    __slots__ = ("counters", "environments", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self.counters = {
            "invocations": 0,
            "errors": 0,
            "throttles": 0,
            "cold_starts": 0,
            "init_errors": 0,
            "retries": 0,
        }
        #: Environment name -> its dict (see :meth:`LiveView._environment`).
        self.environments: dict[str, Json] = {}

    def as_json(self) -> Json:
        return {
            "name": self.name,
            "counters": dict(self.counters),
            "environments": [dict(env) for env in self.environments.values()],
        }


class LiveView:
    """The live view's model and its HTTP handler (every path under ``/_lambdakit``)."""

    def __init__(
        self,
        activity: Activity,
        functions: Sequence[str],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._activity = activity
        self._clock = clock
        self._started_at = clock()
        self._functions: dict[str, _Function] = {name: _Function(name) for name in functions}
        self._invocations: OrderedDict[str, Json] = OrderedDict()
        #: Environment name -> request ids of its invocations in flight, oldest first.
        self._current: dict[str, list[str]] = {}
        #: Environment name -> the duration of its Init, until its first invocation takes it.
        self._init_ms: dict[str, float] = {}
        self._streams: list[_Stream] = []
        self._closed = False
        self._page: bytes | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._last_ping = 0.0
        self._lines_unsubscribe: Callable[[], None] | None = None
        #: Events not yet applied to the model: while no page is open, the warm path only counts
        #: and appends here; the model catches up when someone asks (bounded: the oldest go,
        #: and with them only invocations older than the HISTORY kept anyway).
        self._unread: deque[ActivityEvent] = deque(maxlen=UNREAD_KEPT)
        #: What each kind of event does to the model (one lookup per event on the warm path).
        self._dispatch: dict[type, Callable[[Any], None]] = {
            events.InvocationStarted: self._invocation_started,
            events.InvocationResponded: self._responded,
            events.NextCalled: self._next_called,
            events.InvocationEnded: self._invocation_ended,
            events.EnvironmentState: self._environment_state,
            events.InitEnded: self._init_ended,
            events.Throttled: self._counted_only,
            events.EventRetried: self._counted_only,
        }
        #: The counters each kind of event moves: kept exact at once, watched or not.
        self._tallies: dict[type, Callable[[Any], None]] = {
            events.InvocationStarted: self._tally_started,
            events.InvocationEnded: self._tally_ended,
            events.InitEnded: self._tally_init,
            events.Throttled: self._tally_throttled,
            events.EventRetried: self._tally_retried,
        }
        #: Each environment's last event that put it in a state (see ``events.implied_state``),
        #: applied after a catch-up whatever the queue dropped; kept as the event itself, so
        #: the warm path builds no EnvironmentState for it.
        self._last_state: dict[str, ActivityEvent] = {}
        #: Managed Instances environments: they report busy and idle themselves, while an
        #: on-demand environment's state follows its invocation's events.
        self._concurrent: set[str] = set()
        # A runtime's next moves no counter and no state: queued or applied, nothing else.
        handlers: dict[type[ActivityEvent], Callable[[Any], None]]
        handlers = {kind: self._on_event for kind in events.EVENT_KINDS}
        handlers[events.NextCalled] = self._on_next_called
        handlers[events.InvocationStarted] = self._on_started
        handlers[events.InvocationResponded] = self._on_responded
        handlers[events.InvocationEnded] = self._on_ended
        del handlers[events.OutputLine]  # only while watched (see _attach)
        self._unsubscribe: Callable[[], None] | None = activity.subscribe_kinds(handlers)

    # Reading ---------------------------------------------------------------------------------
    @property
    def wants_lines(self) -> bool:
        """Whether the view holds a subscription to output lines (a browser is watching)."""
        return self._lines_unsubscribe is not None

    @property
    def streams(self) -> int:
        """Event streams open."""
        return sum(1 for stream in self._streams if not stream.closed)

    def state(self) -> Json:
        """The whole model, as ``/_lambdakit/state`` answers it."""
        self._catch_up()
        return {
            "now": self._clock(),
            "started": self._started_at,
            "limits": {"invocations": HISTORY, "lines": LINES},
            "functions": [function.as_json() for function in self._functions.values()],
            "invocations": list(self._invocations.values()),
        }

    # HTTP ------------------------------------------------------------------------------------
    def __call__(self, request: Request) -> Reply:
        path = request.path
        if request.method != "GET":
            body = _dumps({"error": "MethodNotAllowed", "message": "the live view is GET only"})
            return Response(405, (*_JSON_HEADERS, ("Allow", "GET")), body.encode())
        if path == PREFIX:
            return Response(301, (("Location", PREFIX + "/"),))
        if path in (PREFIX + "/", PREFIX + "/index.html"):
            return Response(
                200,
                (("Content-Type", "text/html; charset=utf-8"), ("Cache-Control", "no-cache")),
                self.page(),
            )
        if path == PREFIX + "/state":
            return Response(200, _JSON_HEADERS, _dumps(self.state()).encode())
        if path == PREFIX + "/events":
            return Streamed(self._attach)
        return _not_found(path)

    def page(self) -> bytes:
        """The page, read from the package once."""
        if self._page is None:
            source = resources.files("lambdakit.emulator").joinpath("live_view.html")
            self._page = source.read_bytes()
        return self._page

    def _attach(self, writer: ResponseWriter) -> None:
        if self._closed:  # a request pipelined behind a stream that close() ended
            writer.start(503, (("Content-Type", "text/plain"),))
            writer.write(b"the service is stopping\n")
            writer.finish()
            return
        writer.start(200, _SSE_HEADERS)
        stream = _Stream(writer)
        stream.send(b"retry: 1000\n" + _message("snapshot", self.state()))
        if stream.closed:
            return
        self._streams.append(stream)
        if self._lines_unsubscribe is None:
            self._lines_unsubscribe = self._activity.subscribe_kinds(
                {events.OutputLine: self._on_line}
            )
        self._arm()

    def _arm(self) -> None:
        if self._timer is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # driven by hand (tests): they call sweep() themselves
            return
        self._timer = loop.call_later(SWEEP_INTERVAL, self._tick)

    def _tick(self) -> None:
        self._timer = None
        if self.sweep():
            self._arm()

    def sweep(self) -> bool:
        """Drop streams whose browser went away, ping the others every :data:`PING_INTERVAL`
        seconds; stop asking for output lines once none is left.  True while some are open."""
        now = self._clock()
        if now - self._last_ping >= PING_INTERVAL:
            self._last_ping = now
            for stream in self._streams:
                stream.send(b": ping\n\n")
        self._drop_closed()
        return bool(self._streams)

    def _drop_closed(self) -> None:
        if any(stream.closed for stream in self._streams):
            self._streams = [stream for stream in self._streams if not stream.closed]
        if not self._streams and self._lines_unsubscribe is not None:
            self._lines_unsubscribe()
            self._lines_unsubscribe = None

    def close(self) -> None:
        """End every event stream and every subscription (the service is stopping)."""
        self._closed = True
        streams, self._streams = self._streams, []
        for stream in streams:
            stream.finish()
        self._drop_closed()
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _broadcast(self, kind: str, data: object) -> None:
        if not self._streams:
            return
        message = _message(kind, data)
        closed = False
        for stream in self._streams:
            stream.send(message)
            closed = closed or stream.closed
        if closed:
            self._drop_closed()

    # The model -------------------------------------------------------------------------------
    def _function(self, name: str) -> _Function:
        function = self._functions.get(name)
        if function is None:
            function = self._functions[name] = _Function(name)
        return function

    def _environment(self, function: _Function, name: str, at: float) -> Json:
        env = function.environments.get(name)
        if env is None:
            env = function.environments[name] = {
                "name": name,
                "function": function.name,
                "state": events.STARTING,
                "since": at,
                "invocations": 0,
                "current": None,
            }
        return env

    def _counted(self, function: _Function) -> None:
        self._broadcast("function", {"name": function.name, "counters": function.counters})

    def _on_event(self, event: ActivityEvent) -> None:
        kind = type(event)
        tally = self._tallies.get(kind)
        if tally is not None:
            tally(event)  # the counters, always at once (a few additions)
        states = kind is events.EnvironmentState or events.implied_state(event, self._concurrent)
        self._take(event, bool(states))

    def _take(self, event: ActivityEvent, states: bool) -> None:
        """Apply ``event`` if someone watches, else queue it (and keep it as its environment's
        last state-changing event when it ``states`` one)."""
        if self._streams:
            self._apply(event)  # someone watches: the model too, at once
        else:  # nobody does: the model when someone asks
            if states:
                self._last_state[event.environment] = event  # type: ignore[union-attr]
            self._unread.append(event)

    # The events of every invocation: _on_event, with the state each implies written out
    # (``events.implied_state``) ---------------------------------------------------------------
    def _on_started(self, event: events.InvocationStarted) -> None:
        self._tally_started(event)
        self._take(event, not event.concurrent)  # busy

    def _on_responded(self, event: events.InvocationResponded) -> None:
        self._take(event, event.environment not in self._concurrent)  # after-response

    def _on_ended(self, event: events.InvocationEnded) -> None:
        self._tally_ended(event)
        self._take(event, event.after_response_known)  # idle

    def _on_next_called(self, event: events.NextCalled) -> None:
        self._take(event, False)  # no counter, no state

    def _implied_state(self, event: ActivityEvent) -> events.EnvironmentState | None:
        """The state an event puts its environment in (see activity.py), if any."""
        if isinstance(event, events.EnvironmentState):
            return event
        state = events.implied_state(event, self._concurrent)
        if not state:
            return None
        assert isinstance(
            event, events.InvocationStarted | events.InvocationResponded | events.InvocationEnded
        )
        return events.EnvironmentState(event.function, event.environment, state, event.at)

    def _catch_up(self) -> None:
        unread = self._unread
        while unread:
            self._apply(unread.popleft())
        last, self._last_state = self._last_state, {}
        for stated in last.values():  # in case the queue dropped an environment's last change
            event = self._implied_state(stated)
            if event is None:
                continue
            function = self._functions.get(event.function)
            env = function.environments.get(event.environment) if function else None
            if env is None or env["since"] <= event.at:  # the last change, or one as old
                self._environment_state(event)

    def _apply(self, event: ActivityEvent) -> None:
        apply = self._dispatch.get(type(event))
        if apply is None:
            return
        try:
            apply(event)
        except Exception:  # keep the subscription: one odd event must not blind the view
            logger.exception("live view: could not apply %r", event)

    def _on_line(self, event: events.OutputLine) -> None:
        try:
            self._line(event)
        except Exception:  # keep the subscription, as _apply does
            logger.exception("live view: could not apply %r", event)

    def _responded(self, event: events.InvocationResponded) -> None:
        if event.environment not in self._concurrent:
            self._moved(event.function, event.environment, events.AFTER_RESPONSE, event.at)
        invocation = self._invocations.get(event.request_id)
        if invocation is not None:
            invocation["responded"] = event.at
            invocation["error_type"] = event.error_type or None
            invocation["response_bytes"] = event.response_bytes
            self._broadcast("invocation", invocation)

    def _next_called(self, event: events.NextCalled) -> None:
        invocation = self._invocations.get(event.request_id)
        if invocation is not None:
            invocation["next"][event.who or "runtime"] = event.at
            self._broadcast("invocation", invocation)

    def _init_ended(self, event: events.InitEnded) -> None:
        if event.error_type:
            self._counted(self._function(event.function))
        else:
            self._init_ms[event.environment] = event.duration_ms

    def _counted_only(self, event: events.Throttled | events.EventRetried) -> None:
        self._counted(self._function(event.function))

    # The counters ----------------------------------------------------------------------------
    def _tally_started(self, event: events.InvocationStarted) -> None:
        if event.concurrent:
            self._concurrent.add(event.environment)
        function = self._function(event.function)
        counters = function.counters
        counters["invocations"] += 1
        if event.cold:
            counters["cold_starts"] += 1
        self._environment(function, event.environment, event.at)["invocations"] += 1

    def _tally_ended(self, event: events.InvocationEnded) -> None:
        if event.status in _ERRORS:
            self._function(event.function).counters["errors"] += 1

    def _tally_init(self, event: events.InitEnded) -> None:
        if event.error_type:
            self._function(event.function).counters["init_errors"] += 1

    def _tally_throttled(self, event: events.Throttled) -> None:
        self._function(event.function).counters["throttles"] += 1

    def _tally_retried(self, event: events.EventRetried) -> None:
        self._function(event.function).counters["retries"] += 1

    def _invocation_started(self, event: events.InvocationStarted) -> None:
        function = self._function(event.function)
        env = self._environment(function, event.environment, event.at)
        env["current"] = event.request_id
        if not event.concurrent:
            env["state"], env["since"] = events.BUSY, event.at
        self._current.setdefault(event.environment, []).append(event.request_id)
        init_ms = self._init_ms.pop(event.environment, None)
        invocation: Json = {
            "request_id": event.request_id,
            "function": event.function,
            "environment": event.environment,
            "started": event.at,
            "init_ms": init_ms if event.cold else None,
            "responded": None,
            "ended": None,
            "status": "running",
            "error_type": None,
            "payload_bytes": event.payload_bytes,
            "response_bytes": None,
            "duration_ms": None,
            "billed_duration_ms": None,
            "max_memory_used_mb": None,
            "next": {},
            "lines": [],
        }
        self._invocations[event.request_id] = invocation
        while len(self._invocations) > HISTORY:
            self._invocations.popitem(last=False)
        self._broadcast("invocation", invocation)
        self._broadcast("environment", env)
        self._counted(function)

    def _invocation_ended(self, event: events.InvocationEnded) -> None:
        function = self._function(event.function)
        current = self._current.get(event.environment)
        if current is not None and event.request_id in current:
            current.remove(event.request_id)
        env = function.environments.get(event.environment)
        if env is not None:
            env["current"] = current[-1] if current else None
            if event.after_response_known:  # on demand: the end of its phase
                env["state"], env["since"] = events.IDLE, event.at
        invocation = self._invocations.get(event.request_id)
        status = event.status
        if invocation is not None:
            invocation["ended"] = event.at
            invocation["status"] = status
            invocation["duration_ms"] = event.duration_ms
            invocation["billed_duration_ms"] = event.billed_duration_ms
            invocation["max_memory_used_mb"] = event.max_memory_used_mb
            if event.init_duration_ms is not None:
                invocation["init_ms"] = event.init_duration_ms
            self._broadcast("invocation", invocation)
        if env is not None:
            self._broadcast("environment", env)
        if status in _ERRORS:
            self._counted(function)

    def _moved(self, function_name: str, environment: str, state: str, at: float) -> None:
        env = self._environment(self._function(function_name), environment, at)
        env["state"], env["since"] = state, at
        self._broadcast("environment", env)

    def _environment_state(self, event: events.EnvironmentState) -> None:
        function = self._function(event.function)
        env = self._environment(function, event.environment, event.at)
        env["state"] = event.state
        env["since"] = event.at
        if event.state == events.DEAD:
            self._current.pop(event.environment, None)
            self._init_ms.pop(event.environment, None)
            env["current"] = None
            dead = [name for name, e in function.environments.items() if e["state"] == events.DEAD]
            for name in dead[:-DEAD_KEPT]:
                del function.environments[name]
        self._broadcast("environment", env)

    def _line(self, event: events.OutputLine) -> None:
        invocation = self._invocations.get(event.request_id) if event.request_id else None
        if invocation is None:
            current = self._current.get(event.environment)
            if current:
                invocation = self._invocations.get(current[-1])
        entry = [event.at, event.kind, event.line]
        if invocation is not None:
            lines: list[list[object]] = invocation["lines"]
            if len(lines) >= LINES:
                del lines[: len(lines) - LINES + 1]
            lines.append(entry)
        self._broadcast(
            "line",
            {
                "request_id": invocation["request_id"] if invocation is not None else None,
                "function": event.function,
                "environment": event.environment,
                "line": entry,
            },
        )
