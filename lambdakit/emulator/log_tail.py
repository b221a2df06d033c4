"""The last 4 KB of an invocation's log, for a caller that asked for it (``LogType: Tail``).

https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html#API_Invoke_RequestSyntax

The tail must include END and REPORT, which are written when the invoke phase ends, after the
runtime answered: so a result whose caller asked for the tail is held back until then, and
released with the base64 of the log's last 4 KB.  A caller that did not ask gets its result at
once and nothing is kept.
"""

from __future__ import annotations

import base64
import dataclasses

from lambdakit.emulator.invocation import Invocation, InvocationResult
from lambdakit.wire import limits

#: Lines kept (each at least one byte plus its newline: 4 KB is within).
_LINES = limits.LOG_TAIL_BYTES // 2


class LogTail:
    """The current invocation's log lines and its held result."""

    __slots__ = ("_held", "_lines")

    def __init__(self) -> None:
        self._lines: list[str] | None = None
        self._held: InvocationResult | None = None

    def begin(self, wanted: bool) -> None:
        """A new invoke phase; keep its lines only if its caller wants the tail."""
        self._lines = [] if wanted else None
        self._held = None

    def add(self, line: str) -> None:
        lines = self._lines
        if lines is not None:
            lines.append(line)
            if len(lines) > _LINES:
                del lines[: len(lines) - _LINES]

    def settle(self, invocation: Invocation, result: InvocationResult) -> None:
        """The outcome is known: deliver it now, or hold it for the tail."""
        if self._lines is None:
            invocation.resolve(result)
        else:
            self._held = result

    def settled(self, invocation: Invocation) -> bool:
        return invocation.done or self._held is not None

    def release(self, invocation: Invocation) -> None:
        """END and REPORT are written: deliver a held result with the tail."""
        held, self._held = self._held, None
        lines, self._lines = self._lines, None
        if held is None or lines is None or invocation.done:
            return
        log = ("\n".join(lines) + "\n").encode("utf-8", "replace")[-limits.LOG_TAIL_BYTES :]
        invocation.resolve(dataclasses.replace(held, log_result=base64.b64encode(log).decode()))
