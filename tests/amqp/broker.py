"""The RabbitMQ broker the AMQP tests run against.

``require_broker()`` gives the machine's broker (``make broker`` starts Debian's
``rabbitmq-server`` where it is installed but stopped); without one a test is skipped, or fails
under ``CI=true``.

:class:`PrivateBroker` is a node of the test's own, for tests that stop and restart the broker
without touching the one every other test shares: its own node name (``lk-test-<hex>@localhost``),
its own free loopback ports (AMQP, Erlang distribution, and an epmd of its own, so it never
registers with the machine's epmd), its own cookie, environment file, data and logs in a
temporary directory (under /dev/shm: the node fsyncs a lot), no plugins and no config file.  It
runs ``/usr/lib/rabbitmq/bin/rabbitmq-server`` directly, as whoever runs the tests, root
included: Debian's ``/usr/sbin/rabbitmq-server`` would, as root, ``su`` to the ``rabbitmq`` user
(whose ``HOME`` holds the machine's cookie and who cannot write a root-owned temporary
directory), and without ``RABBITMQ_CONF_ENV_FILE`` every node reads
``/etc/rabbitmq/rabbitmq-env.conf`` (here: ``NODENAME=rabbit@localhost``).
:meth:`PrivateBroker.environment` is also what ``/usr/lib/rabbitmq/bin/rabbitmqctl -n NODE``
needs to reach the node.

Every process of the node (the shell wrapper, ``beam.smp``, ``erl_child_setup`` and the port
programs it starts in sessions of their own, its epmd) carries a marker in its environment, so
:meth:`PrivateBroker.stop` finds them all, wherever they were reparented: SIGTERM to the wrapper
(which stops the VM gracefully, as ``rabbitmqctl stop`` does), a grace period, then SIGTERM and
SIGKILL for whatever is left, and a wait until nothing of the node remains.

Measured here (2 cores, RabbitMQ 3.10.8, Erlang 25.2, 15 runs): ``start()`` takes 4.5 to 7 s
(median 5.7 s) until an AMQP connection opens, about 2 s of it RabbitMQ looking for boot steps in
every module; ``restart()`` (a graceful stop of about 1.1 s, then a start on the same ports and
data, so durable queues and persistent messages survive) 5.6 to 8.3 s (median 6.5 s).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit

import pika
import pytest

BROKER_URL = os.environ.get("LAMBDAKIT_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
_MARKER = "LAMBDAKIT_PRIVATE_BROKER"
_INSTALL = "apt-get install rabbitmq-server (Debian's package)"


def _reachable(host: str, port: int, timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout):
            return True
    except OSError:
        return False


def _missing(message: str) -> None:
    """Fail under ``CI=true`` (the AMQP tests must run there); skip elsewhere."""
    if os.environ.get("CI") == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def require_broker() -> str:
    """The machine's broker URL; skips the test (fails it under ``CI=true``) without one."""
    parts = urlsplit(BROKER_URL)
    host, port = parts.hostname or "127.0.0.1", parts.port or 5672
    if not _reachable(host, port):
        _missing(f"no RabbitMQ broker at {host}:{port}: run `make broker` (or {_INSTALL})")
    return BROKER_URL


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _scratch() -> str | None:
    """/dev/shm when there is one: the node fsyncs a lot, and a restart is not a reboot."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK | os.X_OK) else None


def _tail(path: Path, chars: int) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


class PrivateBroker:
    """A RabbitMQ node of this test's own, on free loopback ports; a context manager."""

    def __init__(self) -> None:
        if not SERVER.exists():
            _missing(f"{SERVER} is missing: {_INSTALL}")
        self.node = f"lk-test-{secrets.token_hex(4)}@localhost"
        self.port = _free_port()
        self.dist_port = _free_port()
        self.epmd_port = _free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="lambdakit-rabbit-", dir=_scratch()))
        self._process: subprocess.Popen[bytes] | None = None
        (self.directory / "enabled_plugins").write_text("")  # no plugins
        (self.directory / "rabbitmq-env.conf").write_text("")  # not /etc/rabbitmq's

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    @property
    def log_file(self) -> Path:
        return self.directory / "log" / f"{self.node}.log"

    def environment(self) -> dict[str, str]:
        """The node's environment; also what ``rabbitmqctl -n NODE`` needs to reach it."""
        base = str(self.directory)
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LC_ALL": "C.UTF-8",
            "HOME": base,  # its own Erlang cookie: $HOME/.erlang.cookie
            _MARKER: self.node,
            "RABBITMQ_CONF_ENV_FILE": f"{base}/rabbitmq-env.conf",
            # No rabbitmq.conf (its schema costs about 0.5 s a start): the listener is the
            # one of RABBITMQ_NODE_IP_ADDRESS and RABBITMQ_NODE_PORT.
            "RABBITMQ_CONFIG_FILE": f"{base}/rabbitmq",
            "RABBITMQ_ADVANCED_CONFIG_FILE": f"{base}/advanced.config",
            "RABBITMQ_ENABLED_PLUGINS_FILE": f"{base}/enabled_plugins",
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "ERL_EPMD_PORT": str(self.epmd_port),
            "RABBITMQ_MNESIA_BASE": f"{base}/mnesia",
            "RABBITMQ_LOG_BASE": f"{base}/log",
            "RABBITMQ_PID_FILE": f"{base}/pid",
        }

    def start(self, timeout: float = 60.0) -> None:
        """Start the node; return once an AMQP connection opens (``RuntimeError`` if not)."""
        if self._process is not None:
            raise RuntimeError(f"{self.node} is already started")
        if _reachable("127.0.0.1", self.port, 0.5):
            raise RuntimeError(f"127.0.0.1:{self.port} is taken: {self.node} cannot listen there")
        with (self.directory / "out").open("ab") as out:
            self._process = subprocess.Popen(
                [str(SERVER)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.directory,
                env=self.environment(),
                start_new_session=True,
            )
        try:
            why = self._wait_ready(self._process, timeout)
        except BaseException:
            self.stop()
            raise
        if why is None:
            return
        self.stop()
        raise RuntimeError(
            f"the private RabbitMQ node {self.node} did not start: {why}\n"
            f"--- {self.directory / 'out'}:\n{_tail(self.directory / 'out', 1500)}\n"
            f"--- {self.log_file}:\n{_tail(self.log_file, 3000)}"
        )

    def _wait_ready(self, process: subprocess.Popen[bytes], timeout: float) -> str | None:
        """None once the node answers AMQP; else why not."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                return f"it exited with status {process.returncode}"
            if _reachable("127.0.0.1", self.port, 0.5) and self._answers():
                return None
            time.sleep(0.1)
        return f"no AMQP connection within {timeout} s"

    def _answers(self) -> bool:
        """An AMQP connection opens, and it is this node's (not whoever else took the port)."""
        try:
            connection = pika.BlockingConnection(pika.URLParameters(self.url))
        except (pika.exceptions.AMQPError, OSError):
            return False
        # The cluster name is the node's name with the host's name after the @.
        name = str(connection._impl.server_properties.get("cluster_name", ""))
        connection.close()
        if name.partition("@")[0] != self.node.partition("@")[0]:
            raise RuntimeError(f"127.0.0.1:{self.port} is answered by {name}, not {self.node}")
        return True

    def processes(self) -> list[int]:
        """Every live process of this node (zombies aside), wherever it was reparented."""
        marker = f"\0{_MARKER}={self.node}\0".encode()
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if marker not in b"\0" + (entry / "environ").read_bytes():
                    continue
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError):
                continue  # gone, or not ours to read
            if state not in {"Z", "X"}:
                found.append(int(entry.name))
        return found

    def _signal(self, pids: list[int], sig: signal.Signals) -> None:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)

    def _wait_gone(self, seconds: float, only_vm: bool = False) -> list[int]:
        deadline = time.monotonic() + seconds
        while True:
            self._reap()
            left = self.processes()
            if only_vm:
                left = [pid for pid in left if _command(pid) in {"beam.smp", "rabbitmq-server"}]
            if not left or time.monotonic() >= deadline:
                return left
            time.sleep(0.05)

    def _reap(self) -> None:
        if self._process is not None:
            self._process.poll()

    def stop(self, grace: float = 20.0) -> None:
        """Stop the node gracefully (SIGTERM), SIGKILL what is left after ``grace``; reap."""
        process = self._process
        if process is not None and process.poll() is None:
            self._signal([process.pid], signal.SIGTERM)  # the wrapper stops the VM gracefully
        else:
            vm = [pid for pid in self.processes() if _command(pid) == "beam.smp"]
            self._signal(vm, signal.SIGTERM)  # the VM stops gracefully on SIGTERM too
        self._wait_gone(grace, only_vm=True)
        self._signal(self.processes(), signal.SIGTERM)  # its epmd, any straggler
        left = self._wait_gone(2.0)
        self._signal(left, signal.SIGKILL)
        left = self._wait_gone(10.0)
        if process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(10.0)
        self._process = None
        if left:
            raise RuntimeError(f"processes of {self.node} outlived SIGKILL: {left}")

    def restart(self, timeout: float = 60.0) -> None:
        """Stop gracefully and start again on the same ports and data directory."""
        self.stop()
        self.start(timeout)

    def __enter__(self) -> PrivateBroker:
        try:
            self.start()
        except BaseException:
            shutil.rmtree(self.directory, ignore_errors=True)
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""
