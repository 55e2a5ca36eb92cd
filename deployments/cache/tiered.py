"""TieredCache: read-through L1 -> L2 -> L3 with promotion, write-through to every layer,
single-flight generation on a miss, and read counts for refreshing popular entries ahead of
expiry."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

from deployments.cache.codec import CorruptEntry, decode, encode
from deployments.cache.invalidation import Invalidation
from deployments.cache.layers import DiskLayer, Layer, MemoryLayer, RedisLayer
from deployments.cache.popularity import Popularity
from deployments.cache.singleflight import SingleFlight
from deployments.settings import CacheSettings

Generate = Callable[[], Awaitable[dict[str, Any]]]

logger = logging.getLogger("ray.serve")


@dataclass(frozen=True)
class CacheHit:
    value: dict[str, Any]
    layer: str


class TieredCache:
    """Plain class behind the CacheLookup deployment; tests drive it without Ray."""

    def __init__(
        self,
        layers: Sequence[Layer],
        compression_threshold: int = 1024,
        *,
        lock_ttl_s: float = 60,
        follower_wait_s: float = 45,
        poll_interval_s: float = 0.05,
        refresh_ahead_s: float = 3600,
        popular_top_n: int = 100,
        popularity_window_s: float = 3600,
    ) -> None:
        self.layers = list(layers)
        self.compression_threshold = compression_threshold
        self.refresh_ahead_s = refresh_ahead_s
        self.popular_top_n = popular_top_n
        l2 = self.layer("l2")
        self.l2 = l2 if isinstance(l2, RedisLayer) else None
        self.single_flight: SingleFlight[tuple[dict[str, Any], str | None]] = SingleFlight(
            self.l2,
            lock_ttl_s=lock_ttl_s,
            follower_wait_s=follower_wait_s,
            poll_interval_s=poll_interval_s,
        )
        self.popularity = (
            Popularity(self.l2, window_s=popularity_window_s) if self.l2 is not None else None
        )
        self.invalidation = Invalidation(self.l2) if self.l2 is not None else None
        # Hears each refresh-ahead attempt (for the metrics): rewritten, skipped or failed.
        self.on_refresh: Callable[[str], None] | None = None

    @classmethod
    def from_settings(cls, settings: CacheSettings, *, memory: bool = True) -> TieredCache:
        """Every configured layer; `memory=False` leaves out L1 (the layers other processes
        share: Redis and, on one machine, the disk)."""
        layers: list[Layer] = []
        if memory:
            layers.append(
                MemoryLayer(settings.l1_max_entries, settings.l1_max_bytes, settings.l1_ttl_s)
            )
        if settings.redis_url:
            layers.append(
                RedisLayer(
                    settings.redis_url,
                    ttl_s=settings.l2_ttl_s,
                    key_prefix=settings.l2_key_prefix,
                    socket_timeout_s=settings.l2_socket_timeout_s,
                    max_connections=settings.l2_max_connections,
                )
            )
        if settings.l3_enabled:
            layers.append(
                DiskLayer(
                    settings.l3_dir,
                    size_limit=settings.l3_size_limit_bytes,
                    ttl_s=settings.l3_ttl_s,
                )
            )
        return cls(
            layers,
            settings.compression_threshold_bytes,
            lock_ttl_s=settings.lock_ttl_s,
            follower_wait_s=settings.follower_wait_s,
            refresh_ahead_s=settings.refresh_ahead_s,
            popular_top_n=settings.popular_top_n,
        )

    def layer(self, name: str) -> Layer | None:
        return next((layer for layer in self.layers if layer.name == name), None)

    async def get(self, key: str) -> CacheHit | None:
        return (await self.get_many([key]))[0]

    async def get_many(
        self, keys: Sequence[str], *, count: bool = True, skip: Collection[str] = ()
    ) -> list[CacheHit | None]:
        """One round trip per layer for all keys still missing; hits fill the layers above.

        `count`: add these reads to the popularity counts (in the background, best effort).
        `skip`: layers not to read (someone read them for these keys already and missed).
        """
        hits = await self._read(keys, [layer for layer in self.layers if layer.name not in skip])
        if count and self.popularity is not None:
            self.popularity.record(keys)
        return hits

    async def get_each(
        self, keys: Sequence[str], skips: Sequence[frozenset[str]]
    ) -> list[CacheHit | None]:
        """`get_many(count=False)` where key i skips the layers in skips[i] (read already by
        whoever handed it on, and missed): one round trip per layer and set of skips."""
        found: dict[int, CacheHit | None] = {}
        for skip in set(skips):
            group = [i for i, s in enumerate(skips) if s == skip]
            hits = await self.get_many([keys[i] for i in group], count=False, skip=skip)
            found.update(zip(group, hits))
        return [found[i] for i in range(len(keys))]

    async def _read(self, keys: Sequence[str], layers: Sequence[Layer]) -> list[CacheHit | None]:
        hits: list[CacheHit | None] = [None] * len(keys)
        missing = list(range(len(keys)))
        for layer in layers:
            if not missing:
                break
            blobs = await layer.get_many([keys[i] for i in missing])
            promote: list[tuple[str, bytes]] = []
            corrupt: list[str] = []
            still_missing = []
            for index, blob in zip(missing, blobs):
                if blob is None:
                    still_missing.append(index)
                    continue
                try:
                    hits[index] = CacheHit(decode(blob), layer.name)
                except CorruptEntry as exc:
                    logger.warning(
                        "corrupt %s cache entry %s dropped: %s", layer.name, keys[index], exc
                    )
                    corrupt.append(keys[index])
                    still_missing.append(index)
                    continue
                promote.append((keys[index], blob))
            if corrupt:
                await layer.delete(corrupt)
            if promote:
                # Every layer above this one, read or skipped: a key another reader missed in
                # L2 and found here on disk goes back into L2 too.
                for upper in self.layers[: self.layers.index(layer)]:
                    await upper.set_many(promote)
            missing = still_missing
        return hits

    async def put(self, key: str, value: dict[str, Any]) -> None:
        await self.put_many([(key, value)])

    async def put_many(self, items: Sequence[tuple[str, dict[str, Any]]]) -> None:
        encoded = [(key, encode(value, self.compression_threshold)) for key, value in items]
        for layer in self.layers:
            await layer.set_many(encoded)

    async def get_or_generate(
        self, key: str, generate: Generate, *, read: bool = True, count: bool = True
    ) -> tuple[dict[str, Any], str | None]:
        """The cached value and the layer that had it, or `generate()`'s value (stored in every
        layer) and None.

        Concurrent misses of one key call `generate` once: once per process, and once across
        replicas while Redis is up (see `SingleFlight`). A caller that waited for another
        replica's leader gets its value with the layer it was read from. A failed generation
        raises in every caller that was waiting on it, and the next call tries again.

        `read=False` (a request's use_cache: false): no reads and no waiting on others; the
        fresh value is still stored. `count`: as in `get_many`.
        """
        if read:
            hit = (await self.get_many([key], count=count))[0]
            if hit is not None:
                return hit.value, hit.layer
        return await self.generate_missing(key, generate, wait_for_others=read)

    async def generate_missing(
        self, key: str, generate: Generate, *, wait_for_others: bool = True
    ) -> tuple[dict[str, Any], str | None]:
        """For a key the caller has just read and missed: `generate()`'s value, stored in every
        layer, with None; or, when another caller here or on another replica is already
        generating it, that caller's value and the layer it was read from (single-flight; the
        leader looks once more after taking the lock, for a value stored meanwhile).

        `wait_for_others=False` (a request's use_cache: false): generate here, whatever others do.
        """
        if not wait_for_others:
            return await self._generate_and_store(key, generate)
        return await self.single_flight.do(
            key, lambda: self._generate_and_store(key, generate), lambda: self._shared_lookup(key)
        )

    async def _generate_and_store(
        self, key: str, generate: Generate
    ) -> tuple[dict[str, Any], str | None]:
        value = await generate()
        await self.put(key, value)
        return value, None

    async def _shared_lookup(self, key: str) -> tuple[dict[str, Any], str | None] | None:
        """What another replica's leader stored: L1 and L2, not the per-machine L3."""
        upto = [layer for layer in self.layers if layer.name in ("l1", "l2")]
        hit = (await self._read([key], upto))[0]
        return (hit.value, hit.layer) if hit is not None else None

    async def popular_keys(self, n: int | None = None) -> list[str]:
        """The `n` (default `popular_top_n`) most-read keys lately, most read first; [] without
        Redis or while it is down."""
        if self.popularity is None:
            return []
        return [key for key, _ in await self.popularity.top(self.popular_top_n if n is None else n)]

    async def entries_due_for_refresh(
        self, n: int | None = None, refresh_ahead_s: float | None = None
    ) -> list[str]:
        """Those of the `n` most popular keys whose L2 entry expires within `refresh_ahead_s`
        (defaults: the settings). Keys already gone from L2 are not due: the next read
        regenerates them."""
        if self.l2 is None:
            return []
        ahead_ms = 1000 * (self.refresh_ahead_s if refresh_ahead_s is None else refresh_ahead_s)
        keys = await self.popular_keys(n)
        ttls = await self.l2.pttl_many(keys)
        return [key for key, ms in zip(keys, ttls) if ms is not None and 0 <= ms < ahead_ms]

    async def refresh(
        self, key: str, generate: Generate, *, refresh_ahead_s: float | None = None
    ) -> dict[str, Any] | None:
        """Regenerate `key` and store it in every layer, unless another caller (here or on another
        replica) is already generating it, or, once this one holds the lock, the L2 entry no
        longer expires within `refresh_ahead_s` (another replica just refreshed it). Returns the
        new value, or None when skipped."""
        ahead_ms = 1000 * (self.refresh_ahead_s if refresh_ahead_s is None else refresh_ahead_s)

        async def still_due() -> bool:
            if self.l2 is None:
                return True
            (ms,) = await self.l2.pttl_many([key])
            return ms is None or ms < ahead_ms

        try:
            done = await self.single_flight.try_lead(
                key, lambda: self._generate_and_store(key, generate), still_due
            )
        except Exception:
            self._refreshed("failed")
            raise
        self._refreshed("skipped" if done is None else "rewritten")
        return done[0] if done is not None else None

    def _refreshed(self, outcome: str) -> None:
        if self.on_refresh is not None:
            self.on_refresh(outcome)

    async def delete(self, keys: Sequence[str]) -> None:
        """Drop `keys` from every layer here, and from every other cache's L1 and L3."""
        for layer in self.layers:
            await layer.delete(keys)
        if self.invalidation is not None:
            await self.invalidation.publish(keys)

    async def clear(self) -> None:
        """Drop everything here, and everything in every other cache's L1 and L3."""
        for layer in self.layers:
            await layer.clear()
        if self.invalidation is not None:
            await self.invalidation.publish(None)

    def listen_for_deletes(self) -> None:
        """Apply other caches' deletes to this one's own layers (L1, L3) from now on; call it
        from the event loop (idempotent). Without Redis there is nobody else to hear."""
        if self.invalidation is not None:
            self.invalidation.start(self._apply_remote_delete)

    async def _apply_remote_delete(self, keys: list[str] | None) -> None:
        # L2 is the store the sender already changed.
        for layer in self.layers:
            if layer is self.l2:
                continue
            await (layer.clear() if keys is None else layer.delete(keys))

    def status(self) -> dict[str, str]:
        return {layer.name: layer.status() for layer in self.layers}

    async def close(self) -> None:
        """Send buffered read counts; close the Redis connections and the disk cache."""
        if self.invalidation is not None:
            await self.invalidation.close()
        if self.popularity is not None:
            await self.popularity.close()
        for layer in self.layers:
            if isinstance(layer, RedisLayer):
                await layer.close()
            elif isinstance(layer, DiskLayer):
                layer.close()
