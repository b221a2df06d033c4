"""The RabbitMQ broker the AMQP tests run against.

``require_broker()`` gives the machine's broker (``make broker`` starts Debian's
``rabbitmq-server`` where it is installed but stopped); without one a test is skipped, or fails
under ``CI=true``.  :class:`PrivateBroker` is a node of the test's own (its own name, ports and
data directory, no plugins), for tests that stop and restart the broker without touching the
one every other test shares.  Here it starts in about 6 s and restarts (a polite stop, then a
start on the same port and data, so durable queues and persistent messages survive) in about
7 s.  Its processes are a session of their own: stopping it is SIGTERM to that session, a
grace period, SIGKILL, and a wait, so nothing of it is left behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import pytest

BROKER_URL = os.environ.get("LAMBDAKIT_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
_SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")


def _reachable(host: str, port: int, timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout):
            return True
    except OSError:
        return False


def require_broker() -> str:
    """The machine's broker URL; skips the test (fails it under ``CI=true``) without one."""
    from urllib.parse import urlsplit

    parts = urlsplit(BROKER_URL)
    if _reachable(parts.hostname or "127.0.0.1", parts.port or 5672):
        return BROKER_URL
    message = (
        f"no RabbitMQ broker at {parts.hostname}:{parts.port}: run `make broker` "
        "(or `apt-get install rabbitmq-server`)"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrivateBroker:
    """A RabbitMQ node of this test's own, on free loopback ports."""

    def __init__(self) -> None:
        if not _SERVER.exists():
            require_broker()  # the same message: install rabbitmq-server
            pytest.skip(f"{_SERVER} is missing (apt-get install rabbitmq-server)")
        self._dir = Path(tempfile.mkdtemp(prefix="lambdakit-rabbit-"))
        self.port = _free_port()
        self._dist_port = _free_port()
        self._node = f"lktest{os.getpid()}x{self.port}@localhost"
        self._process: subprocess.Popen[bytes] | None = None
        (self._dir / "enabled_plugins").write_text("[].\n")
        (self._dir / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\nloopback_users = none\n"
        )

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def _environment(self) -> dict[str, str]:
        base = str(self._dir)
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": base,  # its own Erlang cookie
            "RABBITMQ_NODENAME": self._node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self._dist_port),
            "RABBITMQ_MNESIA_BASE": f"{base}/mnesia",
            "RABBITMQ_LOG_BASE": f"{base}/log",
            "RABBITMQ_ENABLED_PLUGINS_FILE": f"{base}/enabled_plugins",
            "RABBITMQ_CONFIG_FILE": f"{base}/rabbitmq",
            "RABBITMQ_PID_FILE": f"{base}/pid",
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }

    def start(self, timeout: float = 60.0) -> None:
        """Start the node; return once an AMQP connection opens."""
        import pika

        log = (self._dir / "out").open("ab")
        self._process = subprocess.Popen(
            [str(_SERVER)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self._dir,
            env=self._environment(),
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                break
            if _reachable("127.0.0.1", self.port, 0.5):
                with contextlib.suppress(Exception):
                    pika.BlockingConnection(pika.URLParameters(self.url)).close()
                    return
            time.sleep(0.1)
        tail = (self._dir / "out").read_text(errors="replace")[-2000:]
        self.stop()
        raise RuntimeError(f"the private RabbitMQ node did not start:\n{tail}")

    def stop(self, grace: float = 20.0) -> None:
        """SIGTERM the node's session, wait ``grace``, SIGKILL what is left, reap."""
        process, self._process = self._process, None
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(grace)
        deadline = time.monotonic() + grace
        while self._members(process.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid in self._members(process.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if process.poll() is None:
            process.kill()
        process.wait()

    def _members(self, session: int) -> list[int]:
        """Processes of the node's session, or started from its directory."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                command = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if stat[0] == "Z":
                continue
            if int(stat[3]) == session or str(self._dir).encode() in command:
                found.append(int(entry.name))
        return found

    def restart(self) -> None:
        """Stop politely and start again on the same port and data."""
        self.stop()
        self.start()

    def alive_processes(self) -> list[int]:
        return [] if self._process is None else self._members(self._process.pid)

    def __enter__(self) -> PrivateBroker:
        try:
            self.start()
        except BaseException:
            shutil.rmtree(self._dir, ignore_errors=True)
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)
