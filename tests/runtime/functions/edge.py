"""Handlers for awkward values and errors (tests/runtime/test_edge_cases.py)."""

import asyncio
import collections
import typing


class Row(typing.NamedTuple):
    a: int
    b: str


Point = collections.namedtuple("Point", "x y")


class Record:
    def _asdict(self) -> dict[str, int]:
        return {"a": 1}


def values(event, context):
    return {
        "data": b"abc",
        b"key": 1,
        "rows": [Row(1, "x")],
        "point": Point(1, 2),
        "record": Record(),
        "plain": (1, 2),
    }


def surrogate_error(event, context):
    raise ValueError("bad name " + b"caf\xe9".decode("utf-8", "surrogateescape"))


#: An exception class whose name is outside latin-1 (it cannot go into an HTTP header as is).
UnicodeNamed = type("\u9519\u8bef", (Exception,), {})


def unicode_class(event, context):
    raise UnicodeNamed("non-latin-1 class name")


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no")


def unprintable(event, context):
    raise Unprintable()


async def cancelled(event, context):
    task = asyncio.ensure_future(asyncio.sleep(10))
    task.cancel()
    await task


def ok(event, context):
    return {"ok": True}


def stream_then_surrogate(event, context):
    yield "partial"
    raise ValueError("bad " + b"\xff".decode("utf-8", "surrogateescape"))


def _block() -> None:
    import time

    time.sleep(5)


async def _blocking_task() -> None:
    _block()  # blocks the loop: only the alarm can stop it


def blocks_after_response(event, context):
    from lambdakit import after_response

    after_response(_blocking_task)
    return {"ok": True}
