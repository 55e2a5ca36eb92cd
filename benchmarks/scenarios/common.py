"""What several scenarios share: the post length they ask for, the service settings they deploy
(cache off, cache on with small budgets), and the load helpers (closed loops over HTTP or the
Python handle, pre-filling the cache, fresh-post loads)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from benchmarks.apps import GRAPH_APP
from benchmarks.context import Context
from benchmarks.load import (
    LoadRun,
    Outcome,
    Send,
    Stats,
    closed_loop,
    http_client,
    http_post_sender,
)
from benchmarks.workload import request_body

LENGTH = "short"  # the same post length for the baseline and every generating scenario

MODEL_DEPLOYMENTS = {"title": "TitleModel", "content": "ContentModel", "hashtags": "HashtagModel"}

# Cache scenarios only measure hits, so their misses (pre-fill, Zipf first sightings) are cheap.
SMALL_GENERATION: dict[str, Any] = {
    "content_max_new_tokens": {"short": 24, "medium": 24, "long": 24},
    "content_min_new_tokens": {"short": 4, "medium": 4, "long": 4},
    "title_max_new_tokens": 8,
    "hashtags_max_new_tokens": 8,
}
# L1 small enough that the Zipf workload's long tail is evicted and read back from L2/L3.
CACHE_L1_ENTRIES = 32


# ---- app settings ------------------------------------------------------------------------------


def _no_rate_limit() -> dict[str, Any]:
    """The benchmarks measure capacity, not the per-client quota: rate limiting off (when this
    version of the service has it)."""
    from deployments.settings import AppSettings

    if "security" in AppSettings.model_fields:
        return {"security": {"rate_limit_enabled": False}}
    return {}


def nocache_args(ctx: Context) -> dict[str, Any]:
    return {
        **_no_rate_limit(),
        "cache": {"enabled": False, "l3_dir": str(ctx.workdir / "l3-nocache")},
    }


def cache_args(ctx: Context) -> dict[str, Any]:
    return {
        **_no_rate_limit(),
        "generation": SMALL_GENERATION,
        "cache": {"l3_dir": str(ctx.workdir / "l3-cache"), "l1_max_entries": CACHE_L1_ENTRIES},
    }


def describe_args(args: dict[str, Any]) -> str:
    """The settings args as a note, without this run's temporary paths."""
    shown = {
        section: {k: v for k, v in values.items() if k != "l3_dir"}
        if isinstance(values, dict)
        else values
        for section, values in args.items()
    }
    return f"Service settings args (over the defaults): `{json.dumps(shown, sort_keys=True)}`."


# ---- load helpers ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Load:
    concurrency: int
    duration_s: float
    max_requests: int
    hard_limit_s: float


def run_load(send_factory: Callable[[], Any], load: Load) -> LoadRun:
    """Build the sender inside a fresh event loop (an async context manager yielding a Send)
    and run the closed loop with it."""

    async def main() -> LoadRun:
        async with send_factory() as send:
            return await closed_loop(
                send,
                concurrency=load.concurrency,
                duration_s=load.duration_s,
                max_requests=load.max_requests,
                hard_limit_s=load.hard_limit_s,
            )

    return asyncio.run(main())


def http_target(
    url: str,
    body_for: Callable[[int], dict[str, Any]],
    concurrency: int,
    timeout_s: float,
    parse: Callable[[Any], dict[str, Any]] | None = None,
) -> Callable[[], Any]:
    @contextlib.asynccontextmanager
    async def factory() -> Any:
        async with http_client(concurrency, timeout_s) as client:
            yield http_post_sender(client, url, body_for, parse)

    return factory


def _status_of(exc: BaseException) -> int:
    """The HTTP status an exception from the Ingress would have been answered with."""
    from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError

    if isinstance(exc, BackPressureError | DeploymentUnavailableError):
        return 503
    for candidate in (exc, getattr(exc, "cause", None), exc.__cause__):
        status = getattr(candidate, "status", None)
        if isinstance(status, int):
            return status
    return 500


def handle_target(
    body_for: Callable[[int], dict[str, Any]],
    parse: Callable[[Any], dict[str, Any]] | None = None,
) -> Callable[[], Any]:
    @contextlib.asynccontextmanager
    async def factory() -> Any:
        from ray import serve

        handle = serve.get_app_handle(GRAPH_APP)

        async def send(index: int) -> Outcome:
            try:
                post = await handle.generate.remote(body_for(index))
            except Exception as exc:
                return Outcome(_status_of(exc), {"error": type(exc).__name__})
            return Outcome(200, parse(post) if parse else {})

        sender: Send = send
        yield sender

    return factory


def cache_info(post: dict[str, Any]) -> dict[str, Any]:
    cache = post["metadata"]["cache"]
    return {"hit": bool(cache["hit"]), "layer": cache["layer"]}


def post_text(post: dict[str, Any]) -> dict[str, Any]:
    return {"text": post["text"]}


def _ms_to_s(value: float) -> float:
    return value / 1000


def prefill(ctx: Context, url: str) -> list[dict[str, Any]]:
    """Generate a few posts in one batch request and wait until every one is a cache hit (the
    write-back runs in the background). Same seeds for the whole run, so it is idempotent."""
    bodies = [
        request_body(i, ctx.prefill_seed(i), length=LENGTH) for i in range(ctx.plan.prefill_posts)
    ]
    deadline = time.monotonic() + 120
    with httpx.Client(timeout=120, trust_env=False) as client:
        client.post(f"{url}/v1/posts/batch", json={"requests": bodies}).raise_for_status()
        for body in bodies:
            while True:
                response = client.post(f"{url}/v1/posts", json=body)
                response.raise_for_status()
                if response.json()["metadata"]["cache"]["hit"]:
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError("pre-filled posts did not become cache hits within 120 s")
                time.sleep(0.2)
    return bodies


def fresh_post_load(ctx: Context, clients: int, duration_s: float) -> Load:
    """The bounds of a level of fresh posts: `duration_s` of sending, at most the plan's base +
    3 x clients requests, then the plan's drain."""
    plan = ctx.plan
    return Load(
        concurrency=clients,
        duration_s=duration_s,
        max_requests=plan.graph_requests_base + 3 * clients,
        hard_limit_s=duration_s + plan.graph_drain_s,
    )


def deploy_warm(ctx: Context, args: dict[str, Any], paths: tuple[str, ...] = ("/v1/posts",)) -> str:
    """The graph deployed with `args` and one fresh post asked of each of `paths` (the first
    request loads what a replica loads lazily); its base URL."""
    url = ctx.apps.deploy(args)
    warm = request_body(0, ctx.next_seed(), length=LENGTH, use_cache=False)
    with httpx.Client(timeout=300, trust_env=False) as client:
        for path in paths:
            client.post(f"{url}{path}", json=warm).raise_for_status()
    return url


def generation_load(ctx: Context, url: str, clients: int, *, warm_up: bool = True) -> LoadRun:
    """One warm-up post (unless `warm_up` is false), then `clients` clients in closed loop
    asking for fresh `LENGTH` posts (cache off, a new seed each) for the plan's duration; the
    answers keep their text."""
    load = fresh_post_load(ctx, clients, ctx.plan.graph_duration_s)
    seeds = [ctx.next_seed() for _ in range(load.max_requests + 1)]
    if warm_up:
        with httpx.Client(timeout=300, trust_env=False) as client:
            warm = request_body(0, seeds[0], length=LENGTH, use_cache=False)
            client.post(f"{url}/v1/posts", json=warm).raise_for_status()

    def body_for(i: int) -> dict[str, Any]:
        return request_body(i, seeds[i + 1], length=LENGTH, use_cache=False)

    return run_load(
        http_target(f"{url}/v1/posts", body_for, clients, load.hard_limit_s, post_text), load
    )


# ---- overload rows (router, queues) --------------------------------------------------------------


OVERLOAD_HEADERS = (
    "requests",
    "posts/s",
    "p50 s",
    "p95 s",
    "2xx",
    "5xx",
    "429/503",
    "rejected p50 ms",
    "failed",
)


def _overload_row(label: str, stats: Stats) -> list[Any]:
    return [
        label,
        stats.requests,
        stats.throughput,
        _ms_to_s(stats.p50_ms),
        _ms_to_s(stats.p95_ms),
        stats.ok,
        stats.errors_5xx,
        stats.rejected,
        stats.reject_p50_ms,
        stats.failed,
    ]
