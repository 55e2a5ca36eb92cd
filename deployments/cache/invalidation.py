"""Deletes that reach every replica and node: a Redis pub/sub channel per cache.

L2 is one store, but L1 is each CacheLookup replica's memory and L3 each node's disk. A DELETE
handled by one replica removes the entry from its own layers and from Redis, then publishes the
keys (or "all") on `<l2_key_prefix>invalidate`; every other TieredCache of the app (CacheLookup
replicas, and the Ingress replicas that read L2/L3 themselves) listens and drops them from its L1
and L3. Delivery is as fast as Redis forwards a message (milliseconds). While Redis is down no
message travels: other replicas' L1 and L3 may serve a deleted entry until their TTL, as the
README says, and the listener reconnects when Redis returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence

from deployments.cache.layers import REDIS_FAULTS, RedisLayer

logger = logging.getLogger("ray.serve")

Handler = Callable[[list[str] | None], Awaitable[None]]  # keys, or None for everything


class Invalidation:
    def __init__(self, l2: RedisLayer, reconnect_s: float = 1.0) -> None:
        self.l2 = l2
        self.channel = l2.key_prefix + "invalidate"
        self.origin = uuid.uuid4().hex  # a cache ignores its own messages
        self.reconnect_s = reconnect_s
        self._listener: asyncio.Task[None] | None = None
        self.subscribed = asyncio.Event()

    async def publish(self, keys: Sequence[str] | None) -> int:
        """Tell every other cache to drop `keys` (None: everything); how many listeners heard."""
        message = json.dumps({"origin": self.origin, "keys": None if keys is None else list(keys)})
        heard = await self.l2.execute(lambda client: client.publish(self.channel, message), 0)
        return int(heard or 0)

    def start(self, handler: Handler) -> None:
        """Listen in the background (idempotent); needs a running event loop."""
        if self._listener is None or self._listener.done():
            self._listener = asyncio.get_running_loop().create_task(self._listen(handler))

    async def _listen(self, handler: Handler) -> None:
        while True:
            pubsub = self.l2.client.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                self.subscribed.set()
                async for message in pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    await self._handle(message["data"], handler)
            except asyncio.CancelledError:
                raise
            except REDIS_FAULTS as exc:
                logger.info("cache invalidation channel lost (%r); reconnecting", exc)
            except Exception as exc:  # the listener must outlive any bad message or fault
                logger.warning("cache invalidation listener failed: %r", exc)
            finally:
                self.subscribed.clear()
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            await asyncio.sleep(self.reconnect_s)

    async def _handle(self, data: bytes | str, handler: Handler) -> None:
        try:
            message = json.loads(data)
        except ValueError:
            logger.warning("ignoring a malformed cache invalidation message")
            return
        if message.get("origin") == self.origin:
            return
        keys = message.get("keys")
        await handler(None if keys is None else [str(k) for k in keys])

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listener
