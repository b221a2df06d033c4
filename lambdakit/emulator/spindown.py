"""Lambda's Shutdown phase for one environment, in its documented order.

https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtime-environment.html#runtimes-lifecycle-shutdown

1. The runtime gets SIGTERM and its share of the budget (all of it without external
   extensions; SIGKILL at once when the environment is reset after a failure without them).
2. Telemetry still buffered is delivered while its listeners are alive.
3. External extensions get SHUTDOWN with the reason (``spindown``, ``timeout``, ``failure``) and
   the deadline, and may run until they exit or the budget ends; then whatever is left is killed.

Every process is reaped before this returns (:meth:`ProcessGroup.stop` always waits).  Then,
even if this failed, the environment sweeps what left the process groups (``setsid``) and is
still in its cgroup: SIGKILL, wait until the cgroup is empty, remove it
(:meth:`~lambdakit.emulator.containment.Enclosure.sweep`, called by ``SandboxBase._reap``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from lambdakit.emulator.extension_registry import ExtensionRegistry
from lambdakit.emulator.sandbox_processes import SandboxProcesses
from lambdakit.emulator.telemetry import TelemetryHub
from lambdakit.wire import limits

#: The whole budget, and the runtime's share of it when external extensions are registered.
SPINDOWN_GRACE = limits.SHUTDOWN_BUDGET_MS / 1000
_RUNTIME_SHARE = limits.SHUTDOWN_RUNTIME_SHARE_MS / 1000


async def shut_down(
    processes: SandboxProcesses,
    registry: ExtensionRegistry,
    telemetry: TelemetryHub,
    reason: str,
    grace: float,
) -> None:
    """Run the Shutdown phase; ``grace`` is the runtime's SIGTERM budget (0: SIGKILL at once)."""
    deadline = time.monotonic() + SPINDOWN_GRACE
    runtime, extensions = processes.runtime, processes.extensions
    # 1. The runtime.
    if runtime is not None:
        await runtime.stop(min(grace, _RUNTIME_SHARE) if extensions else grace)
    # 2. Telemetry.
    await telemetry.drain(max(0.1, deadline - time.monotonic()))
    # 3. External extensions.
    if not extensions:
        return
    remaining = max(0.0, deadline - time.monotonic())
    registry.shutdown(reason, int((time.time() + remaining) * 1000))
    exits = [asyncio.shield(group.exited()) for group in extensions.values()]
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(asyncio.gather(*exits), max(0.0, deadline - time.monotonic()))
    await asyncio.gather(*(group.stop(0) for group in extensions.values()))
