"""CacheLookup: the request path's second stage (graph.py's Ingress is the first).

It reads the cache layers the Ingress did not (L1, the node's L3 when the Ingress ran on another
node) and, on a miss, has the post written once per key across replicas (single-flight), on the
model deployments and the Compiler (`PostWriter`), and stores it in every layer.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import ray
from ray.serve.handle import DeploymentHandle

from deployments.cache import TieredCache
from deployments.cache.refresh import refresh_popular_entries
from deployments.local_ray import keep_replica_server_on_loopback
from deployments.metrics import CacheMetrics
from deployments.post.writer import PostWriter
from deployments.schemas import (
    PARTS,
    CachedPost,
    PartPiece,
    PartPieces,
    Post,
    PostLookup,
    PostPart,
    PostWriting,
)
from deployments.settings import AppSettings
from deployments.streaming import queued_until, stream_pace


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def cached_post(value: dict[str, Any], layer: str | None, key: str, lookup_ms: float) -> CachedPost:
    """What the cache holds (a post and the request it answers) as CacheLookup answers it."""
    return CachedPost(post=Post.model_validate(value), layer=layer, key=key, lookup_ms=lookup_ms)


class CacheLookup:
    """The request path, 2: the cache layers the Ingress did not read; on a miss, write the post
    (once per key, across replicas) and store it in every layer."""

    def __init__(
        self,
        settings: AppSettings,
        title_model: DeploymentHandle,
        content_model: DeploymentHandle,
        hashtag_model: DeploymentHandle,
        compiler: DeploymentHandle,
    ) -> None:
        keep_replica_server_on_loopback()
        self.settings = settings
        self.cache = TieredCache.from_settings(settings.cache)
        self.node_id = ray.get_runtime_context().get_node_id()
        self.models: dict[PostPart, DeploymentHandle] = dict(
            zip(PARTS, (title_model, content_model, hashtag_model), strict=True)
        )
        self.writer = PostWriter.on_deployments(settings.generation, self.models, compiler)
        self.metrics = CacheMetrics()
        self.metrics.watch(self.cache)
        self._refresher: asyncio.Task[None] | None = None
        self.stream_pace = stream_pace(settings.generation)

    async def posts(self, lookups: list[PostLookup]) -> list[CachedPost]:
        """Each request's post, from the cache or written now, in order."""
        self._start_refresher()
        started = time.perf_counter()
        if not self.settings.cache.enabled:
            written = await asyncio.gather(*(self.writer.write(q.request) for q in lookups))
            for _ in written:
                self.metrics.record(None)
            return [cached_post(post, None, q.key, 0.0) for post, q in zip(written, lookups)]

        # One round trip per layer for every request that accepts a cached post, reading only
        # the layers the Ingress has not. Its read was counted for the refresh: not again here.
        readable = [i for i, q in enumerate(lookups) if q.request.use_cache]
        found = await self.cache.get_each(
            [lookups[i].key for i in readable], [self._already_read(lookups[i]) for i in readable]
        )
        hits = {i: hit for i, hit in zip(readable, found) if hit is not None}
        lookup_ms = _ms_since(started)

        async def resolve(i: int) -> tuple[dict[str, Any], str | None]:
            if i in hits:
                return hits[i].value, hits[i].layer
            # Concurrent misses of one key, here or on other replicas, write the post once.
            lookup = lookups[i]
            write = functools.partial(self.writer.write, lookup.request)
            return await self.cache.generate_missing(
                lookup.key, write, wait_for_others=lookup.request.use_cache
            )

        resolved = await asyncio.gather(*(resolve(i) for i in range(len(lookups))))
        for _, layer in resolved:
            self.metrics.record(layer)
        return [
            cached_post(post, layer, q.key, lookup_ms)
            for (post, layer), q in zip(resolved, lookups)
        ]

    async def post_stream(
        self, lookup: PostLookup
    ) -> AsyncIterator[CachedPost | PostWriting | PartPieces]:
        """One request's post as a stream (`options(stream=True)`): a hit is its CachedPost
        alone; a miss is PostWriting, the pieces of each part as the models write them, then
        the CachedPost. Closing the stream stops the writing, as a cancelled `posts` call does."""
        self._start_refresher()
        started = time.perf_counter()
        request = lookup.request
        if self.settings.cache.enabled and request.use_cache:
            [hit] = await self.cache.get_each([lookup.key], [self._already_read(lookup)])
            if hit is not None:
                self.metrics.record(hit.layer)
                yield cached_post(hit.value, hit.layer, lookup.key, _ms_since(started))
                return
        lookup_ms = _ms_since(started)
        yield PostWriting(key=lookup.key)
        pieces: asyncio.Queue[PartPiece] = asyncio.Queue()
        write = functools.partial(
            self.writer.write,
            request,
            lambda part, text: pieces.put_nowait(PartPiece(part=part, text=text)),
        )
        writing = asyncio.ensure_future(
            self.cache.generate_missing(lookup.key, write, wait_for_others=request.use_cache)
            if self.settings.cache.enabled
            else _not_stored(write)
        )
        try:
            with self.stream_pace.stream():
                async for group in queued_until(pieces, writing, self.stream_pace.interval_s):
                    yield PartPieces.joined(group)
            post, layer = await writing
        finally:
            writing.cancel()  # a no-op once written; else the client has gone
        self.metrics.record(layer)
        yield cached_post(post, layer, lookup.key, lookup_ms)

    def _already_read(self, lookup: PostLookup) -> frozenset[str]:
        """What the Ingress read and missed of this replica's layers: L2, and L3 when the
        Ingress runs on this node (L3 is a node's disk); L1 is this replica's alone."""
        same_node = lookup.node_id == self.node_id
        return frozenset(
            layer for layer in lookup.missed if layer == "l2" or (layer == "l3" and same_node)
        )

    async def check_health(self) -> None:
        # A degraded cache layer is not ill health (requests are still answered); a broken
        # in-memory layer would be.
        await self.cache.layers[0].get_many(["health-check"])
        self.cache.listen_for_deletes()  # deletes made through other replicas, from the start

    async def delete(self, key: str | None) -> None:
        if key is None:
            await self.cache.clear()
        else:
            await self.cache.delete([key])

    def _start_refresher(self) -> None:
        self.cache.listen_for_deletes()
        if self._refresher is None and self.cache.l2 is not None:
            self._refresher = asyncio.get_running_loop().create_task(
                refresh_popular_entries(
                    self.cache, self.writer.write, self.settings.cache.refresh_interval_s
                )
            )


async def _not_stored(write: Callable[[], Awaitable[dict[str, Any]]]) -> tuple[dict, None]:
    return await write(), None
