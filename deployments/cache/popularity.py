"""How often each cache key is read, counted in Redis so every replica's reads add up.

Counts go into one sorted set per time window (ZINCRBY), which expires two windows later; the
ranking is the current window plus the previous one weighted by the part of it still inside a
sliding window (ZUNIONSTORE WEIGHTS), so popularity fades instead of lasting forever. Reads are
buffered in-process and sent at most once per `flush_interval_s` in a background pipeline: a read
never waits on it, and a fault is a lost count, never a failed request.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterable

import redis.asyncio as aioredis

from deployments.cache.layers import RedisLayer


class Popularity:
    def __init__(
        self,
        redis: RedisLayer,
        *,
        window_s: float = 3600,
        max_members: int = 10_000,
        flush_interval_s: float = 1.0,
        flush_keys: int = 1000,
    ) -> None:
        self.redis = redis
        self.window_s = window_s
        self.max_members = max_members
        self.flush_interval_s = flush_interval_s
        self.flush_keys = flush_keys
        self._pending: Counter[str] = Counter()
        self._last_flush = float("-inf")
        self._flushing: asyncio.Task | None = None

    def _bucket(self, index: int) -> str:
        return f"{self.redis.key_prefix}popular:{index}"

    def record(self, keys: Iterable[str]) -> None:
        """Count one read of each key; sent to Redis in the background."""
        self._pending.update(keys)
        due = (
            len(self._pending) >= self.flush_keys
            or time.monotonic() - self._last_flush >= self.flush_interval_s
        )
        if self._pending and due and self._flushing is None:
            self._flushing = asyncio.get_running_loop().create_task(self.flush())
            self._flushing.add_done_callback(self._flushed)

    def _flushed(self, task: asyncio.Task) -> None:
        self._flushing = None
        if not task.cancelled():
            task.exception()  # execute() already turns Redis faults into a lost count

    async def close(self) -> None:
        """Wait for a background send, then send what is left."""
        if self._flushing is not None:
            await asyncio.wait([self._flushing])
        await self.flush()

    async def flush(self) -> None:
        pending, self._pending = self._pending, Counter()
        self._last_flush = time.monotonic()
        if not pending:
            return
        bucket = self._bucket(int(time.time() // self.window_s))

        async def send(client: aioredis.Redis) -> None:
            async with client.pipeline(transaction=False) as pipe:
                for key, count in pending.items():
                    pipe.zincrby(bucket, count, key)
                pipe.expire(bucket, int(2 * self.window_s) + 60)
                # Keep the set bounded: the least-read members go first.
                pipe.zremrangebyrank(bucket, 0, -self.max_members - 1)
                await pipe.execute()

        await self.redis.execute(send, None)

    async def top(self, n: int) -> list[tuple[str, float]]:
        """The `n` most-read keys with their (window-weighted) counts, most read first."""
        await self.flush()
        if n <= 0:
            return []
        now = time.time()
        index = int(now // self.window_s)
        still_inside = 1.0 - (now % self.window_s) / self.window_s
        union = f"{self.redis.key_prefix}popular:union"

        async def rank(client: aioredis.Redis) -> list[tuple[bytes, float]]:
            async with client.pipeline(transaction=True) as pipe:
                pipe.zunionstore(
                    union, {self._bucket(index): 1.0, self._bucket(index - 1): still_inside}
                )
                pipe.zrange(union, 0, n - 1, desc=True, withscores=True)
                pipe.delete(union)
                _, ranked, _ = await pipe.execute()
            return ranked

        ranked = await self.redis.execute(rank, [])
        return [(member.decode(), score) for member, score in ranked if score > 0]
