"""The local Lambda service: one Invoke API listener, a pool per function, an ordered shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Mapping
from typing import BinaryIO

from lambdakit.emulator.config import ServiceConfig
from lambdakit.emulator.doors.invoke_api import InvokeApi
from lambdakit.emulator.http.server import HttpServer
from lambdakit.emulator.logs import LogSink
from lambdakit.emulator.pool import Pool
from lambdakit.emulator.sandbox import SPINDOWN_GRACE
from lambdakit.wire import limits

logger = logging.getLogger("lambdakit.service")

#: The Invoke API reads bodies up to this size; larger ones are counted, dropped and refused.
_INVOKE_MAX_BODY = limits.MAX_SYNC_PAYLOAD


class Service:
    """Everything ``lambdakit serve`` runs, started and stopped as one."""

    def __init__(
        self,
        config: ServiceConfig,
        host_environ: Mapping[str, str],
        output: BinaryIO | None = None,
    ) -> None:
        self.config = config
        self.sink = LogSink(
            output or sys.stdout.buffer, config.log_format, tag_functions=len(config.functions) > 1
        )
        self.pools = {
            name: Pool(config, function, self.sink, host_environ)
            for name, function in config.functions.items()
        }
        self.invoke_api = InvokeApi(config, self.pools)
        self._server = HttpServer(self.invoke_api, _INVOKE_MAX_BODY)
        self._reaper: asyncio.Task[None] | None = None
        self._force = asyncio.Event()
        self.address: tuple[str, int] = ("", 0)

    async def start(self) -> tuple[str, int]:
        self.address = await self._server.start(self.config.host, self.config.port)
        self._reaper = asyncio.get_running_loop().create_task(self._reap_idle(), name="reaper")
        return self.address

    async def _reap_idle(self) -> None:
        period = min(
            max(min(f.idle_timeout for f in self.config.functions.values()) / 4, 0.05), 30.0
        )
        while True:
            await asyncio.sleep(period)
            for pool in self.pools.values():
                pool.reap_idle()

    async def stop(self) -> None:
        """Shut down in a fixed order; safe to call once the service has started."""
        # 1. Stop accepting: no new connections, and new invocations on open ones are refused.
        self._server.stop_accepting()
        self.invoke_api.stop_accepting()
        # 2. Let in-flight invocations finish, bounded by the service's shutdown timeout.
        draining = asyncio.ensure_future(self.invoke_api.drained())
        forced = asyncio.ensure_future(self._force.wait())
        await asyncio.wait(
            (draining, forced),
            timeout=self.config.shutdown_timeout,
            return_when=asyncio.FIRST_COMPLETED,
        )
        draining.cancel()
        forced.cancel()
        if self.invoke_api.in_flight:
            logger.warning(
                "stopping with %d invocation(s) still running", self.invoke_api.in_flight
            )
        # 3. Stop the idle reaper.
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        # 4. Spin down every environment: SIGTERM, a grace period, SIGKILL, reap.
        await asyncio.gather(
            *(
                pool.stop(grace=0 if self._force.is_set() else SPINDOWN_GRACE)
                for pool in self.pools.values()
            )
        )
        # 5. Let replies written in step 4 leave, then close the callers' connections.
        await asyncio.sleep(0)
        self._server.close_connections()
        self.sink.flush()

    def force_stop(self) -> None:
        """A second signal: skip the grace periods and kill every environment now."""
        self._force.set()
        for pool in self.pools.values():
            pool.kill()


async def serve(
    service: Service,
    on_ready: Callable[[tuple[str, int]], None],
    shutdown_trigger: Awaitable[object] | None = None,
) -> None:
    """Run ``service`` until ``shutdown_trigger`` completes (default: SIGINT or SIGTERM)."""
    await service.start()
    on_ready(service.address)
    try:
        if shutdown_trigger is None:
            await _signalled(service.force_stop)
        else:
            await shutdown_trigger
    finally:
        await service.stop()


async def _signalled(force: Callable[[], None]) -> None:
    """Wait for SIGINT or SIGTERM; a second one makes the shutdown skip its grace periods."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def handle(signum: int) -> None:
        if stop.is_set():
            logger.warning(
                "received %s again, killing every environment now", signal.Signals(signum).name
            )
            force()
            return
        logger.info("received %s, shutting down (again to force)", signal.Signals(signum).name)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, handle, sig)
    await stop.wait()
