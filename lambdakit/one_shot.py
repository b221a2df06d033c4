"""A ``lambdakit serve`` of our own for one invocation: started, waited for, stopped and reaped.

``lambdakit invoke`` without a running service (``--config`` or serve's function flags, as
``sam local invoke`` runs a function once) starts ``python -m lambdakit serve ... --port 0`` as a
child, reads its stdout until the "listening on" line gives the address, invokes through the
Invoke API like any caller, then stops it: SIGTERM (serve lets the invocation's work after the
response finish, writes END and REPORT, stops every environment and reaps it), and SIGKILL if
it has not exited after a grace period; always ``wait``.  The child dies with us
(``PR_SET_PDEATHSIG``) even if we are killed.  Everything the child writes to stdout after the
listening line (the function's log, START / END / REPORT) is copied to our stderr, so that our
stdout carries only the response payload; its stderr is ours.
"""

from __future__ import annotations

import contextlib
import logging
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import BinaryIO

from lambdakit.deathsig import die_with_parent

log = logging.getLogger(__name__)

_LISTENING = re.compile(rb"listening on (http://[0-9A-Za-z.:\[\]-]+)")
#: The request id of a REPORT line (text) or ``platform.report`` record (JSON).
_REPORT = re.compile(rb'REPORT RequestId: ([\w-]+)|"platform\.report".*?"requestId":\s*"([\w-]+)"')
#: Seconds for serve to print its listening line (it listens before any environment starts).
START_TIMEOUT = 30.0
#: Seconds after SIGTERM before SIGKILL: serve's own shutdown budget (10 s) and a margin.
STOP_GRACE = 15.0
#: Seconds between the two SIGTERMs of a stop in a hurry.
HURRY_GRACE = 0.5


class ServeFailed(Exception):
    """The child serve exited before it listened; ``status`` is its exit status."""

    def __init__(self, status: int) -> None:
        super().__init__(f"lambdakit serve exited with status {status} before it listened")
        self.status = status


class OwnedServe:
    """One child ``lambdakit serve`` and the thread copying its stdout to ``log_stream``."""

    def __init__(self, process: subprocess.Popen[bytes], log_stream: BinaryIO) -> None:
        self.process = process
        self.url = ""
        self._log_stream = log_stream
        self._listening = threading.Event()
        self._reported: set[bytes] = set()
        self._report = threading.Condition()
        self._copier = threading.Thread(target=self._copy, name="serve-output", daemon=True)
        self._copier.start()

    def _copy(self) -> None:
        stream = self.process.stdout
        assert stream is not None
        for line in iter(stream.readline, b""):
            if not self._listening.is_set():
                match = _LISTENING.search(line)
                if match:
                    self.url = match.group(1).decode()
                    self._listening.set()
                    continue
            with contextlib.suppress(OSError, ValueError):
                self._log_stream.write(line)
                self._log_stream.flush()
            report = _REPORT.search(line)
            if report:
                with self._report:
                    self._reported.add(report.group(1) or report.group(2))
                    self._report.notify_all()
        self._listening.set()  # the child is gone: nobody waits for a line that cannot come
        with self._report:
            self._report.notify_all()

    def wait_listening(self, timeout: float = START_TIMEOUT) -> str:
        """The child's Invoke API URL; :class:`ServeFailed` if it exited or never listened."""
        self._listening.wait(timeout)
        if not self.url:
            self.stop()
            status = self.process.returncode
            raise ServeFailed(status if status and status > 0 else 1)
        return self.url

    def wait_report(self, request_id: str, timeout: float) -> bool:
        """Wait until the invocation's REPORT is out: its work after the response is done and
        its log complete (stopping sooner would cut the environment off in that phase)."""
        wanted = request_id.encode()
        with self._report:
            return self._report.wait_for(
                lambda: wanted in self._reported or self.process.poll() is not None, timeout
            )

    def stop(self, hurry: bool = False) -> int:
        """Politely (SIGTERM), then firmly (SIGKILL); always reaped. The exit status.

        In a ``hurry`` (Ctrl-C), a second SIGTERM a moment later tells serve to skip its grace
        periods, as a second Ctrl-C does.
        """
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            if hurry:
                try:
                    self.process.wait(HURRY_GRACE)
                except subprocess.TimeoutExpired:
                    self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_GRACE)
            except subprocess.TimeoutExpired:
                log.warning("serve did not stop in %.0f s; killing it", STOP_GRACE)
                self.process.kill()
                self.process.wait()
        self._copier.join(5)
        if self.process.stdout is not None:
            self.process.stdout.close()
        return self.process.returncode


@contextlib.contextmanager
def owned_serve(
    serve_args: Sequence[str], environ: Mapping[str, str], state_dir: bool = True
) -> Iterator[OwnedServe]:
    """``lambdakit serve --port 0 SERVE_ARGS`` as a child until the block ends.

    With ``state_dir``, Event invocations go to a temporary directory removed afterwards.
    """
    temporary = tempfile.mkdtemp(prefix="lambdakit-invoke-") if state_dir else ""
    split = serve_args.index("--") if "--" in serve_args else len(serve_args)
    ours = ["--host", "127.0.0.1", "--port", "0"]
    ours += ["--state-dir", temporary] if temporary else []
    argv = [*serve_args[:split], *ours, *serve_args[split:]]
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "lambdakit", "serve", *argv],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            env=dict(environ),
            # die_with_parent: one prctl call between fork and exec (safe with our threads).
            preexec_fn=die_with_parent,  # noqa: PLW1509
        )
        serve = OwnedServe(process, sys.stderr.buffer)
        try:
            yield serve
        except BaseException:  # Ctrl-C above all: stop now, not after the invocation
            serve.stop(hurry=True)
            raise
        serve.stop()
    finally:
        if temporary:
            shutil.rmtree(temporary, ignore_errors=True)
