"""The lifecycle of one runtime connection to the proxy, as a transition table.

A connection carries one call at a time (HTTP/1.1, no pipelining in practice; pipelined bytes
wait until the reply in progress is written):

* ``IDLE``: waiting for a request head.
* ``RECEIVING``: the head arrived and the call is being forwarded while its body still arrives
  (a streamed response), or the body is being collected (a buffered one).
* ``WAITING``: the whole request is in; the reply is not written yet (upstream or a hook holds
  it: a held ``next`` sits here for as long as the hook delays it).
* ``CLOSED``: the runtime went away, or we closed after a reply that ends the connection.

A reply written while the body is still arriving (an upstream refusing a stream early) closes
the connection: the rest of that body cannot be skipped safely.
"""

from __future__ import annotations

import enum


class _Member(enum.Enum):
    """Members hashed by identity (each is a singleton): the table is looked up on every call,
    and ``Enum``'s own ``__hash__`` is a Python-level call."""

    __hash__ = object.__hash__


class ConnState(_Member):
    IDLE = "idle"
    RECEIVING = "receiving"
    WAITING = "waiting"
    CLOSED = "closed"


class ConnEvent(_Member):
    HEAD = "head"
    BODY_END = "body-end"
    REPLIED = "replied"
    CLOSE = "close"


TRANSITIONS: dict[ConnState, dict[ConnEvent, ConnState]] = {
    ConnState.IDLE: {ConnEvent.HEAD: ConnState.RECEIVING, ConnEvent.CLOSE: ConnState.CLOSED},
    ConnState.RECEIVING: {
        ConnEvent.BODY_END: ConnState.WAITING,
        ConnEvent.REPLIED: ConnState.CLOSED,
        ConnEvent.CLOSE: ConnState.CLOSED,
    },
    ConnState.WAITING: {ConnEvent.REPLIED: ConnState.IDLE, ConnEvent.CLOSE: ConnState.CLOSED},
    ConnState.CLOSED: {ConnEvent.CLOSE: ConnState.CLOSED, ConnEvent.REPLIED: ConnState.CLOSED},
}


class IllegalTransition(Exception):
    def __init__(self, event: ConnEvent, state: ConnState) -> None:
        super().__init__(f"runtime connection: event {event.value!r} in state {state.value!r}")


def advance(state: ConnState, event: ConnEvent) -> ConnState:
    """The state after ``event``; raises :class:`IllegalTransition` if the table forbids it."""
    try:
        return TRANSITIONS[state][event]
    except KeyError:
        raise IllegalTransition(event, state) from None
