"""The local Lambda service: one Invoke API listener, a pool per function, an ordered shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, BinaryIO

from lambdakit.amqp.uri import BrokerUnavailable
from lambdakit.emulator.activity import Activity
from lambdakit.emulator.config import ServiceConfig
from lambdakit.emulator.containment import Containment
from lambdakit.emulator.doors.api_gateway import ApiGateway
from lambdakit.emulator.doors.async_queue import EventQueue
from lambdakit.emulator.doors.function_url import FunctionUrl
from lambdakit.emulator.doors.invoke_api import InvokeApi
from lambdakit.emulator.doors.tracking import InFlight
from lambdakit.emulator.http import Handler
from lambdakit.emulator.http.server import HttpServer
from lambdakit.emulator.logs import LogSink
from lambdakit.emulator.pool import Pool
from lambdakit.emulator.spindown import SPINDOWN_GRACE
from lambdakit.wire import limits

if TYPE_CHECKING:
    from lambdakit.emulator.doors.amqp_rpc import AmqpDoor
    from lambdakit.emulator.live_view import LiveView
    from lambdakit.emulator.watch import CodeWatcher

__all__ = ["BrokerUnavailable", "Service", "serve"]

logger = logging.getLogger("lambdakit.service")

#: Extra time, seconds, for environments to be reaped after their shutdown budget.
_STOP_MARGIN = 5.0
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
        #: The environment every sandbox starts from; the Invoke API's address is added at start.
        self._host_environ = dict(host_environ)
        self.sink = LogSink(
            output or sys.stdout.buffer, config.log_format, tag_functions=len(config.functions) > 1
        )
        #: What happens in every environment, for the metrics and the live view.
        self.activity = Activity()
        #: Every environment's cgroup and the check of who calls its APIs (docs/isolation.md).
        self.containment = Containment.open(config.isolation, config.cgroups)
        self.pools = {
            name: Pool(
                config,
                function,
                self.sink,
                self._host_environ,
                activity=self.activity,
                containment=self.containment,
            )
            for name, function in config.functions.items()
        }
        self.in_flight = InFlight()
        self.events = EventQueue(config, self.pools, config.state_dir)
        self.invoke_api = InvokeApi(config, self.pools, self.in_flight, self.events)
        handler: Handler = self.invoke_api
        #: The live view (``/_lambdakit/``), whose event streams end at shutdown.
        self.live_view: LiveView | None = None
        if config.observe:
            from lambdakit.emulator.doors.observers import WithObservers
            from lambdakit.emulator.live_view import LiveView
            from lambdakit.emulator.metrics import Metrics

            metrics = Metrics(self.activity, self.events.store.pending_by_function)
            self.live_view = LiveView(self.activity, list(config.functions))
            handler = WithObservers(self.invoke_api, metrics, self.live_view)
        self._server = HttpServer(handler, _INVOKE_MAX_BODY)
        self._url_servers = {
            name: HttpServer(
                FunctionUrl(config, function, self.pools[name], self.in_flight), _INVOKE_MAX_BODY
            )
            for name, function in config.functions.items()
            if function.url_port is not None and config.urls
        }
        #: API Gateway's routes on their own port (``--api-port``, ``[api]``).
        self._api_server: HttpServer | None = None
        if config.api is not None:
            gateway = ApiGateway(config, config.api, self.pools, self.in_flight)
            self._api_server = HttpServer(gateway, _INVOKE_MAX_BODY)
        #: Where API Gateway listens, once started.
        self.api_address: tuple[str, int] | None = None
        #: The AMQP-RPC door (``--amqp``), imported only when used (aiormq is not light).
        self.amqp: AmqpDoor | None = None
        if config.amqp is not None:
            from lambdakit.emulator.doors.amqp_rpc import AmqpDoor

            self.amqp = AmqpDoor(config, self.pools, self.in_flight, config.amqp, config.amqp_queue)
        #: Where each function's URL listens, once started.
        self.url_addresses: dict[str, tuple[str, int]] = {}
        #: The code watcher of ``--watch``, imported only when used (it starts a thread).
        self.watcher: CodeWatcher | None = None
        if config.watch:
            from lambdakit.emulator.watch import CodeWatcher

            self.watcher = CodeWatcher(
                self.pools,
                {name: function.code_dir for name, function in config.functions.items()},
                ignored=(config.state_dir,),
            )
        self._reaper: asyncio.Task[None] | None = None
        self._force = asyncio.Event()
        self.address: tuple[str, int] = ("", 0)

    async def start(self) -> tuple[str, int]:
        """Listen; an ``OSError`` names the address that could not be used."""
        self.address = await _listen(
            self._server, self.config.host, self.config.port, "the Invoke API"
        )
        # Functions that call Lambda through an AWS SDK reach this service, as on Lambda.
        host, port = self.address
        self._host_environ.setdefault("AWS_ENDPOINT_URL_LAMBDA", f"http://{host}:{port}")
        for name, server in self._url_servers.items():
            port = self.config.functions[name].url_port or 0
            self.url_addresses[name] = await _listen(
                server, self.config.host, port, f"the function URL of {name}"
            )
        if self._api_server is not None and self.config.api is not None:
            self.api_address = await _listen(
                self._api_server, self.config.host, self.config.api.port, "API Gateway"
            )
        if self.amqp is not None:
            try:
                await self.amqp.start()
            except BrokerUnavailable:
                for server in self._servers():
                    server.stop_accepting()
                self.events.close()
                raise
        self._reaper = asyncio.get_running_loop().create_task(self._reap_idle(), name="reaper")
        self.events.start()
        if self.config.debug:
            logger.info(
                "debug mode: one environment per function, never frozen, no timeouts "
                "(docs/daily-loop.md)"
            )
        if self.watcher is not None:
            self.watcher.start()
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
        for server in self._servers():
            server.stop_accepting()
        self.in_flight.accepting = False
        if self.watcher is not None:  # no reload starts environments while they stop
            await self.watcher.stop()
        if self.amqp is not None:  # cancel the consumers: the broker sends work elsewhere
            await self.amqp.stop_consuming()
        # 2. Let in-flight invocations finish, bounded by the service's shutdown timeout.
        draining = asyncio.ensure_future(self.in_flight.drained())
        forced = asyncio.ensure_future(self._force.wait())
        await asyncio.wait(
            (draining, forced),
            timeout=self.config.shutdown_timeout,
            return_when=asyncio.FIRST_COMPLETED,
        )
        draining.cancel()
        forced.cancel()
        if self.in_flight.count:
            logger.warning("stopping with %d invocation(s) still running", self.in_flight.count)
        #    Event invocations: stop dispatching, let those running finish (bounded).
        await self.events.stop(0 if self._force.is_set() else self.config.shutdown_timeout)
        #    AMQP requests not finished by now go back to the broker, for another instance.
        if self.amqp is not None:
            await self.amqp.close()
        # 3. Stop the idle reaper.
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        # 4. Spin down every environment: SIGTERM, a grace period, SIGKILL, reap.  Bounded:
        #    a shutdown that hangs anyway gets SIGKILL for everything and a last wait.
        grace = 0 if self._force.is_set() else SPINDOWN_GRACE
        stopping = asyncio.gather(*(pool.stop(grace=grace) for pool in self.pools.values()))
        try:
            await asyncio.wait_for(asyncio.shield(stopping), grace + _STOP_MARGIN)
        except asyncio.TimeoutError:
            logger.error("environments did not stop in time; killing them")
            self.force_stop()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stopping, _STOP_MARGIN)
        # 5. Events cut off by step 4 stay stored for the next start; no process is left.
        self.events.close()
        self.containment.close()
        # 6. End the live view's event streams, let replies written in step 4 leave, then
        #    close the callers' connections.
        if self.live_view is not None:
            self.live_view.close()
        await asyncio.sleep(0)
        for server in self._servers():
            server.close_connections()
        self.sink.flush()

    def _servers(self) -> list[HttpServer]:
        """Every listener: the Invoke API's, the Function URLs', API Gateway's."""
        servers = [self._server, *self._url_servers.values()]
        return servers if self._api_server is None else [*servers, self._api_server]

    def force_stop(self) -> None:
        """A second signal: skip the grace periods and kill every environment now."""
        self._force.set()
        for pool in self.pools.values():
            pool.kill()


async def _listen(server: HttpServer, host: str, port: int, what: str) -> tuple[str, int]:
    try:
        return await server.start(host, port)
    except OSError as exc:
        hint = ""
        if exc.errno == errno.EADDRINUSE:
            hint = " (another lambdakit serve? choose another port, or 0 for a free one)"
        raise OSError(
            exc.errno, f"cannot listen on {host}:{port} for {what}: {exc.strerror or exc}{hint}"
        ) from None


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
            await signalled(service.force_stop)
        else:
            await shutdown_trigger
    finally:
        await service.stop()


async def signalled(force: Callable[[], None]) -> None:
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
