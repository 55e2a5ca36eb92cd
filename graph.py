"""linkedin-posts: the Ray Serve deployment graph. Read it top to bottom for the request path.

    client ──HTTP──▶ Serve proxy ─▶ Ingress (FastAPI: validate, auth, rate limits, timeout)
                                       │ ── one read of the shared layers (L2 Redis, L3 disk)
                                       │    hit ──▶ answer
                                       ▼ the misses, each a PostLookup (key, layers read)
                                   CacheLookup (deployments/cache_lookup_deployment.py)
                                       │ ── the layers not read yet (L1): hit ──▶ answer
                                       │ miss: PostWriter writes it, once per key (single-flight)
                                       ├─▶ TitleModel.generate    ┐  concurrently; each replica
                                       ├─▶ ContentModel.generate  ├─ batches continuously: rows
                                       ├─▶ HashtagModel.generate  ┘  join and leave between steps
                                       ▼
                                   Compiler.compile ─▶ stored in every layer ─▶ a CachedPost

POST /v1/posts/stream takes the same path as a stream: CacheLookup's `post_stream` sends the
pieces of each part as the models write them (`generate_stream`), and the Ingress answers them
as server-sent events (deployments/edge/post_stream.py).

`build_app(args)` turns one validated `AppSettings` into the bound graph: Serve configs import it
(`import_path: graph:build_app`) and call it with their `args:`. `graph:app` is the same graph
from the environment and the defaults, for `serve build graph:app` and `serve run graph:app`.
"""

import asyncio
import functools
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import ray
from fastapi import FastAPI, Query, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from pydantic import ValidationError
from ray import serve
from ray.serve.handle import DeploymentHandle

from deployments import replica_calls
from deployments.cache import TieredCache
from deployments.cache.keys import cache_key
from deployments.cache_lookup_deployment import CacheLookup, cached_post
from deployments.compiler_deployment import Compiler
from deployments.edge.errors import (
    ApiError,
    downstream_error,
    error_response,
    install_error_handlers,
    invalid_request,
)
from deployments.edge.limits import Caller, Edge, EdgeMiddleware, add_cors
from deployments.edge.post_stream import (
    error_event,
    event_stream_response,
    meta_event,
    post_event,
    post_events,
)
from deployments.edge.readiness import check_readiness
from deployments.edge.request_metrics import RequestMetricsMiddleware
from deployments.edge.studio import studio_file
from deployments.engine.model_loader import post_model_id
from deployments.local_ray import keep_replica_server_on_loopback
from deployments.metrics import (
    PROMETHEUS_CONTENT_TYPE,
    CacheMetrics,
    NodeMetrics,
    SettingsMetrics,
)
from deployments.model_deployments import ContentModel, HashtagModel, TitleModel
from deployments.schemas import (
    PARTS,
    BatchPostRequest,
    BatchPostResponse,
    CacheDeleted,
    CachedPost,
    CacheInfo,
    Post,
    PostLookup,
    PostRequest,
    StreamEvent,
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
# Outermost: every answer counted and timed, the edge's refusals too.
api.add_middleware(RequestMetricsMiddleware)


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def _answered(answer: CachedPost, request_id: str, total_ms: float) -> Post:
    """The post as the API answers it: where it came from, its timings, the request id."""
    post, layer = answer.post, answer.layer
    post.metadata.cache = CacheInfo(hit=layer is not None, layer=layer, key=answer.key)
    timings = {"cache_lookup": answer.lookup_ms}
    if layer is None:
        timings.update(post.metadata.timings_ms)
    post.metadata.timings_ms = {**timings, "total": total_ms}
    post.metadata.request_id = request_id
    return post


def _outcome(post: Post) -> str:
    """A post's word in the request metrics: the cache layer that answered, or `generated`."""
    cache = post.metadata.cache
    return f"hit_{cache.layer}" if cache.hit and cache.layer else "generated"


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
        self.cache_metrics.watch(self.shared_cache)
        SettingsMetrics().record(
            settings.http.request_timeout_s,
            {name: options.min_replicas for name, options in settings.deployments.items()},
        )
        self.edge = api.state.edge = Edge(settings)
        self.models = dict(zip(PARTS, (title_model, content_model, hashtag_model), strict=True))
        self.node_metrics = NodeMetrics()
        add_cors(api, settings.security.cors_origins)

    # ---- HTTP routes -----------------------------------------------------------------------------

    @api.post("/v1/posts", response_model=Post)
    async def create_post(self, body: PostRequest, request: Request) -> Post:
        post = (await self.generate_posts([body], _caller(request)))[0]
        request.state.outcome = _outcome(post)
        return post

    @api.post("/v1/posts/batch", response_model=BatchPostResponse)
    async def create_posts_batch(
        self, body: BatchPostRequest, request: Request
    ) -> BatchPostResponse:
        return BatchPostResponse(posts=await self.generate_posts(body.requests, _caller(request)))

    @api.post("/v1/posts/stream", response_class=StreamingResponse)
    async def stream_post(self, body: PostRequest, request: Request) -> StreamingResponse:
        """The post as server-sent events while it is written (docs/api.md#streaming)."""
        events = self.post_events(body, _caller(request))
        first = await anext(events)  # a failure before the first byte is a JSON answer
        return event_stream_response(first, events)

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

    @api.get("/", include_in_schema=False)
    async def studio(self) -> Response:
        """The studio: a form, a streamed LinkedIn-like preview, drafts (docs/studio.md)."""
        return studio_file("index.html")

    @api.get("/studio/{name}", include_in_schema=False)
    async def studio_asset(self, name: str) -> Response:
        return studio_file(name)

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

    async def stream(self, request: dict[str, Any] | PostRequest) -> AsyncIterator[dict]:
        """The events of POST /v1/posts/stream as dicts ({"event", "data"}), errors included:
        `handle.options(stream=True).stream.remote({...})`."""
        try:
            async for event in self.post_events(PostRequest.model_validate(request)):
                yield event.model_dump()
        except ValidationError as exc:
            yield error_event(invalid_request(exc)).model_dump()
        except ApiError as error:
            yield error_event(error).model_dump()

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
        return [_answered(answer, request_id, total_ms) for answer in answers]

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
            answers[i] = cached_post(hit.value, hit.layer, lookups[i].key, lookup_ms)
            self.cache_metrics.record(hit.layer)
        return answers

    async def post_events(
        self, request: PostRequest, caller: Caller | None = None
    ) -> AsyncIterator[StreamEvent]:
        """One request as stream events: a shared-layer hit at once, else CacheLookup's stream."""
        started = time.perf_counter()
        request_id = _current_request_id()
        lookup = PostLookup(request=request, key=cache_key(request, self.model_id))
        [hit] = await self.shared_cache_hits([lookup])
        if hit is not None:
            yield meta_event(request_id, hit.key, hit.layer)
            yield post_event(_answered(hit, request_id, _ms_since(started)))
            return
        await self.edge.charge_generations(caller, 1)
        items = self.cache_lookup.options(stream=True).post_stream.remote(lookup)
        try:
            async for event in post_events(
                items,
                request_id=request_id,
                deadline=started + self.settings.http.request_timeout_s,
                finish_post=lambda answer: _answered(answer, request_id, _ms_since(started)),
                error_of=lambda exc: downstream_error(
                    exc, request_id, self.settings.http.retry_after_s
                ),
            ):
                yield event
        finally:
            items.cancel()  # a no-op once the post was sent; else the writing stops

    # ---- Everything else goes on to CacheLookup --------------------------------------------------

    async def look_up(self, lookups: list[PostLookup], request_id: str) -> list[CachedPost]:
        send = functools.partial(self.cache_lookup.posts.remote, lookups)
        try:
            # Cancelled at the timeout, or when the client goes away: `call` then cancels the
            # work down the graph, not just our wait for it.
            return await asyncio.wait_for(
                replica_calls.call(send, "CacheLookup.posts"), self.settings.http.request_timeout_s
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise downstream_error(exc, request_id, self.settings.http.retry_after_s) from exc


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
