"""Streaming down the graph: items queued by one side, sent on by the other until a task ends.

A model replica's engine thread queues pieces of text while its row decodes; CacheLookup queues
the pieces of a post's parts while the writer runs. Both send on what is queued, in order, until
the work is done, and then whatever the work queued before it ended.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any, TypeVar

T = TypeVar("T")


def drain(queue: asyncio.Queue[T]) -> list[T]:
    """Everything queued now, without waiting."""
    items = []
    while not queue.empty():
        items.append(queue.get_nowait())
    return items


async def queued_until(
    queue: asyncio.Queue[T], finished: asyncio.Future[Any], interval_s: float = 0.0
) -> AsyncIterator[list[T]]:
    """What is queued, in order and in groups, until `finished` is done, then the rest. A group
    is sent at most every `interval_s` (what comes sooner waits to go with it); the first goes
    at once. The caller awaits `finished` for the work's result."""
    sent_at: float | None = None
    while True:
        getter = asyncio.ensure_future(queue.get())
        try:
            await asyncio.wait({getter, finished}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not getter.done():
                getter.cancel()
            # Settled either way: an item it took just before the cancel is not lost.
            await asyncio.gather(getter, return_exceptions=True)
        if getter.cancelled():
            break
        if sent_at is not None:
            delay = interval_s - (time.perf_counter() - sent_at)
            if delay > 0:
                await asyncio.sleep(delay)
        group = [getter.result(), *drain(queue)]
        sent_at = time.perf_counter()
        yield group
    rest = drain(queue)
    if rest:
        yield rest
