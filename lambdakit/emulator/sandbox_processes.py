"""The processes of one execution environment: its external extensions and its runtime.

Lambda launches every executable of ``/opt/extensions`` in name order, then the runtime
(https://docs.aws.amazon.com/lambda/latest/dg/runtimes-extensions-api.html#runtimes-extensions-api-lifecycle);
here the extensions directories are the ``extensions`` of the function's layers and its
``extensions_dir`` (:mod:`lambdakit.emulator.layers`).  Each process leads its own
:class:`~lambdakit.emulator.processes.ProcessGroup`; this class keeps them together so that
freezing, killing, draining output and reading peak memory reach all of them.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path

from lambdakit.deathsig import die_with_parent
from lambdakit.emulator.environment import extension_environment
from lambdakit.emulator.processes import ProcessGroup

logger = logging.getLogger("lambdakit.sandbox")

#: Called when a process exits: the extension's name (empty for the runtime) and its exit.
OnExit = Callable[[str, "asyncio.Future[int]"], None]


def external_extensions(directories: Sequence[Path]) -> list[Path]:
    """The executables of the extensions directories, in name order, as Lambda launches them.

    The directories are merged as Lambda merges its layers into ``/opt/extensions``: a file of
    a later directory replaces an earlier one's of the same name.
    """
    merged: dict[str, Path] = {}
    for directory in directories:
        for path in directory.iterdir():
            merged[path.name] = path
    found = []
    for name in sorted(merged):
        path = merged[name]
        if path.is_file() and os.access(path, os.X_OK):
            found.append(path)
        else:
            logger.warning("extensions directory: %s is not an executable file, skipped", path)
    return found


class SandboxProcesses:
    """The runtime's and the external extensions' process groups of one environment."""

    __slots__ = ("_cwd", "_name", "_on_exit", "extensions", "preexec", "runtime")

    def __init__(self, name: str, cwd: Path, on_exit: OnExit) -> None:
        self._name = name
        self._cwd = str(cwd)
        self._on_exit = on_exit
        self.runtime: ProcessGroup | None = None
        self.extensions: dict[str, ProcessGroup] = {}
        #: Run in each child before exec (dies with serve; joins the environment's cgroup).
        self.preexec: Callable[[], None] = die_with_parent

    async def launch(
        self,
        extensions: Sequence[Path],
        env: Mapping[str, str],
        command: Sequence[str],
        output: Callable[[str, str], None],
        registered: Callable[[], Awaitable[bool]],
        over: Callable[[], bool],
    ) -> None:
        """Init's launch order: the extensions, then (once they all registered) the runtime.

        ``output`` gets each line with its kind (``extension`` or ``function``); ``registered``
        waits for the extensions and says whether Init still goes on; once ``over()`` (Init
        failed or timed out while a process was starting: the loop runs meanwhile), nothing more
        is started.  Raises ``OSError`` when a process cannot be started.
        """
        extension_output = functools.partial(output, "extension")
        for path in extensions:
            if over():
                return
            await self.launch_extension(path, extension_environment(env), extension_output)
        if (extensions and not await registered()) or over():
            return
        await self.spawn_runtime(command, env, functools.partial(output, "function"))

    async def launch_extension(
        self, path: Path, env: Mapping[str, str], on_line: Callable[[str], None]
    ) -> None:
        """Start an external extension; raise ``OSError`` if it cannot be."""
        group = await ProcessGroup.spawn(
            (str(path),), env=env, cwd=self._cwd, on_line=on_line, preexec=self.preexec
        )
        self.extensions[path.name] = group
        group.exited().add_done_callback(lambda exited: self._on_exit(path.name, exited))
        logger.debug("%s: launched extension %s %r", self._name, path.name, group)

    async def spawn_runtime(
        self, command: Sequence[str], env: Mapping[str, str], on_line: Callable[[str], None]
    ) -> ProcessGroup:
        """Start the runtime; raise ``OSError`` if it cannot be."""
        group = await ProcessGroup.spawn(
            command, env=env, cwd=self._cwd, on_line=on_line, preexec=self.preexec
        )
        self.runtime = group
        group.exited().add_done_callback(lambda exited: self._on_exit("", exited))
        logger.debug("%s: started %r", self._name, group)
        return group

    def groups(self) -> list[ProcessGroup]:
        groups = list(self.extensions.values())
        if self.runtime is not None:
            groups.append(self.runtime)
        return groups

    def signal(self, signum: int) -> None:
        for group in self.groups():
            group.signal(signum)

    def drain_output(self) -> None:
        """Deliver what every process wrote so far (on every invocation: no list is built)."""
        for group in self.extensions.values():
            group.drain_output()
        if self.runtime is not None:
            self.runtime.drain_output()

    def max_rss_mb(self) -> int:
        total = (
            sum(group.max_rss_mb() for group in self.extensions.values()) if self.extensions else 0
        )
        return total + (self.runtime.max_rss_mb() if self.runtime is not None else 0)

    def __repr__(self) -> str:
        return f"<SandboxProcesses runtime={self.runtime!r} extensions={len(self.extensions)}>"
