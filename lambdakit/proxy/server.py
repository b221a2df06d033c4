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

:class:`RuntimeApiProxy` owns the listener, the runtime's connections
(:mod:`lambdakit.proxy.downstream`) and a pool of keep-alive connections to upstream
(:mod:`lambdakit.proxy.upstream`); :meth:`RuntimeApiProxy.forward` is the ``forward`` every hook
is given.
"""

from __future__ import annotations

import asyncio
import logging

from lambdakit.proxy.calls import BodyStream, Call, Reply
from lambdakit.proxy.downstream import Exchange, RuntimeConnection
from lambdakit.proxy.hooks import Hooks, active_hooks
from lambdakit.proxy.http1 import (
    encode_chunk,
    encode_last_chunk,
    encode_request_head,
    without_framing,
)
from lambdakit.proxy.upstream import UpstreamConnection, UpstreamError, UpstreamPool
from lambdakit.wire import headers as h

logger = logging.getLogger("lambdakit.proxy")


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
        self.pool = UpstreamPool(host, port)
        self.connections: set[RuntimeConnection] = set()
        self._server: asyncio.AbstractServer | None = None
        #: ``host:port`` to give the runtime as ``AWS_LAMBDA_RUNTIME_API`` once started.
        self.address = ""

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen (port 0: a free one) and return ``host:port``; OSError if the port is taken."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: RuntimeConnection(self), host, port)
        bound = self._server.sockets[0].getsockname()
        self.address = f"{bound[0]}:{bound[1]}"
        logger.debug("Runtime API proxy on %s, forwarding to %s", self.address, self.upstream)
        return self.address

    async def close(self) -> None:
        """Stop listening, drop the runtime's connections and upstream's."""
        if self._server is not None:
            self._server.close()
        for connection in list(self.connections):
            connection.abort()
        self.pool.close()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    # forwarding -----------------------------------------------------------------------------
    def encode(self, call: Call, exchange: Exchange) -> bytes:
        """The bytes of a call with a buffered body: as received when the hook changed nothing."""
        assert isinstance(call.body, bytes)
        if call is exchange.call and call.raw_head:
            return call.raw_head + call.body
        fields = [(n, v) for n, v in without_framing(call.headers) if n != h.EXPECT]
        if call.body or call.method not in ("GET", "HEAD"):
            fields.append((h.CONTENT_LENGTH, str(len(call.body))))
        return encode_request_head(call.method, call.target, fields) + call.body

    async def forward(self, call: Call, exchange: Exchange) -> Reply:
        """Send ``call`` upstream and return upstream's reply (UpstreamError if there is none)."""
        loop = asyncio.get_running_loop()
        connection_header = call.header(h.CONNECTION)
        close = connection_header is not None and connection_header.lower() == "close"
        for attempt in (1, 2):
            upstream = self.pool.take_idle() or await self.pool.connect()
            exchange.upstream = upstream
            done: asyncio.Future[Reply | UpstreamError] = loop.create_future()
            deliver = _Deliver(done)
            try:
                if isinstance(call.body, bytes):
                    data = self.encode(call, exchange)
                    upstream.request(data, deliver, head_only=call.method == "HEAD", close=close)
                else:
                    await self._stream(call, call.body, exchange, upstream, deliver, close)
                result = await done
            except BaseException:
                upstream.abort()
                raise
            finally:
                exchange.upstream = None
            if isinstance(result, Reply):
                exchange.reply = result
                return result
            if not (result.retryable and attempt == 1 and isinstance(call.body, bytes)):
                raise result
            logger.debug("retrying %s %s on a fresh connection", call.method, call.target)
        raise AssertionError("unreachable")

    async def _stream(
        self,
        call: Call,
        body: BodyStream,
        exchange: Exchange,
        upstream: UpstreamConnection,
        deliver: _Deliver,
        close: bool,
    ) -> None:
        """Forward a chunked body chunk by chunk, trailers last, as it arrives."""
        if call is exchange.call and call.raw_head:
            head = call.raw_head
        else:
            fields = [(n, v) for n, v in without_framing(call.headers) if n != h.EXPECT]
            fields.append((h.TRANSFER_ENCODING, "chunked"))
            head = encode_request_head(call.method, call.target, fields)
        upstream.request(head, deliver, head_only=False, close=close)
        async for chunk in body:
            upstream.write(encode_chunk(chunk))
            await upstream.drain()
        upstream.write(encode_last_chunk(body.trailers))


class _Deliver:
    __slots__ = ("_future",)

    def __init__(self, future: asyncio.Future[Reply | UpstreamError]) -> None:
        self._future = future

    def __call__(self, result: Reply | UpstreamError) -> None:
        if not self._future.done():
            self._future.set_result(result)
