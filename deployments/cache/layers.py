"""The three storage layers. Each stores bytes under string keys and never raises on a fault:
a layer that cannot answer reports a miss and says so in `status()`."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Protocol, TypeVar

import cachetools
import diskcache
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisError

logger = logging.getLogger("ray.serve")

T = TypeVar("T")
D = TypeVar("D")

# What a Redis call raises when the server can't answer (LockError is a RedisError too).
REDIS_FAULTS = (RedisError, OSError, asyncio.TimeoutError)


class Layer(Protocol):
    name: str

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]: ...

    async def set_many(self, items: Sequence[tuple[str, bytes]]) -> None: ...

    async def delete(self, keys: Sequence[str]) -> None: ...

    async def clear(self) -> None: ...

    def status(self) -> str: ...


class MemoryLayer:
    """L1: in-process LRU with a TTL, bounded in entries and in bytes.

    cachetools bounds one size measure; the byte bound is its `maxsize` (getsizeof=len) and the
    entry bound is enforced on insert.
    """

    name = "l1"

    def __init__(self, max_entries: int, max_bytes: int, ttl_s: float) -> None:
        self.max_entries = max_entries
        self._cache: cachetools.TTLCache[str, bytes] = cachetools.TTLCache(
            maxsize=max(max_bytes, 1), ttl=ttl_s, getsizeof=len
        )

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        return [self._cache.get(key) for key in keys]

    async def set_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        for key, value in items:
            if self.max_entries == 0 or len(value) > self._cache.maxsize:
                continue
            self._cache.pop(key, None)
            while len(self._cache) >= self.max_entries:
                self._cache.popitem()
            self._cache[key] = value

    async def delete(self, keys: Sequence[str]) -> None:
        for key in keys:
            self._cache.pop(key, None)

    async def clear(self) -> None:
        self._cache.clear()

    def __len__(self) -> int:
        return len(self._cache)

    def status(self) -> str:
        return "ok"


class RedisLayer:
    """L2: Redis, shared by every replica. A fault turns into misses, logged once per outage;
    while Redis is down it is retried at most every `retry_after_s` so requests don't each pay
    a connection timeout.

    Other Redis users (single-flight locks, popularity counts) go through `execute`, so they share
    the breaker and the one warning per outage.
    """

    name = "l2"

    def __init__(
        self,
        url: str,
        *,
        ttl_s: float,
        key_prefix: str,
        socket_timeout_s: float,
        max_connections: int,
        retry_after_s: float = 2.0,
    ) -> None:
        self.ttl_ms = int(ttl_s * 1000)
        self.key_prefix = key_prefix
        self.retry_after_s = retry_after_s
        self.client = aioredis.Redis.from_url(
            url,
            socket_timeout=socket_timeout_s,
            socket_connect_timeout=socket_timeout_s,
            health_check_interval=30,
            max_connections=max_connections,
            retry=Retry(ExponentialBackoff(cap=0.1, base=0.01), retries=1),
            retry_on_timeout=True,
        )
        self._down_since: float | None = None
        self._next_try = 0.0
        # Hears each change of Redis's state (True: answering), the first answer included:
        # the replica's redis-up gauge and outage counter (deployments.metrics.CacheMetrics).
        self.on_state: Callable[[bool], None] | None = None
        self._told: bool | None = None

    def _key(self, key: str) -> str:
        return self.key_prefix + key

    @property
    def available(self) -> bool:
        return self._down_since is None or time.monotonic() >= self._next_try

    def _failed(self, exc: Exception) -> None:
        now = time.monotonic()
        if self._down_since is None:
            self._down_since = now
            logger.warning("Redis cache unavailable, serving from L1/L3 until it returns: %s", exc)
        self._next_try = now + self.retry_after_s
        self._tell(False)

    def _succeeded(self) -> None:
        if self._down_since is not None:
            logger.info("Redis cache is back after %.1f s", time.monotonic() - self._down_since)
            self._down_since = None
        self._tell(True)

    def _tell(self, up: bool) -> None:
        if up is self._told or self.on_state is None:
            return
        self._told = up
        try:
            self.on_state(up)
        except Exception:  # a metric's failure is no reason to fail a cache read
            logger.exception("recording Redis's state failed")

    async def execute(self, op: Callable[[aioredis.Redis], Awaitable[T]], default: D) -> T | D:
        """Run `op(client)` through the breaker: `default` while Redis is down or on a fault."""
        if not self.available:
            return default
        try:
            result = await op(self.client)
        except REDIS_FAULTS as exc:
            self._failed(exc)
            return default
        self._succeeded()
        return result

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        if not keys:
            return []
        values = await self.execute(lambda client: client.mget([self._key(k) for k in keys]), None)
        return [None] * len(keys) if values is None else list(values)

    async def pttl_many(self, keys: Sequence[str]) -> list[int | None]:
        """Milliseconds each entry has left (-2: absent, -1: no expiry); None while down."""
        if not keys:
            return []

        async def op(client: aioredis.Redis) -> list[int]:
            async with client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.pttl(self._key(key))
                return await pipe.execute()

        result = await self.execute(op, None)
        return [None] * len(keys) if result is None else [int(ms) for ms in result]

    async def set_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        if not items:
            return

        async def op(client: aioredis.Redis) -> None:
            async with client.pipeline(transaction=False) as pipe:
                for key, value in items:
                    pipe.set(self._key(key), value, px=self.ttl_ms)
                await pipe.execute()

        await self.execute(op, None)

    async def delete(self, keys: Sequence[str]) -> None:
        if keys:
            await self.execute(lambda client: client.delete(*[self._key(k) for k in keys]), None)

    async def clear(self) -> None:
        async def op(client: aioredis.Redis) -> None:
            async for batch in self._scan_batches():
                await client.delete(*batch)

        await self.execute(op, None)

    async def _scan_batches(self):  # type: ignore[no-untyped-def]
        batch: list[bytes] = []
        async for key in self.client.scan_iter(match=self.key_prefix + "*", count=500):
            batch.append(key)
            if len(batch) >= 500:
                yield batch
                batch = []
        if batch:
            yield batch

    async def ping(self) -> bool:
        """Ask Redis now, even while the breaker is open (a health check's question)."""
        try:
            await self.client.ping()
        except REDIS_FAULTS as exc:
            self._failed(exc)
            return False
        self._succeeded()
        return True

    def status(self) -> str:
        return "ok" if self._down_since is None else "degraded"

    async def close(self) -> None:
        await self.client.aclose()


class DiskLayer:
    """L3: diskcache (SQLite + files), size-bounded, survives restarts of the whole app.

    diskcache is synchronous; calls run in a worker thread to keep the event loop free.
    """

    name = "l3"

    def __init__(self, directory: Path, *, size_limit: int, ttl_s: float) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.ttl_s = ttl_s
        self._cache = diskcache.Cache(str(directory), size_limit=size_limit)
        self._failing = False

    def _get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        return [self._cache.get(key) for key in keys]

    def _set_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        for key, value in items:
            self._cache.set(key, value, expire=self.ttl_s)

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        try:
            values = await asyncio.to_thread(self._get_many, keys)
        except Exception as exc:  # sqlite errors, a full or vanished disk
            self._report(exc)
            return [None] * len(keys)
        self._failing = False
        return [v if isinstance(v, bytes) else None for v in values]

    async def set_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        try:
            await asyncio.to_thread(self._set_many, items)
        except Exception as exc:
            self._report(exc)

    async def delete(self, keys: Sequence[str]) -> None:
        try:
            await asyncio.to_thread(lambda: [self._cache.delete(k) for k in keys])
        except Exception as exc:
            self._report(exc)

    async def clear(self) -> None:
        try:
            await asyncio.to_thread(self._cache.clear)
        except Exception as exc:
            self._report(exc)

    def close(self) -> None:
        self._cache.close()

    def _report(self, exc: Exception) -> None:
        if not self._failing:
            logger.warning("disk cache failing, continuing without it: %s", exc)
        self._failing = True

    def status(self) -> str:
        return "degraded" if self._failing else "ok"
