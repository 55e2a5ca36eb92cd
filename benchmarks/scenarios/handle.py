"""handle: the same loads through the Python handle from this driver against HTTP."""

from __future__ import annotations

from typing import Any

from benchmarks.context import Context
from benchmarks.load import Stats
from benchmarks.report import ScenarioReport, Series, Table, fmt_ratio, ratio
from benchmarks.scenarios.common import (
    LENGTH,
    Load,
    cache_args,
    cache_info,
    describe_args,
    handle_target,
    http_target,
    prefill,
    run_load,
)
from benchmarks.workload import request_body


def handle(ctx: Context) -> ScenarioReport:
    plan = ctx.plan
    args = cache_args(ctx)
    with ctx.step("handle: start Serve (cache on, small budget) and pre-fill"):
        url = ctx.apps.deploy(args, with_constant=True)
        bodies = prefill(ctx, url)

    def hit_body(i: int) -> dict[str, Any]:
        return bodies[i % len(bodies)]

    series = {"HTTP": Series("HTTP (hit)"), "handle": Series("handle (hit)")}
    rows: list[list[Any]] = []
    for level_index, clients in enumerate(plan.handle_levels):
        load = Load(clients, plan.handle_duration_s, plan.cache_max_requests, 60)
        targets = {
            "HTTP": http_target(f"{url}/v1/posts", hit_body, clients, 60, cache_info),
            "handle": handle_target(hit_body, cache_info),
        }
        order = list(targets) if level_index % 2 == 0 else list(reversed(targets))
        measured = {}
        for name in order:
            with ctx.step(f"handle: {clients} clients, {name}"):
                measured[name] = run_load(targets[name], load).stats()
        for name in targets:
            stats = measured[name]
            series[name].add(clients, stats.throughput, stats.p50_ms, stats.p95_ms)
        rows += _handle_rows("cache hit", clients, measured)

    seeds = [ctx.next_seed() for _ in range(2 * plan.nocache_requests)]
    clients = plan.nocache_concurrency
    load = Load(clients, plan.nocache_budget_s, plan.nocache_requests, plan.nocache_budget_s)
    fresh: dict[str, Stats] = {}
    for offset, name in enumerate(("HTTP", "handle")):

        def fresh_body(i: int, offset: int = offset) -> dict[str, Any]:
            seed = seeds[offset * plan.nocache_requests + i]
            return request_body(i, seed, length=LENGTH, use_cache=False)

        target = (
            http_target(f"{url}/v1/posts", fresh_body, clients, load.hard_limit_s)
            if name == "HTTP"
            else handle_target(fresh_body)
        )
        with ctx.step(f"handle: cache off, {name}"):
            fresh[name] = run_load(target, load).stats()
    rows += _handle_rows("cache off (generates)", clients, fresh)

    table = Table(
        title="Python handle from this driver against HTTP",
        description=(
            "The same requests through `serve.get_app_handle('linkedin-posts').generate.remote("
            "dict)` from the benchmark driver and through POST /v1/posts: cache hits (the "
            "framework path) at each concurrency, alternating which goes first, then a small "
            f"cache-off run ({plan.nocache_requests} requests, {clients} clients, small token "
            "budget)."
        ),
        headers=[
            "load",
            "clients",
            "path",
            "req/s",
            "p50 ms",
            "p95 ms",
            "2xx",
            "errors",
            "req/s vs HTTP",
            "p50 vs HTTP",
        ],
        rows=rows,
        notes=[
            "HTTP requests pass the proxy and the FastAPI edge; handle calls go from this driver "
            "straight to the Ingress replica's `generate` method.",
            describe_args(args),
        ],
    )
    return ScenarioReport(name="handle", tables=[table], series=list(series.values()))


def _handle_rows(load: str, clients: int, measured: dict[str, Stats]) -> list[list[Any]]:
    http = measured["HTTP"]
    rows = []
    for name in ("HTTP", "handle"):
        stats = measured[name]
        rows.append(
            [
                load,
                clients,
                name,
                stats.throughput,
                stats.p50_ms,
                stats.p95_ms,
                stats.ok,
                stats.requests - stats.ok,
                None if name == "HTTP" else fmt_ratio(ratio(stats.throughput, http.throughput)),
                None if name == "HTTP" else fmt_ratio(ratio(stats.p50_ms, http.p50_ms)),
            ]
        )
    return rows
