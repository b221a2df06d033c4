"""One connection to the broker, kept open: connect, set up, wait for its loss, back off, again.

Theory of operation
-------------------
:meth:`BrokerLink.start` makes ``connection_attempts`` attempts, ``retry_delay`` apart, and
raises :class:`BrokerUnavailable` (one sentence, no secret) when all fail: a broker that cannot be
reached at start is a configuration problem the command reports and exits on.  Each successful
connection is handed to ``on_open``, which opens channels, declares queues and starts consumers;
if ``on_open`` fails the connection is closed and counts as a failed attempt.  Once started,
the link never gives up: when the connection is lost (a broker restart, a network cut, a missed
heartbeat), ``on_lost`` is called at once (consumers are gone, unacknowledged deliveries have
been requeued by the broker), and reconnection is attempted with a backoff that starts at
``retry_delay`` and doubles up to 30 s.  :meth:`close` ends it in any state.  The daemon this is
compatible with exits once its attempts are used up, so a broker restart kills it; this does not.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import Awaitable, Callable, Mapping

import aiormq
import aiormq.abc
from pamqp import commands as spec

from lambdakit.amqp import lenient
from lambdakit.amqp.contract import Outgoing
from lambdakit.amqp.queues import QueueDeclaration
from lambdakit.amqp.uri import BrokerAddress, BrokerUnavailable
from lambdakit.emulator.lifecycle import Lifecycle

lenient.install()

logger = logging.getLogger("lambdakit.amqp")

#: How long one connection attempt may take, seconds.
CONNECT_TIMEOUT = 10.0


class LinkState(enum.Enum):
    IDLE = "idle"
    CONNECTING = "connecting"
    OPEN = "open"
    WAITING = "waiting"
    CLOSED = "closed"


class LinkEvent(enum.Enum):
    CONNECT = "connect"
    OPENED = "opened"
    FAILED = "failed"
    LOST = "lost"
    RETRY = "retry"
    CLOSE = "close"


_S, _E = LinkState, LinkEvent
LINK_TRANSITIONS: Mapping[LinkState, Mapping[LinkEvent, LinkState]] = {
    _S.IDLE: {_E.CONNECT: _S.CONNECTING, _E.CLOSE: _S.CLOSED},
    _S.CONNECTING: {_E.OPENED: _S.OPEN, _E.FAILED: _S.WAITING, _E.CLOSE: _S.CLOSED},
    _S.OPEN: {_E.LOST: _S.WAITING, _E.CLOSE: _S.CLOSED},
    _S.WAITING: {_E.RETRY: _S.CONNECTING, _E.CLOSE: _S.CLOSED},
    _S.CLOSED: {_E.CLOSE: _S.CLOSED},
}

Connection = aiormq.abc.AbstractConnection


class BrokerLink:
    """A connection to ``address`` that ``on_open`` sets up each time it is (re)established."""

    def __init__(
        self,
        address: BrokerAddress,
        name: str,
        on_open: Callable[[Connection], Awaitable[None]],
        on_lost: Callable[[], None] = lambda: None,
    ) -> None:
        self.address = address
        self._name = name
        self._on_open = on_open
        self._on_lost = on_lost
        self._lifecycle: Lifecycle[LinkState, LinkEvent] = Lifecycle(
            "broker link", LINK_TRANSITIONS, LinkState.IDLE
        )
        self.connection: Connection | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def state(self) -> LinkState:
        return self._lifecycle.state

    @property
    def is_open(self) -> bool:
        return self.state is LinkState.OPEN

    async def start(self) -> None:
        """Connect, or raise :class:`BrokerUnavailable` after ``connection_attempts`` tries."""
        attempts = self.address.connection_attempts
        for attempt in range(1, attempts + 1):
            self._lifecycle.fire(LinkEvent.CONNECT if attempt == 1 else LinkEvent.RETRY)
            problem = await self._open()
            if problem is None:
                break
            if attempt == attempts:
                self._lifecycle.fire(LinkEvent.CLOSE)
                tries = f" after {attempts} attempts" if attempts > 1 else ""
                raise BrokerUnavailable(
                    f"cannot reach the broker at {self.address.redacted()}{tries}: {problem}"
                )
            logger.warning(
                "cannot reach the broker at %s (%s); attempt %d of %d in %g s",
                self.address.redacted(),
                problem,
                attempt + 1,
                attempts,
                self.address.retry_delay,
            )
            await asyncio.sleep(self.address.retry_delay)
        self._task = asyncio.get_running_loop().create_task(
            self._supervise(), name=f"broker link {self._name}"
        )

    async def _open(self) -> str | None:
        """One attempt; None on success, else what went wrong (without secrets)."""
        try:
            connection = await asyncio.wait_for(
                aiormq.connect(self.address.client_url(self._name)), CONNECT_TIMEOUT
            )
        except asyncio.TimeoutError:
            self._lifecycle.fire(LinkEvent.FAILED)
            return f"no answer within {CONNECT_TIMEOUT:g} s"
        except Exception as exc:
            self._lifecycle.fire(LinkEvent.FAILED)
            return self.describe(exc)
        try:
            await self._on_open(connection)
        except BaseException as exc:  # cancelled (a close) included: never leak the connection
            with contextlib.suppress(Exception):
                await asyncio.shield(connection.close())
            if not isinstance(exc, Exception):
                raise
            self._lifecycle.fire(LinkEvent.FAILED)
            return f"setting up the connection failed: {self.describe(exc)}"
        if self.state is LinkState.CLOSED:  # closed while setting up
            with contextlib.suppress(Exception):
                await connection.close()
            return None
        self.connection = connection
        self._lifecycle.fire(LinkEvent.OPENED)
        return None

    async def _supervise(self) -> None:
        while self.state is LinkState.OPEN:
            connection = self.connection
            assert connection is not None
            with contextlib.suppress(Exception):
                await connection.closing
            if self.state is not LinkState.OPEN:
                return
            self._lifecycle.fire(LinkEvent.LOST)
            self.connection = None
            logger.warning(
                "lost the connection to the broker at %s; reconnecting", self.address.redacted()
            )
            self._on_lost()
            attempt = 0
            while self._in(LinkState.WAITING):
                attempt += 1
                await asyncio.sleep(self.address.backoff(attempt))
                if not self._in(LinkState.WAITING):
                    return
                self._lifecycle.fire(LinkEvent.RETRY)
                problem = await self._open()
                if problem is None:
                    logger.info("reconnected to the broker at %s", self.address.redacted())
                else:
                    logger.warning(
                        "reconnecting to the broker at %s failed (%s); next try in %g s",
                        self.address.redacted(),
                        problem,
                        self.address.backoff(attempt + 1),
                    )

    def _in(self, state: LinkState) -> bool:
        return self._lifecycle.state is state

    async def close(self) -> None:
        """Stop reconnecting and close the connection (idempotent)."""
        self._lifecycle.fire(LinkEvent.CLOSE)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        connection, self.connection = self.connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), 5)

    def describe(self, exc: BaseException) -> str:
        """An exception as one line, with the broker password scrubbed out."""
        text = str(exc) or type(exc).__name__
        if isinstance(exc, OSError) and exc.strerror:
            text = exc.strerror
        return self.address.scrub(f"{type(exc).__name__}: {text}" if str(exc) else text)


async def declare(channel: aiormq.abc.AbstractChannel, queue: QueueDeclaration) -> None:
    """``queue.declare`` as :mod:`lambdakit.amqp.queues` spells it (a 406 if it differs)."""
    await channel.queue_declare(
        queue.name,
        durable=queue.durable,
        auto_delete=queue.auto_delete,
        arguments=dict(queue.arguments),  # type: ignore[arg-type]
    )


async def publish(
    channel: aiormq.abc.AbstractChannel, message: Outgoing, *, mandatory: bool
) -> object:
    """Publish ``message`` on the default exchange; the broker's confirmation (with confirms)."""
    return await channel.basic_publish(
        message.body,
        exchange="",
        routing_key=message.routing_key,
        properties=spec.Basic.Properties(**message.properties),  # type: ignore[arg-type]
        mandatory=mandatory,
    )


class ReopeningChannel:
    """A channel on a link's connection, opened again when an error closed it.

    A channel-level error (a refused publish, a bad declaration) closes the channel but not the
    connection, so the link sees nothing; whoever publishes asks :meth:`get`, which opens a new
    one with ``setup`` (after ``on_reopen``, for what the closed channel took with it).  A lost
    connection is the link's business: :meth:`open` is called from its ``on_open``, and
    :meth:`forget` from its ``on_lost``.
    """

    def __init__(
        self,
        link: BrokerLink,
        setup: Callable[[Connection], Awaitable[aiormq.abc.AbstractChannel]],
        on_reopen: Callable[[], None] = lambda: None,
    ) -> None:
        self._link = link
        self._setup = setup
        self._on_reopen = on_reopen
        self._lock = asyncio.Lock()
        self.channel: aiormq.abc.AbstractChannel | None = None

    async def open(self, connection: Connection) -> None:
        self.channel = await self._setup(connection)

    def forget(self) -> None:
        self.channel = None

    async def get(self) -> aiormq.abc.AbstractChannel | None:
        """The open channel, reopened if needed; None while the link is disconnected."""
        async with self._lock:
            channel = self.channel
            if channel is not None and not channel.is_closed:
                return channel
            connection = self._link.connection
            if connection is None or connection.is_closed:
                return None
            self._on_reopen()
            try:
                self.channel = await self._setup(connection)
            except Exception as exc:
                logger.warning("cannot open a channel: %s", self._link.describe(exc))
                return None
            return self.channel
