"""cache: the cache-hit path against a constant Serve endpoint (the framework's ceiling), with
and without the Ingress reading the shared layers, plus a Zipf workload."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

from benchmarks.apps import CONSTANT_ROUTE
from benchmarks.context import Context
from benchmarks.load import LoadRun, Stats, percentile, zipf_sample
from benchmarks.report import ScenarioReport, Series, Table, fmt_percent, fmt_ratio, ratio
from benchmarks.scenarios.common import (
    CACHE_L1_ENTRIES,
    LENGTH,
    Load,
    cache_args,
    cache_info,
    describe_args,
    http_target,
    prefill,
    run_load,
)
from benchmarks.workload import zipf_topics

CACHE_TARGET = 0.70  # cache-hit throughput over the constant endpoint's


def _stats_row(clients: int, label: str, stats: Stats, extra: Sequence[Any]) -> list[Any]:
    return [
        clients,
        label,
        stats.throughput,
        stats.p50_ms,
        stats.p95_ms,
        stats.p99_ms,
        stats.ok,
        stats.errors_5xx,
        stats.rejected,
        stats.reject_p50_ms,
        stats.failed,
        *extra,
    ]


def cache(ctx: Context) -> ScenarioReport:
    args = cache_args(ctx)
    url, hit_table, ceiling, hits = _hits_against_ceiling(
        ctx,
        args,
        title="Cache hits against the framework's ceiling",
        what="the Ingress answers from the shared layers, L3 and L2 if REDIS_URL is set",
        series_name="cache hit",
    )
    with ctx.step("cache: Zipf workload"):
        zipf_table = _zipf(ctx, url)
    # Before: the Ingress reads no shared layer (no disk, no Redis), so every hit crosses the
    # second hop to CacheLookup and comes from its memory (L1), as before the Ingress read L3.
    memory_only = {**args, "cache": {**args["cache"], "l3_enabled": False, "redis_url": None}}
    _, memory_table, memory_ceiling, memory_hits = _hits_against_ceiling(
        ctx,
        memory_only,
        title="Before: every hit through CacheLookup (L1 only)",
        what="the Ingress has no shared layer to read and asks CacheLookup, two Serve hops",
        series_name="cache hit via CacheLookup",
        ceiling_name="constant endpoint (second deployment)",
    )
    return ScenarioReport(
        name="cache",
        tables=[hit_table, memory_table, zipf_table],
        series=[ceiling, hits, memory_ceiling, memory_hits],
        headline={},
    )


def _hits_against_ceiling(
    ctx: Context,
    args: dict[str, Any],
    *,
    title: str,
    what: str,
    series_name: str,
    ceiling_name: str = "constant endpoint",
) -> tuple[str, Table, Series, Series]:
    """Cache hits and the constant endpoint at each concurrency, alternating which goes first;
    the graph deployed with `args`. Returns the graph's URL, the table and both series."""
    plan = ctx.plan
    with ctx.step(f"cache: start Serve + constant endpoint ({series_name})"):
        url = ctx.apps.deploy(args, with_constant=True)
    with ctx.step(f"cache: pre-fill {plan.prefill_posts} posts"):
        bodies = prefill(ctx, url)

    def body_for(i: int) -> dict[str, Any]:
        return bodies[i % len(bodies)]

    ceiling = Series(ceiling_name)
    hits = Series(series_name)
    rows: list[list[Any]] = []
    ratios: list[float] = []
    layers: Counter[str] = Counter()
    for level_index, clients in enumerate(plan.cache_levels):
        load = Load(clients, plan.cache_duration_s, plan.cache_max_requests, 60)
        targets = {
            "constant": http_target(f"{url}{CONSTANT_ROUTE}", body_for, clients, 60),
            "cache hit": http_target(f"{url}/v1/posts", body_for, clients, 60, cache_info),
        }
        order = list(targets) if level_index % 2 == 0 else list(reversed(targets))
        measured: dict[str, LoadRun] = {}
        for name in order:
            with ctx.step(f"cache: {clients} clients, {name} ({series_name})"):
                measured[name] = run_load(targets[name], load)
        const_stats, hit_stats = measured["constant"].stats(), measured["cache hit"].stats()
        answered = [r.info for r in measured["cache hit"].ok_records()]
        hit_count = sum(1 for info in answered if info.get("hit"))
        layers.update(str(info.get("layer")) for info in answered if info.get("hit"))
        share = ratio(hit_stats.throughput, const_stats.throughput)
        ratios.append(share)
        ceiling.add(clients, const_stats.throughput, const_stats.p50_ms, const_stats.p95_ms)
        hits.add(clients, hit_stats.throughput, hit_stats.p50_ms, hit_stats.p95_ms)
        rows.append(_stats_row(clients, "constant endpoint", const_stats, [None, None, None]))
        rows.append(
            _stats_row(
                clients,
                "POST /v1/posts (hit)",
                hit_stats,
                [
                    hit_count,
                    fmt_percent(share),
                    fmt_ratio(ratio(hit_stats.p50_ms, const_stats.p50_ms)),
                ],
            )
        )
    worst = min(ratios) if ratios else math.nan
    answered_by = ", ".join(f"{layer}: {count}" for layer, count in sorted(layers.items()))
    table = Table(
        title=title,
        description=(
            f"POST /v1/posts for {len(bodies)} pre-filled posts (cache hits; {what}) against a "
            "constant Serve endpoint on the same proxy (second app at /const, same request "
            "bodies), alternating which goes first at each concurrency; the hit path's share "
            "of the ceiling's req/s."
        ),
        headers=[
            "clients",
            "target",
            "req/s",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "2xx",
            "5xx",
            "429/503",
            "rejected p50 ms",
            "failed",
            "hits",
            "of ceiling req/s",
            "p50 vs ceiling",
        ],
        rows=rows,
        notes=[
            f"Lowest share of the ceiling: {fmt_percent(worst)} (target ≥ "
            f"{CACHE_TARGET:.0%}): {'met' if worst >= CACHE_TARGET else 'NOT met'}.",
            f"Hits by the layer that answered (`metadata.cache.layer`): {answered_by or 'none'}.",
            f"Each run: {plan.cache_duration_s:.0f} s or {plan.cache_max_requests} requests. "
            "The load generator runs on the same CPUs as Serve, so both sides pay for it alike.",
            "The cache scenarios run the graph with small token budgets (content 4-24 tokens, "
            "title and hashtags 8) so pre-fill and misses are fast; hit latency does not depend "
            f"on them. L1 is limited to {CACHE_L1_ENTRIES} entries.",
            describe_args(args),
        ],
    )
    return url, table, ceiling, hits


def _zipf(ctx: Context, url: str) -> Table:
    plan = ctx.plan
    topics = zipf_topics(plan.zipf_topics)
    draws = zipf_sample(plan.zipf_topics, plan.zipf_s, plan.zipf_requests, seed=20240601)

    def body_for(i: int) -> dict[str, Any]:
        rank = draws[i]
        return {
            "topic": topics[rank],
            "length": LENGTH,
            "seed": ctx.seed_base + 500_000 + rank,  # fixed per topic: repeats are hits
        }

    load = Load(plan.zipf_concurrency, plan.zipf_budget_s, plan.zipf_requests, plan.zipf_budget_s)
    run = run_load(
        http_target(
            f"{url}/v1/posts", body_for, plan.zipf_concurrency, load.hard_limit_s, cache_info
        ),
        load,
    )
    stats = run.stats()
    ok = run.ok_records()
    layers = Counter(r.info["layer"] if r.info.get("hit") else "miss" for r in ok)
    hit_ms = [r.latency_s * 1000 for r in ok if r.info.get("hit")]
    miss_ms = [r.latency_s * 1000 for r in ok if not r.info.get("hit")]
    sent = draws[: stats.requests]
    repeats = len(sent) - len(set(sent))
    configured = ctx.apps.readiness.get("cache", {})
    layer_names = ", ".join(f"{k}: {v}" for k, v in configured.items()) or "unknown"

    def share(key: str) -> str:
        return fmt_percent(ratio(layers.get(key, 0), len(ok)))

    return Table(
        title=f"Zipf workload (s = {plan.zipf_s}) over {plan.zipf_topics} topics",
        description=(
            f"{stats.requests} requests, topics drawn from Zipf(s = {plan.zipf_s}) over "
            f"{plan.zipf_topics} topics with one fixed seed per topic (a repeated topic is the "
            f"same cache key), {plan.zipf_concurrency} clients in closed loop; cache layer of "
            "each answer from `metadata.cache.layer`."
        ),
        headers=[
            "requests",
            "2xx",
            "repeats in sample",
            "hit ratio",
            "L1",
            "L2",
            "L3",
            "miss",
            "hit p50 ms",
            "miss p50 ms",
            "req/s",
        ],
        rows=[
            [
                stats.requests,
                stats.ok,
                repeats,
                fmt_percent(ratio(len(hit_ms), len(ok))),
                share("l1"),
                share("l2"),
                share("l3"),
                share("miss"),
                percentile(hit_ms, 50),
                percentile(miss_ms, 50),
                stats.throughput,
            ]
        ],
        notes=[
            f"Cache layers in this run (from /readyz): {layer_names}. L2 is Redis and is on "
            "only when REDIS_URL is set; L3 is a fresh directory for this run.",
            "'repeats in sample' is the best possible hit count; a repeat sent while its first "
            "request is still generating can miss.",
        ],
    )
