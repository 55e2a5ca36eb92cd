"""Streaming down the graph: items queued by one side, sent on by the other until a task ends.

A model replica's engine thread queues pieces of text while its row decodes; CacheLookup queues
the pieces of a post's parts while the writer runs. Both send on what is queued, in order, until
the work is done, and then whatever the work queued before it ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, TypeVar

from deployments.settings import GenerationSettings

T = TypeVar("T")


def drain(queue: asyncio.Queue[T]) -> list[T]:
    """Everything queued now, without waiting."""
    items = []
    while not queue.empty():
        items.append(queue.get_nowait())
    return items


class StreamPace:
    """How often each stream of one replica may send: every `interval_s` while the replica
    serves at most `full_rate_streams` streams, less often in proportion beyond that, so that a
    replica sends about `full_rate_streams / interval_s` items a second at most, whatever its
    load. Each item costs CPU in Ray's streaming on both sides of every hop, which a small
    machine takes from decoding (benchmarks/results/2026-12-03-streaming/: a fixed 100 ms made
    0.89x the posts/s of unstreamed posts at 32 clients)."""

    def __init__(self, interval_s: float, full_rate_streams: int) -> None:
        self.base_s = interval_s
        self.full_rate_streams = max(1, full_rate_streams)
        self.streams = 0

    @contextlib.contextmanager
    def stream(self) -> Iterator[None]:
        """Counts one stream while it runs."""
        self.streams += 1
        try:
            yield
        finally:
            self.streams -= 1

    def interval_s(self) -> float:
        return self.base_s * max(1.0, self.streams / self.full_rate_streams)


def stream_pace(generation: GenerationSettings) -> StreamPace:
    return StreamPace(generation.stream_interval_ms / 1000, generation.stream_full_rate_streams)


async def queued_until(
    queue: asyncio.Queue[T],
    finished: asyncio.Future[Any],
    interval_s: float | Callable[[], float] = 0.0,
) -> AsyncIterator[list[T]]:
    """What is queued, in order and in groups, until `finished` is done, then the rest. A group
    is sent at most every `interval_s` (what comes sooner waits to go with it; a callable is
    asked each time); the first goes at once. The caller awaits `finished` for the work's
    result."""
    interval = interval_s if callable(interval_s) else lambda: interval_s
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
            delay = interval() - (time.perf_counter() - sent_at)
            if delay > 0:
                await asyncio.sleep(delay)
        group = [getter.result(), *drain(queue)]
        sent_at = time.perf_counter()
        yield group
    rest = drain(queue)
    if rest:
        yield rest
