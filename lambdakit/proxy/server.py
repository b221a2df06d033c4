"""A Runtime API proxy: a loopback listener for the runtime, forwarding to the real API.

Theory of operation
-------------------
Lambda tells a runtime where its Runtime API is with ``AWS_LAMBDA_RUNTIME_API`` (host:port,
https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html).  A proxy listens on loopback,
starts the runtime with that variable pointing at itself, and forwards every call to the
address it was given.  Lambda ends an invocation's phase, and may freeze the environment, only
once the runtime (and every extension) asks for the next event; until then the environment
runs, whether or not the caller already has its response.  Hooks (:mod:`lambdakit.proxy.hooks`)
see each call on the way and may inspect, rewrite, answer or delay it; delaying ``next`` is how
work keeps running after the response.

Threads, not an event loop
--------------------------
A runtime makes one call at a time per connection and rarely has more than two connections, so
the proxy serves each connection on its own thread with blocking sockets: a proxied call is a
``recv``, a parse, a ``sendall`` upstream, a ``recv`` of the reply and a ``sendall`` back, all on
one thread, with no scheduler between them.  On CPython that adds less than half of what the
same proxy on asyncio added, and a little less than on uvloop (bench/results/postrun_latency.md),
with the standard library only, which is all a Lambda layer can count on.

Threads are reused: idle ones wait in ``accept()`` (leader/follower), and the thread that accepts
a connection serves it, after making sure another one is waiting.  A new thread starts only when
more connections are open at once than ever before; a runtime that opens a connection per call
(curl) is served by the same two threads throughout.  :class:`RuntimeApiProxy` owns the listener,
the threads, the runtime's connections (:mod:`lambdakit.proxy.downstream`) and a pool of
keep-alive connections upstream (:mod:`lambdakit.proxy.upstream`).
"""

from __future__ import annotations

import logging
import select
import socket
import threading
import time
from types import TracebackType

from lambdakit.proxy.calls import CallKind
from lambdakit.proxy.downstream import RuntimeConnection
from lambdakit.proxy.hooks import Hooks, active_hooks, overrides
from lambdakit.proxy.sockets import listen, passes_on_nodelay, set_nodelay, shut
from lambdakit.proxy.upstream import UpstreamPool

logger = logging.getLogger("lambdakit.proxy")

#: Threads kept waiting for connections once theirs closed (beyond this, they end).
MAX_SPARE_THREADS = 4
#: How long :meth:`RuntimeApiProxy.close` waits for each thread (one stuck in a hook is left:
#: threads are daemons and do not keep the process alive).
JOIN_TIMEOUT = 2.0
#: Invocations remembered as delivered and unanswered, at most (a runtime with N workers has N).
MAX_DELIVERED = 1024
#: Seconds to wait before accepting again after accept() failed.
ACCEPT_BACKOFF = 0.05
#: Seconds :meth:`RuntimeApiProxy.settle` must see no connection open or queued before it is
#: sure (a connection between ``accept()`` and being counted is invisible meanwhile, for
#: microseconds unless its thread is descheduled).
SETTLE_QUIET = 0.05


def split_address(address: str) -> tuple[str, int]:
    """``host:port`` (or ``[v6]:port``) as a pair; ValueError names what is wrong."""
    host, colon, port = address.rpartition(":")
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected host:port, got {address!r}")
    return host.strip("[]"), int(port)


class RuntimeApiProxy:
    """Forwards a runtime's Runtime API calls to ``upstream`` (``host:port``) through ``hooks``."""

    def __init__(self, upstream: str, hooks: Hooks | None = None) -> None:
        host, port = split_address(upstream)
        self.upstream = upstream
        self.hooks = hooks if hooks is not None else Hooks()
        self.hooks_by_kind = active_hooks(self.hooks)
        #: Observers to call (see ``Hooks.before_next`` and ``Hooks.on_result``), or None.
        self.before_next = self.hooks.before_next if overrides(self.hooks, "before_next") else None
        self.on_result = self.hooks.on_result if overrides(self.hooks, "on_result") else None
        #: on_result wants the results of responses as such (a streamed one may end as an error).
        self.observes_responses = self.on_result is not None and (
            CallKind.RESPONSE in self.hooks.results
        )
        self.pool = UpstreamPool(host, port)
        #: ``host:port`` to give the runtime as ``AWS_LAMBDA_RUNTIME_API`` once started.
        self.address = ""
        self._listener: socket.socket | None = None
        #: Accepted sockets inherit TCP_NODELAY from the listener (or each must be set).
        self._nodelay_inherited = False
        self._lock = threading.Lock()
        self._threads: set[threading.Thread] = set()
        self._spare = 0  # threads in accept(), or on their way there
        self._connections: set[socket.socket] = set()
        #: Invocations delivered (``next``) and not yet answered: request id -> deadline (ms
        #: since the epoch, 0 if unknown) and the ``next`` reply as received.  Single dict
        #: operations, atomic under the GIL.
        self.delivered: dict[str, tuple[int, bytes]] = {}
        #: Responses accepted at once whose upstream reply is not read yet; a ``next`` waits
        #: for them to be read (so that it never overtakes a response on another connection).
        self.owed_replies = 0
        self._owed_read = threading.Condition(self._lock)
        #: Notified whenever a runtime connection ends.
        self._ended = threading.Condition(self._lock)
        self._closing = False

    def remember_delivery(self, request_id: str, deadline: int, raw: bytes) -> None:
        """Note the invocation a ``next`` reply (``raw``, as received) delivered."""
        if len(self.delivered) >= MAX_DELIVERED:  # answered some other way: forget them
            self.delivered.clear()
        self.delivered[request_id] = (deadline, raw)

    def owe_reply(self) -> None:
        with self._lock:
            self.owed_replies += 1

    def owed_reply_read(self) -> None:
        with self._lock:
            self.owed_replies -= 1
            self._owed_read.notify_all()

    def wait_for_owed_replies(self) -> None:
        """Wait until upstream has answered every response accepted at once (or the proxy
        closes: then the caller's upstream call fails as any would)."""
        with self._lock:
            self._owed_read.wait_for(lambda: not self.owed_replies or self._closing)

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen (port 0: a free one) and return ``host:port``; OSError if the port is taken."""
        self._listener = listen(host, port)
        self._nodelay_inherited = passes_on_nodelay(self._listener)
        bound = self._listener.getsockname()
        self.address = f"{bound[0]}:{bound[1]}"
        with self._lock:
            self._spawn()
        logger.debug("Runtime API proxy on %s, forwarding to %s", self.address, self.upstream)
        return self.address

    def settle(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for every runtime connection to end on its own.

        Once the runtime has exited, what it sent before (a ``/response`` posted just before
        exiting) is still in its connections: each is read to its end and forwarded, and a
        held ``next`` is dropped when its connection's hang-up is seen.  Closing the proxy
        before that would lose the response.  That includes a connection the listener has not
        handed over yet (it defers ``accept()`` until the first bytes arrive, so a runtime that
        connects, posts and exits leaves one queued) and one a thread has accepted but not yet
        counted: nothing must be pending for :data:`SETTLE_QUIET` s in a row.  True if all
        ended in time.
        """
        deadline = time.monotonic() + timeout
        quiet_since: float | None = None  # since when nothing was pending
        with self._lock:
            while True:
                now = time.monotonic()
                if self._connections or self._queued():
                    quiet_since = None
                elif quiet_since is None:
                    quiet_since = now
                elif now - quiet_since >= SETTLE_QUIET:
                    return True
                if now >= deadline:
                    return quiet_since is not None
                self._ended.wait(min(deadline - now, SETTLE_QUIET / 5))

    def _queued(self) -> bool:
        """A connection waits in the listener's queue for a thread to accept it."""
        listener = self._listener
        if listener is None or listener.fileno() < 0:
            return False
        poller = select.poll()
        poller.register(listener, select.POLLIN)
        return bool(poller.poll(0))

    def close(self) -> None:
        """Stop listening, hang up on the runtime's connections and upstream's, join threads."""
        with self._lock:
            self._closing = True
            self._owed_read.notify_all()  # nothing waits for an owed reply any more
            connections, threads = list(self._connections), list(self._threads)
        if self._listener is not None:
            shut(self._listener)  # wakes the threads in accept()
            self._listener.close()
        for sock in connections:
            shut(sock)
        self.pool.close()
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(JOIN_TIMEOUT)
                if thread.is_alive():
                    logger.warning("proxy thread %s did not finish (blocked in a hook?)", thread)

    def __enter__(self) -> RuntimeApiProxy:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def thread_count(self) -> int:
        """Threads serving or waiting for connections (for tests and diagnostics)."""
        with self._lock:
            return len(self._threads)

    # threads ----------------------------------------------------------------------------------
    def _spawn(self) -> None:
        """Start a thread that waits for a connection (the lock is held)."""
        thread = threading.Thread(target=self._work, name="lambdakit-proxy", daemon=True)
        self._threads.add(thread)
        self._spare += 1
        thread.start()

    def _work(self) -> None:
        """Accept a connection, make sure another thread waits for the next, serve it, repeat."""
        listener = self._listener
        assert listener is not None
        try:
            while True:
                try:
                    sock, _ = listener.accept()
                except OSError as exc:
                    if self._closing:
                        return
                    logger.warning("accepting a runtime connection failed: %s", exc)
                    time.sleep(ACCEPT_BACKOFF)  # out of file descriptors, say: do not spin
                    continue
                with self._lock:
                    self._spare -= 1
                    if self._closing:
                        sock.close()
                        return
                    if not self._spare:
                        self._spawn()
                    self._connections.add(sock)
                if not self._nodelay_inherited:
                    set_nodelay(sock)
                try:
                    RuntimeConnection(self, sock).serve()
                except Exception:
                    logger.exception("runtime connection failed")
                with self._lock:
                    self._connections.discard(sock)
                    self._ended.notify_all()
                    if self._closing or self._spare >= MAX_SPARE_THREADS:
                        return
                    self._spare += 1
        finally:
            with self._lock:
                self._threads.discard(threading.current_thread())
