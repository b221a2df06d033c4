"""Hot reload (``serve --watch``): a function's environments restart when its code changes.

Theory of operation
-------------------
One :func:`watchfiles.awatch` (inotify through the Rust ``notify`` crate, in a worker thread)
watches every function's code directory (``--code-dir``, ``code_dir`` of a ``lambdakit.toml``)
recursively.  It groups a burst of changes into one set: it yields once no new change came for
:data:`STEP_MS`, or after :data:`DEBOUNCE_MS` of changes at most, so an editor's save (a
temporary file, a rename, a chmod) or a ``git checkout`` is one reload.  Changes no function
reads are filtered out (:class:`CodeFilter`: ``__pycache__``, ``.pyc``, editors' swap and backup
files, ``.git``, and the service's own ``--state-dir``).

Each changed path is matched to the code directories it lies under, and every function with
that code directory is reloaded (:meth:`~lambdakit.emulator.pool.Pool.reload`): invocations
running finish in their old environment, new ones go to new environments, old idle ones go
through the normal Shutdown phase, and one new environment starts at once.  Lambda itself has
no such thing: a new deployment there also lets running invocations finish on the old code
(https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtime-environment.html); this is the
local equivalent of ``sam sync --watch``.  One log line per reload names the functions and
the files.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

logger = logging.getLogger("lambdakit.watch")

#: A change is reported once no other came for this long (milliseconds).
STEP_MS = 100
#: A burst of changes is reported after this long at most (milliseconds).
DEBOUNCE_MS = 1600
#: Files named in a reload's log line; more are counted.
_SHOWN_FILES = 3


class Reloadable(Protocol):
    """What the watcher needs of a function's pool."""

    def reload(self) -> None: ...


@dataclass(frozen=True)
class Watched:
    """A code directory and the functions whose code it holds."""

    directory: Path
    functions: tuple[str, ...]


def watched_directories(code_dirs: Mapping[str, Path]) -> tuple[Watched, ...]:
    """Functions grouped by their (resolved) code directory: those sharing one reload together."""
    groups: dict[Path, list[str]] = {}
    for name, code_dir in code_dirs.items():
        groups.setdefault(code_dir.resolve(), []).append(name)
    return tuple(Watched(path, tuple(sorted(names))) for path, names in sorted(groups.items()))


def changed_in(directory: Path, paths: Iterable[str]) -> list[str]:
    """The ``paths`` under ``directory``, relative to it, sorted; those that still exist first.

    An editor's or ``sed -i``'s temporary file, gone by now, is named only when nothing else
    changed (a deletion).
    """
    under = []
    for path in paths:
        with contextlib.suppress(ValueError):
            under.append(Path(path).relative_to(directory))
    existing = sorted({str(path) for path in under if (directory / path).exists()})
    return existing or sorted({str(path) for path in under})


def describe_files(files: Sequence[str]) -> str:
    """``app.py``, ``app.py, lib/util.py`` or ``a.py, b.py, c.py and 4 more``."""
    shown = ", ".join(files[:_SHOWN_FILES])
    more = len(files) - _SHOWN_FILES
    return f"{shown} and {more} more" if more > 0 else shown


def code_filter(ignored: Iterable[Path]) -> Callable[[Any, str], bool]:
    """watchfiles' default filter, also ignoring the ``ignored`` paths (the state directory)."""
    from watchfiles import DefaultFilter

    return DefaultFilter(
        ignore_dirs=(*DefaultFilter.ignore_dirs, ".lambdakit"),
        ignore_entity_patterns=(
            *DefaultFilter.ignore_entity_patterns,
            r"^4913$",  # vim's probe of whether it may write in the directory
            r"\.tmp$",
        ),
        ignore_paths=tuple(str(path) for path in ignored),
    )


class CodeWatcher:
    """Watches the functions' code directories and reloads their pools on a change."""

    def __init__(
        self,
        pools: Mapping[str, Reloadable],
        code_dirs: Mapping[str, Path],
        ignored: Iterable[Path] = (),
    ) -> None:
        self._pools = pools
        self.watched = watched_directories(code_dirs)
        self._ignored = tuple(ignored)
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        # watchfiles says "N changes detected" at INFO for every batch; the reload line says it.
        logging.getLogger("watchfiles").setLevel(logging.WARNING)
        self._task = asyncio.get_running_loop().create_task(self._watch(), name="watch code")

    async def _watch(self) -> None:
        from watchfiles import awatch

        directories = [str(watched.directory) for watched in self.watched]
        listed = ", ".join(directories)
        try:
            batches = awatch(
                *directories,
                watch_filter=code_filter(self._ignored),
                debounce=DEBOUNCE_MS,
                step=STEP_MS,
                stop_event=self._stop,
            )
            batch = asyncio.ensure_future(anext(batches))
            # The task's first step sets the watches up (synchronously), then waits in a thread:
            # from here on no change is missed.
            await asyncio.sleep(0)
            logger.info("watching %s for changes", listed)
            while True:
                try:
                    changes = await batch
                except StopAsyncIteration:
                    return
                self.changed([path for _change, path in changes])
                batch = asyncio.ensure_future(anext(batches))
        except Exception:  # a watcher that fails must not take the service with it
            logger.exception("watching %s failed; code changes no longer reload", listed)

    def changed(self, paths: Sequence[str]) -> None:
        """Reload every function whose code directory holds one of ``paths``."""
        for watched in self.watched:
            files = changed_in(watched.directory, paths)
            if not files:
                continue
            logger.info(
                "%s changed: reloading %s", describe_files(files), ", ".join(watched.functions)
            )
            for name in watched.functions:
                self._pools[name].reload()

    async def stop(self) -> None:
        """Stop watching (the worker thread sees the stop within a step)."""
        self._stop.set()
        if self._task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._task), 5.0)
        except asyncio.TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
