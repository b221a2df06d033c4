"""Starting an environment's processes: the event loop goes on meanwhile, a start that is
cancelled leaves nothing behind, and nothing more starts once Init is over
(lambdakit/emulator/spawning.py, sandbox_processes.py)."""

from __future__ import annotations

import asyncio
import gc
import os
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar, cast

import pytest

from lambdakit.deathsig import die_with_parent
from lambdakit.emulator import spawning
from lambdakit.emulator.processes import ProcessGroup
from lambdakit.emulator.sandbox_processes import SandboxProcesses

#: How long the child takes between fork and exec in these tests.
SLOW = 1.0

pytestmark = pytest.mark.skipif(
    not spawning._has_pidfd(), reason="no pidfd here: the loop forks, as before"
)

T = TypeVar("T")
Run = Callable[[Coroutine[Any, Any, T]], T]
#: The stdlib's loop and uvloop's (serve's, when it is installed): pidfds work on both.
LOOPS = pytest.mark.parametrize("run", ["asyncio", "uvloop"], indirect=True)


@pytest.fixture
def run(request: pytest.FixtureRequest) -> Run[Any]:
    """``asyncio.run`` or ``uvloop.run``."""
    if request.param == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        return cast(Run[Any], uvloop.run)
    return asyncio.run


def _slow_preexec() -> None:
    """In the child, between fork and exec: what a slow preexec (a busy machine) looks like."""
    die_with_parent()
    time.sleep(SLOW)


def _exists(pid: int) -> bool:
    """Running, or exited and not reaped yet (a zombie)."""
    return os.path.exists(f"/proc/{pid}")


@LOOPS
def test_the_loop_goes_on_while_a_process_starts(tmp_path: Path, run: Run[Any]) -> None:
    async def main() -> tuple[int, int | None]:
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticker = asyncio.create_task(tick())
        lines: list[str] = []
        group = await ProcessGroup.spawn(
            ["/bin/echo", "started"],
            env={},
            cwd=str(tmp_path),
            on_line=lines.append,
            preexec=_slow_preexec,
        )
        during = ticks
        code = await asyncio.wait_for(group.exited(), 10)
        await group.stop(1.0)
        ticker.cancel()
        assert lines == ["started"]
        return during, code

    during, code = run(main())
    assert code == 0
    # The child took SLOW seconds to exec; a loop that forked it itself waited all along (0).
    assert during >= 10


def _cancel_a_start(tmp_path: Path, cancellations: int, run: Run[Any]) -> int:
    """Start ``sleep 60`` slowly, cancel the start ``cancellations`` times while the child is
    between fork and exec; the child's pid."""
    pid_file = tmp_path / "pid"

    def preexec() -> None:
        pid_file.write_text(str(os.getpid()))
        _slow_preexec()

    async def main() -> None:
        task = asyncio.create_task(
            ProcessGroup.spawn(
                ["/bin/sleep", "60"], env={}, cwd=str(tmp_path), on_line=print, preexec=preexec
            )
        )
        for _ in range(cancellations):  # the start waits for the fork to end: cancelled again
            await asyncio.sleep(SLOW / 4)
            task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(main())
    gc.collect()  # a Popen of a live process would warn (an error under -W error)
    return int(pid_file.read_text())


def _assert_gone(pid: int) -> None:
    deadline = time.monotonic() + 10
    while _exists(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _exists(pid), "the process of a cancelled start lives on, or was never reaped"


@LOOPS
def test_a_cancelled_start_leaves_no_process(tmp_path: Path, run: Run[Any]) -> None:
    fds = len(os.listdir("/proc/self/fd"))
    _assert_gone(_cancel_a_start(tmp_path, 1, run))
    assert len(os.listdir("/proc/self/fd")) <= fds  # its output pipe was closed, both ends


@LOOPS
def test_a_start_cancelled_twice_still_leaves_no_process(tmp_path: Path, run: Run[Any]) -> None:
    _assert_gone(_cancel_a_start(tmp_path, 2, run))


def test_nothing_more_starts_once_init_is_over(tmp_path: Path) -> None:
    """Init may fail while a process starts (the loop runs meanwhile): the extensions after it
    and the runtime are not started."""
    extensions = []
    for name in ("a", "b"):
        path = tmp_path / name
        path.write_text("#!/bin/sh\nexec sleep 60\n")
        path.chmod(0o755)
        extensions.append(path)
    launched: list[str] = []

    async def main() -> None:
        processes = SandboxProcesses("f#1", tmp_path, lambda name, code: None)

        async def registered() -> bool:
            return True

        def over() -> bool:
            return bool(processes.extensions)  # Init failed while the first one started

        try:
            await processes.launch(
                extensions,
                {"PATH": os.environ["PATH"]},
                [str(tmp_path / "a")],
                lambda kind, line: None,
                registered,
                over,
            )
            launched.extend(processes.extensions)
            assert processes.runtime is None
        finally:
            for group in processes.groups():
                await group.stop(0)

    asyncio.run(main())
    assert launched == ["a"]


@LOOPS
def test_without_pidfds_the_loop_starts_the_process(
    tmp_path: Path, run: Run[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where there is no pidfd (macOS, Linux before 5.3): the loop's own subprocess_exec."""
    monkeypatch.setattr(spawning, "_pidfd", False)

    async def main() -> tuple[list[str], int]:
        lines: list[str] = []
        group = await ProcessGroup.spawn(
            ["/bin/echo", "hello"], env={}, cwd=str(tmp_path), on_line=lines.append
        )
        assert not isinstance(group._child, spawning._WatchedChild)
        code = await asyncio.wait_for(group.exited(), 10)
        await group.stop(1.0)
        return lines, code

    assert run(main()) == (["hello"], 0)
