"""Single-flight: one generation per cache key at a time, within a process and across replicas.

Within a process, callers of one key share one asyncio task; its outcome, value or exception, is
every caller's. A caller that is cancelled leaves the others waiting; when the last one goes, the
generation is cancelled too.

Across processes the task either leads or follows. The leader holds a Redis lock (redis-py's
`Lock`: SET NX PX to take it, a compare-and-delete script to give it back), renewed while it works
so a slow generation keeps it and a dead leader's lapses after `lock_ttl_s`. A follower polls the
cache for the leader's result and takes the lock itself when it frees up with no result there (the
leader failed or died), or generates anyway once `follower_wait_s` has passed.

Without Redis, or while it is down, only the in-process part applies.

`on_follow` hears each caller that did not lead (for the metrics): `same_process` (it joined a
task here), `other_process` (another process's leader stored the result), `gave_up` (it waited
`follower_wait_s` and generated itself).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.lock import Lock
from redis.exceptions import LockNotOwnedError

from deployments.cache.layers import RedisLayer

logger = logging.getLogger("ray.serve")

T = TypeVar("T")


@dataclass
class _Flight:
    task: asyncio.Task
    waiters: int = 0


class SingleFlight(Generic[T]):
    """Runs `lead` once per key among concurrent callers; see the module docstring."""

    def __init__(
        self,
        redis: RedisLayer | None,
        *,
        lock_ttl_s: float = 60,
        follower_wait_s: float = 45,
        poll_interval_s: float = 0.05,
        max_poll_interval_s: float = 0.5,
    ) -> None:
        self.redis = redis
        self.lock_ttl_s = lock_ttl_s
        self.follower_wait_s = follower_wait_s
        self.poll_interval_s = poll_interval_s
        self.max_poll_interval_s = max_poll_interval_s
        self._flights: dict[str, _Flight] = {}
        self.on_follow: Callable[[str], None] | None = None

    def _followed(self, outcome: str) -> None:
        if self.on_follow is not None:
            self.on_follow(outcome)

    def lock_name(self, key: str) -> str:
        prefix = self.redis.key_prefix if self.redis else ""
        return f"{prefix}lock:{key}"

    def in_flight(self, key: str) -> bool:
        flight = self._flights.get(key)
        return flight is not None and not flight.task.done()

    async def do(
        self,
        key: str,
        lead: Callable[[], Awaitable[T]],
        check: Callable[[], Awaitable[T | None]],
    ) -> T:
        """`lead()` produces and stores the result; `check()` looks for one stored by another
        process's leader (None: not there yet)."""
        flight = self._flights.get(key)
        if flight is None or flight.task.cancelled():
            # A fresh context: under Ray Serve, a task started inside one request's context is that
            # request's child, and Serve cancels it when that one caller goes away, even though
            # other callers still wait on it. Cancellation here follows the waiter count instead.
            task = asyncio.get_running_loop().create_task(
                self._lead_or_follow(key, lead, check), context=contextvars.Context()
            )
            flight = self._flights[key] = _Flight(task)
            task.add_done_callback(lambda done, key=key, flight=flight: self._landed(key, flight))
        else:
            self._followed("same_process")
        flight.waiters += 1
        try:
            return await asyncio.shield(flight.task)
        finally:
            flight.waiters -= 1
            if flight.waiters == 0 and not flight.task.done():
                # Every caller was cancelled: nobody wants the result any more.
                flight.task.cancel()
                self._forget(key, flight)

    async def try_lead(
        self,
        key: str,
        lead: Callable[[], Awaitable[T]],
        still_needed: Callable[[], Awaitable[bool]] | None = None,
    ) -> T | None:
        """Run `lead` only if nobody else is on `key`, here or on another replica; else None.

        `still_needed` is asked once the lock is held (another replica may just have finished).
        """
        if self.in_flight(key):
            return None
        lock = await self._acquire(key)
        if lock is False:
            return None
        try:
            if still_needed is not None and not await still_needed():
                return None
            return await self._run_holding(lock, lead)
        finally:
            await self._release(lock)

    def _landed(self, key: str, flight: _Flight) -> None:
        self._forget(key, flight)
        if not flight.task.cancelled():
            flight.task.exception()  # retrieved: waiters got it; no "never retrieved" noise

    def _forget(self, key: str, flight: _Flight) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]

    async def _lead_or_follow(
        self,
        key: str,
        lead: Callable[[], Awaitable[T]],
        check: Callable[[], Awaitable[T | None]],
    ) -> T:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.follower_wait_s
        delay = self.poll_interval_s
        while True:
            lock = await self._acquire(key)
            if lock is not False:
                try:
                    # A leader may have finished between the caller's miss and taking the lock.
                    if lock is not None and (found := await check()) is not None:
                        self._followed("other_process")
                        return found
                    return await self._run_holding(lock, lead)
                finally:
                    await self._release(lock)
            found = await check()
            if found is not None:
                self._followed("other_process")
                return found
            left = deadline - loop.time()
            if left <= 0:
                self._followed("gave_up")
                logger.info(
                    "waited %.1f s for another replica to generate %s; generating here",
                    self.follower_wait_s,
                    key,
                )
                return await lead()
            await asyncio.sleep(min(delay, left))
            delay = min(delay * 2, self.max_poll_interval_s)

    async def _acquire(self, key: str) -> Lock | bool | None:
        """The lock if taken; False if another process holds it; None without Redis to ask."""
        if self.redis is None:
            return None
        lock = self.redis.client.lock(
            self.lock_name(key), timeout=self.lock_ttl_s, blocking=False, thread_local=False
        )

        async def take(_client: aioredis.Redis) -> bool:
            return bool(await lock.acquire())

        taken = await self.redis.execute(take, None)
        if taken is None:
            return None
        return lock if taken else False

    async def _run_holding(self, lock: Lock | None, lead: Callable[[], Awaitable[T]]) -> T:
        if lock is None:
            return await lead()
        renewer = asyncio.get_running_loop().create_task(self._renew(lock))
        try:
            return await lead()
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer

    async def _renew(self, lock: Lock) -> None:
        """Reset the lock's TTL every third of it while the leader works."""
        assert self.redis is not None

        async def reacquire(_client: aioredis.Redis) -> bool:
            try:
                await lock.reacquire()
            except LockNotOwnedError:
                return False  # it lapsed and another replica took over: both generate
            return True

        while True:
            await asyncio.sleep(self.lock_ttl_s / 3)
            if await self.redis.execute(reacquire, None) is False:
                return

    async def _release(self, lock: Lock | bool | None) -> None:
        if not isinstance(lock, Lock) or self.redis is None:
            return

        async def release(_client: aioredis.Redis) -> None:
            with contextlib.suppress(LockNotOwnedError):
                await lock.release()  # compare-and-delete: never someone else's lock

        await self.redis.execute(release, None)
