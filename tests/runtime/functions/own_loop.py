"""A sync handler with its own event loop, set at import (a common pattern), plus async
after_response work: both must use the same loop."""

import asyncio

from lambdakit import after_response

loop = asyncio.new_event_loop()
asyncio.set_event_loop(loop)
queue: asyncio.Queue[int] = asyncio.Queue()


async def _put(n: int) -> None:
    await queue.put(n)


def handler(event, context):
    loop.run_until_complete(queue.put(1))
    after_response(_put, 2)
    return {"size": asyncio.get_event_loop().run_until_complete(_size())}


async def _size() -> int:
    return queue.qsize()
