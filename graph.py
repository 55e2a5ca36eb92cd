"""linkedin-posts: the Ray Serve deployment graph. Read it top to bottom for the request path.

    client ──HTTP──▶ Serve proxy ─▶ Ingress (FastAPI: validate, auth, rate limits, timeout)
                                       │ ── one read of the shared layers (L2 Redis, L3 disk)
                                       │    hit ──▶ answer
                                       ▼ the misses, each a PostLookup (key, layers read)
                                   CacheLookup ── the layers not read yet (L1): hit ──▶ answer
                                       │ miss: PostWriter writes it, once per key (single-flight)
                                       ├─▶ TitleModel.generate    ┐  concurrently; each replica
                                       ├─▶ ContentModel.generate  ├─ batches continuously: rows
                                       ├─▶ HashtagModel.generate  ┘  join and leave between steps
                                       ▼
                                   Compiler.compile ─▶ stored in every layer ─▶ a CachedPost

`build_app(args)` turns one validated `AppSettings` into the bound graph: Serve configs import it
(`import_path: graph:build_app`) and call it with their `args:`. `graph:app` is the same graph
from the environment and the defaults, for `serve build graph:app` and `serve run graph:app`.
"""

import asyncio
import functools
import logging
import time
import uuid
from typing import Any

import ray
from fastapi import FastAPI, Query, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from ray import serve
from ray.serve.exceptions import BackPressureError
from ray.serve.handle import DeploymentHandle

from deployments import replica_calls
from deployments.cache import TieredCache
from deployments.cache.keys import cache_key
from deployments.cache.refresh import refresh_popular_entries
from deployments.compiler_deployment import Compiler
from deployments.edge.errors import ApiError, error_response, install_error_handlers
from deployments.edge.limits import Caller, Edge, EdgeMiddleware, add_cors
from deployments.edge.readiness import check_readiness
from deployments.engine.model_loader import post_model_id
from deployments.local_ray import keep_replica_server_on_loopback
from deployments.metrics import PROMETHEUS_CONTENT_TYPE, CacheMetrics, NodeMetrics
from deployments.model_deployments import ContentModel, HashtagModel, TitleModel
from deployments.post.writer import PostWriter
from deployments.schemas import (
    PARTS,
    BatchPostRequest,
    BatchPostResponse,
    CacheDeleted,
    CachedPost,
    CacheInfo,
    Post,
    PostLookup,
    PostPart,
    PostRequest,
    WarmRequest,
    WarmResponse,
)
from deployments.settings import AppSettings

logger = logging.getLogger("ray.serve")

api = FastAPI(
    title="linkedin-posts",
    version="0.1.0",
    description="Writes LinkedIn posts with language models, served as a Ray Serve graph.",
)
install_error_handlers(api)
# Auth, rate limits, content type and body size, before FastAPI parses anything.
api.add_middleware(EdgeMiddleware)


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def _cached(value: dict[str, Any], layer: str | None, key: str, lookup_ms: float) -> CachedPost:
    """What the cache holds (a post and the request it answers) as CacheLookup answers it."""
    return CachedPost(post=Post.model_validate(value), layer=layer, key=key, lookup_ms=lookup_ms)


def _caller(request: Request) -> Caller | None:
    """Who the edge admitted (None on paths it does not limit)."""
    return getattr(request.state, "caller", None)


def _current_request_id() -> str:
    """Serve's own request id: it accepts the caller's X-Request-ID, returns it in the response
    header, and tags every downstream deployment's log lines with it."""
    request_id = serve.context._get_serve_request_context().request_id
    return request_id or uuid.uuid4().hex


@serve.ingress(api)
class Ingress:
    def __init__(
        self,
        settings: AppSettings,
        cache_lookup: DeploymentHandle,
        title_model: DeploymentHandle,
        content_model: DeploymentHandle,
        hashtag_model: DeploymentHandle,
    ) -> None:
        keep_replica_server_on_loopback()
        self.settings = settings
        self.cache_lookup = cache_lookup
        self.model_id = post_model_id(settings)
        # Posts in the layers that every process shares are answered here, one Serve hop short of
        # CacheLookup (benchmarks/results/2026-11-23-cache-hits, one run: 84-103% of a constant
        # endpoint's req/s against 60-108% through CacheLookup). L1 stays in CacheLookup only: an
        # Ingress-side copy could outlive a DELETE sent through another replica.
        shared = TieredCache.from_settings(settings.cache, memory=False)
        self.shared_cache = shared if settings.cache.enabled and shared.layers else None
        self.node_id = ray.get_runtime_context().get_node_id()
        self.cache_metrics = CacheMetrics()
        self.edge = api.state.edge = Edge(settings)
        self.models = dict(zip(PARTS, (title_model, content_model, hashtag_model), strict=True))
        self.node_metrics = NodeMetrics()
        add_cors(api, settings.security.cors_origins)

    # ---- HTTP routes -----------------------------------------------------------------------------

    @api.post("/v1/posts", response_model=Post)
    async def create_post(self, body: PostRequest, request: Request) -> Post:
        return (await self.generate_posts([body], _caller(request)))[0]

    @api.post("/v1/posts/batch", response_model=BatchPostResponse)
    async def create_posts_batch(
        self, body: BatchPostRequest, request: Request
    ) -> BatchPostResponse:
        return BatchPostResponse(posts=await self.generate_posts(body.requests, _caller(request)))

    @api.post("/v1/cache/warm", response_model=WarmResponse)
    async def warm_cache(self, body: WarmRequest, request: Request) -> WarmResponse:
        """Generate (and store) posts ahead of time; cached ones are left as they are."""
        requests = [r.model_copy(update={"use_cache": True}) for r in body.requests]
        posts = await self.generate_posts(requests, _caller(request))
        cached = sum(post.metadata.cache.hit for post in posts)
        return WarmResponse(
            requested=len(posts), generated=len(posts) - cached, already_cached=cached
        )

    @api.delete("/v1/cache", response_model=CacheDeleted)
    async def delete_cache(
        self, key: str | None = Query(None, pattern="^[0-9a-f]{64}$")
    ) -> CacheDeleted:
        """Drop one entry (`?key=` from a post's metadata.cache.key) or everything."""
        # CacheLookup drops it from its layers and tells every other replica (L1) and node (L3)
        # over Redis; this replica's own layers are cleared here before the answer.
        await self.cache_lookup.delete.remote(key)
        if self.shared_cache is not None:
            await (self.shared_cache.clear() if key is None else self.shared_cache.delete([key]))
        return CacheDeleted(deleted=key or "all")

    async def check_health(self) -> None:
        if getattr(api.state, "edge", None) is None:
            raise RuntimeError("the edge (auth, rate limits) is not configured")
        # Run every health period from the replica's event loop: deletes made elsewhere reach
        # this replica's node disk even before its first request.
        if self.shared_cache is not None:
            self.shared_cache.listen_for_deletes()

    @api.get("/healthz")
    async def healthz(self) -> dict[str, str]:
        return {"status": "ok"}

    @api.get("/readyz")
    async def readyz(self) -> Response:
        """Ready while every deployment has a running replica; busy is still ready."""
        # L1 is CacheLookup's memory: it cannot degrade, only go with its replica, which the
        # controller's view covers. L2 and L3 are the same stores the Ingress reads.
        cache = {"l1": "ok"} if self.settings.cache.enabled else {}
        if self.shared_cache is not None:
            cache.update(self.shared_cache.status())
        verdict = await check_readiness(
            self.settings.app_name, self.models, cache, self.settings.http.readiness_timeout_s
        )
        if not verdict.ready:
            return error_response(503, "not ready", verdict.body)
        return JSONResponse(verdict.body)

    @api.get("/metrics", include_in_schema=False)
    async def metrics(self) -> Response:
        """Prometheus text: this node's Ray export (Serve's metrics and the graph's own)."""
        if self.settings.security.metrics == "off":
            raise ApiError(404, "not found: /metrics is turned off (security.metrics)")
        try:
            text = await self.node_metrics.text()
        except Exception as exc:
            logger.warning("reading this node's metrics failed: %r", exc)
            return error_response(503, "metrics unavailable")
        return PlainTextResponse(text, media_type=PROMETHEUS_CONTENT_TYPE)

    # ---- Python handles: serve.get_app_handle(app_name).generate.remote({...}), generate_batch ---

    async def generate(self, request: dict[str, Any] | PostRequest) -> dict[str, Any]:
        post = (await self.generate_posts([PostRequest.model_validate(request)]))[0]
        return post.model_dump(mode="json")

    async def generate_batch(self, requests: list[dict[str, Any] | PostRequest]) -> list[dict]:
        """1 to 32 posts in order, as POST /v1/posts/batch (validated the same way)."""
        batch = BatchPostRequest.model_validate({"requests": requests})
        return [post.model_dump(mode="json") for post in await self.generate_posts(batch.requests)]

    # ---- The request path, 1: the edge, and hits in the shared cache layers ----------------------

    async def generate_posts(
        self, requests: list[PostRequest], caller: Caller | None = None
    ) -> list[Post]:
        """Posts for the requests, in order. An HTTP caller is charged one unit of its
        generation limit per post the shared cache layers did not have (handles from other Ray
        jobs are inside the cluster and not limited)."""
        started = time.perf_counter()
        request_id = _current_request_id()
        lookups = [
            PostLookup(request=request, key=cache_key(request, self.model_id))
            for request in requests
        ]
        hits = await self.shared_cache_hits(lookups)
        misses = [lookup for lookup, hit in zip(lookups, hits) if hit is None]
        await self.edge.charge_generations(caller, len(misses))
        looked_up = iter(await self.look_up(misses, request_id) if misses else [])
        answers = [hit if hit is not None else next(looked_up) for hit in hits]
        total_ms = _ms_since(started)
        posts = []
        for answer in answers:
            post = answer.post
            layer = answer.layer
            post.metadata.cache = CacheInfo(hit=layer is not None, layer=layer, key=answer.key)
            timings = {"cache_lookup": answer.lookup_ms}
            if layer is None:
                timings.update(post.metadata.timings_ms)
            post.metadata.timings_ms = {**timings, "total": total_ms}
            post.metadata.request_id = request_id
            posts.append(post)
        return posts

    async def shared_cache_hits(self, lookups: list[PostLookup]) -> list[CachedPost | None]:
        """Answers from Redis or the disk for the requests that accept a cached post; None for
        the rest, which go to CacheLookup, marked with the layers read and missed."""
        answers: list[CachedPost | None] = [None] * len(lookups)
        readable = [i for i, lookup in enumerate(lookups) if lookup.request.use_cache]
        if self.shared_cache is None or not readable:
            return answers
        started = time.perf_counter()
        self.shared_cache.listen_for_deletes()
        # The one read of the shared layers for these requests, counted for the popular-entry
        # refresh (there is no popularity count without Redis, which only the shared layers hold).
        found = await self.shared_cache.get_many([lookups[i].key for i in readable])
        lookup_ms = _ms_since(started)
        for i, hit in zip(readable, found):
            if hit is None:
                lookups[i].missed = [layer.name for layer in self.shared_cache.layers]
                lookups[i].node_id = self.node_id
                continue
            answers[i] = _cached(hit.value, hit.layer, lookups[i].key, lookup_ms)
            self.cache_metrics.record(hit.layer)
        return answers

    # ---- Everything else goes on to CacheLookup --------------------------------------------------

    async def look_up(self, lookups: list[PostLookup], request_id: str) -> list[CachedPost]:
        send = functools.partial(self.cache_lookup.posts.remote, lookups)
        try:
            # Cancelled at the timeout, or when the client goes away: `call` then cancels the
            # work down the graph, not just our wait for it.
            return await asyncio.wait_for(
                replica_calls.call(send, "CacheLookup.posts"), self.settings.http.request_timeout_s
            )
        except asyncio.TimeoutError as exc:
            raise ApiError(504, "the request took too long; try again") from exc
        except asyncio.CancelledError:
            raise
        except BackPressureError as exc:
            raise ApiError(
                503,
                "the service is busy; retry shortly",
                headers={"Retry-After": str(self.settings.http.retry_after_s)},
            ) from exc
        except Exception as exc:
            # What failed stays in the log; the answer names no internals.
            logger.warning("generation failed for request %s: %r", request_id, exc)
            raise ApiError(
                503,
                "generation failed; retry shortly",
                headers={"Retry-After": str(self.settings.http.retry_after_s)},
            ) from exc


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
        self._refresher: asyncio.Task[None] | None = None

    async def posts(self, lookups: list[PostLookup]) -> list[CachedPost]:
        """Each request's post, from the cache or written now, in order."""
        self._start_refresher()
        started = time.perf_counter()
        if not self.settings.cache.enabled:
            written = await asyncio.gather(*(self.writer.write(q.request) for q in lookups))
            for _ in written:
                self.metrics.record(None)
            return [_cached(post, None, q.key, 0.0) for post, q in zip(written, lookups)]

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
            _cached(post, layer, q.key, lookup_ms) for (post, layer), q in zip(resolved, lookups)
        ]

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


def build_app(args: dict[str, Any] | AppSettings | None = None) -> serve.Application:
    """The whole graph from one validated settings object (Serve config `args:` or a dict)."""
    settings = AppSettings.load(args)
    batching = settings.batching.model_dump()
    logging_config = settings.logging.serve_config()

    def bind(cls: type, *init_args: Any, **extra: Any) -> Any:
        name = cls.__name__
        return (
            serve.deployment(cls, name=name)
            .options(
                **settings.serve_options(name),
                logging_config=logging_config,
                **extra,
            )
            .bind(*init_args)
        )

    title_model = bind(TitleModel, settings, user_config=batching)
    content_model = bind(ContentModel, settings, user_config=batching)
    hashtag_model = bind(HashtagModel, settings, user_config=batching)
    compiler = bind(Compiler, post_model_id(settings))
    cache_lookup = bind(CacheLookup, settings, title_model, content_model, hashtag_model, compiler)
    return bind(Ingress, settings, cache_lookup, title_model, content_model, hashtag_model)


def __getattr__(name: str) -> Any:
    """`graph:app` is the graph built from the environment and the embedded defaults, an
    Application, as `serve build graph:app` and `serve run graph:app` need (Serve rejects a
    builder function there: ray#37819). It is built on first use, not at import, so that the
    replicas importing this module build nothing. Configs with `args:` import the builder,
    `graph:build_app`, which Serve calls with them."""
    if name == "app":
        return build_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
