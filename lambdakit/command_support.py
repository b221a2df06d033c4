"""What every ``lambdakit`` command shares: usage errors as one line and exit status 2."""

from __future__ import annotations

import argparse
import sys

EXIT_USAGE = 2


class UsageError(Exception):
    """Bad flags; the message names the flag."""


class Parser(argparse.ArgumentParser):
    """An argument parser that raises :class:`UsageError` instead of exiting."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def setup_logging(level: str) -> None:
    """lambdakit's diagnostics on stderr at ``level``; the AMQP client library's own messages,
    which repeat ours, only at ``debug``."""
    import logging

    logging.basicConfig(
        level=level.upper(),
        stream=sys.stderr,
        format="lambdakit %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("aiormq").setLevel(logging.DEBUG if level == "debug" else logging.CRITICAL)


def fail(message: str) -> None:
    """One line on stderr: the command line's way of naming a problem."""
    sys.stderr.write(message + "\n")
