"""A handler whose module starts a thread that counts every 10 ms (the freeze test)."""

import threading
import time

count = 0


def _tick() -> None:
    global count
    while True:
        time.sleep(0.01)
        count += 1


threading.Thread(target=_tick, daemon=True).start()


def handler(event, context):
    return {"count": count}
