"""graph: the graph over HTTP, cache off, at rising concurrency; posts/s against the
baseline's."""

from __future__ import annotations

import math
from typing import Any

from benchmarks.apps import GRAPH_APP
from benchmarks.context import Context
from benchmarks.report import ScenarioReport, Series, Table, fmt_ratio, ratio
from benchmarks.scenarios.common import (
    LENGTH,
    MODEL_DEPLOYMENTS,
    _ms_to_s,
    deploy_warm,
    describe_args,
    generation_load,
    nocache_args,
)

GRAPH_TARGET = 6.0  # graph posts/s at 32 clients over the baseline's


def _engine_counts() -> dict[str, tuple[int, int]]:
    """Each model deployment's decode steps and rows decoded so far (one replica each here)."""
    from ray import serve

    counts = {}
    for part, name in MODEL_DEPLOYMENTS.items():
        info = (
            serve.get_deployment_handle(name, app_name=GRAPH_APP).info.remote().result(timeout_s=60)
        )
        counts[part] = (info["steps"], info["row_steps"])
    return counts


def _mean_batches(
    before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]
) -> dict[str, float]:
    """Rows per decode step over the steps between two `_engine_counts`."""
    means = {}
    for part in MODEL_DEPLOYMENTS:
        steps = after[part][0] - before[part][0]
        rows = after[part][1] - before[part][1]
        means[part] = rows / steps if steps else math.nan
    return means


def graph(ctx: Context) -> ScenarioReport:
    plan = ctx.plan
    args = nocache_args(ctx)
    with ctx.step("graph: start Serve (cache off)"):
        url = deploy_warm(ctx, args)

    base = ctx.baseline.headline.get("posts_per_s", math.nan) if ctx.baseline else math.nan
    series = Series("graph, cache off")
    rows: list[list[Any]] = []
    for clients in plan.graph_levels:
        before = _engine_counts()
        with ctx.step(f"graph: {clients} clients"):
            run = generation_load(ctx, url, clients, warm_up=False)
        stats = run.stats()
        tokens = ctx.count_tokens([r.info["text"] for r in run.ok_records()])
        batch = _mean_batches(before, _engine_counts())
        series.add(clients, stats.throughput, stats.p50_ms, stats.p95_ms)
        rows.append(
            [
                clients,
                stats.requests,
                stats.throughput,
                fmt_ratio(ratio(stats.throughput, base)),
                _ms_to_s(stats.p50_ms),
                _ms_to_s(stats.p95_ms),
                _ms_to_s(stats.p99_ms),
                stats.ok,
                stats.errors_5xx,
                stats.rejected,
                stats.reject_p50_ms,
                stats.failed,
                tokens / stats.wall_s,
                batch["title"],
                batch["content"],
                batch["hashtags"],
            ]
        )

    at_32 = next((row for row in rows if row[0] == 32), None)
    notes = [
        "tokens/s is estimated: the compiled post texts of the 2xx answers re-tokenized with the "
        "model's tokenizer, over the level's wall time (the HTTP answer carries no token counts).",
        "mean batch: rows decoding together per decode step in each model deployment over the "
        "level (its engine's counters before and after the level).",
        f"closed loop: each level sends for {plan.graph_duration_s:.0f} s (at most "
        f"{plan.graph_requests_base} + 3 x clients requests), then waits up to "
        f"{plan.graph_drain_s:.0f} s for answers; requests still running then count as failed.",
        describe_args(args),
    ]
    if at_32 is not None and not math.isnan(base):
        achieved = ratio(at_32[2], base)
        verdict = "met" if achieved >= GRAPH_TARGET else "NOT met"
        notes.insert(
            0,
            f"At 32 clients the graph writes {fmt_ratio(achieved)} the baseline's posts/s "
            f"(target ≥ {GRAPH_TARGET:.0f}x): {verdict}.",
        )
    elif math.isnan(base):
        notes.insert(0, "No baseline in this run: run `baseline` with `graph` for the ratios.")
    table = Table(
        title="Graph over HTTP, cache off",
        description=(
            f"POST /v1/posts with `use_cache: false`, `cache.enabled: false` and a distinct seed "
            f"per request, `{LENGTH}` posts like the baseline, N clients in closed loop; "
            "posts/s is compared with the baseline's."
        ),
        headers=[
            "clients",
            "requests",
            "posts/s",
            "vs baseline",
            "p50 s",
            "p95 s",
            "p99 s",
            "2xx",
            "5xx",
            "429/503",
            "rejected p50 ms",
            "failed",
            "tokens/s (est.)",
            "mean batch title",
            "mean batch content",
            "mean batch hashtags",
        ],
        rows=rows,
        notes=notes,
    )
    return ScenarioReport(name="graph", tables=[table], series=[series], throughput_unit="posts/s")
