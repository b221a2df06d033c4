"""Durable storage of Event invocations: an SQLite database under the state directory.

An event is on disk (committed with ``synchronous=FULL``) before the Invoke API answers 202, so
a service killed at any point still runs every accepted event after a restart.  Rows move
``pending`` -> ``running`` -> deleted (success) or back to ``pending`` with a later ``due_at``
(a retry) or ``failed`` (retries exhausted, or too old).  Events found ``running`` at start-up
were cut off by a crash and become ``pending`` again.  Calls are short and synchronous; they run
on the event loop's thread, which is what makes the order of writes the order of events.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    request_id  TEXT PRIMARY KEY,
    function    TEXT NOT NULL,
    payload     BLOB NOT NULL,
    invoked_arn TEXT NOT NULL,
    trace_id    TEXT NOT NULL,
    accepted_at REAL NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    due_at      REAL NOT NULL,
    state       TEXT NOT NULL,
    condition   TEXT,
    last_error  TEXT,
    updated_at  REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS events_due ON events (state, function, due_at);
"""
DATABASE = "events.sqlite3"


@dataclass(frozen=True, slots=True)
class StoredEvent:
    request_id: str
    function: str
    payload: bytes
    invoked_arn: str
    trace_id: str
    accepted_at: float
    attempts: int
    due_at: float
    state: str
    condition: str | None
    last_error: str | None


_COLUMNS = (
    "request_id, function, payload, invoked_arn, trace_id, accepted_at, attempts, due_at, "
    "state, condition, last_error"
)


class EventStore:
    """The events table of one state directory."""

    def __init__(self, state_dir: Path, read_only: bool = False) -> None:
        path = state_dir / DATABASE
        if read_only:
            self._db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        else:
            state_dir.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(SCHEMA)
        self.path = path

    def close(self) -> None:
        self._db.close()

    def recover(self) -> int:
        """Events cut off while running (a crash) are pending again; return how many."""
        cursor = self._db.execute(
            "UPDATE events SET state='pending', attempts=max(attempts-1, 0), updated_at=? "
            "WHERE state='running'",
            (time.time(),),
        )
        return cursor.rowcount

    def add(
        self, request_id: str, function: str, payload: bytes, invoked_arn: str, trace_id: str
    ) -> None:
        now = time.time()
        self._db.execute(
            "INSERT INTO events (request_id, function, payload, invoked_arn, trace_id, "
            "accepted_at, due_at, state, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?)",
            (request_id, function, payload, invoked_arn, trace_id, now, now, now),
        )

    def due(self, function: str, now: float, limit: int) -> list[StoredEvent]:
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM events WHERE state='pending' AND function=? AND due_at<=? "
            "ORDER BY due_at, accepted_at LIMIT ?",
            (function, now, limit),
        ).fetchall()
        return [StoredEvent(*row) for row in rows]

    def next_due(self, function: str) -> float | None:
        row = self._db.execute(
            "SELECT min(due_at) FROM events WHERE state='pending' AND function=?", (function,)
        ).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def pending_by_function(self) -> dict[str, int]:
        """How many events wait (``pending``: not yet handed to an environment, or waiting for
        their retry), by function; functions with none are absent."""
        rows = self._db.execute(
            "SELECT function, count(*) FROM events WHERE state='pending' GROUP BY function"
        ).fetchall()
        return {str(function): int(count) for function, count in rows}

    def start(self, request_id: str) -> None:
        self._db.execute(
            "UPDATE events SET state='running', attempts=attempts+1, updated_at=? "
            "WHERE request_id=?",
            (time.time(), request_id),
        )

    def unstart(self, request_id: str) -> None:
        """Put back an event that could not be handed to an environment (not an attempt)."""
        self._db.execute(
            "UPDATE events SET state='pending', attempts=max(attempts-1, 0), updated_at=? "
            "WHERE request_id=?",
            (time.time(), request_id),
        )

    def retry(self, request_id: str, due_at: float, error: str) -> None:
        self._db.execute(
            "UPDATE events SET state='pending', due_at=?, last_error=?, updated_at=? "
            "WHERE request_id=?",
            (due_at, error, time.time(), request_id),
        )

    def fail(self, request_id: str, condition: str, error: str) -> None:
        self._db.execute(
            "UPDATE events SET state='failed', condition=?, last_error=?, updated_at=? "
            "WHERE request_id=?",
            (condition, error, time.time(), request_id),
        )

    def succeed(self, request_id: str) -> None:
        self._db.execute("DELETE FROM events WHERE request_id=?", (request_id,))

    def listing(self, states: tuple[str, ...]) -> list[StoredEvent]:
        marks = ", ".join("?" for _ in states)
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM events WHERE state IN ({marks}) ORDER BY accepted_at",
            states,
        ).fetchall()
        return [StoredEvent(*row) for row in rows]
