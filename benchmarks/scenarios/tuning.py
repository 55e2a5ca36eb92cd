"""tuning: the graph at 32 clients, cache off, under the service's settings and under changed
batching, sampling, threads and dtype, one variant after another in the same run. Also the
variant machinery that `queues` reuses."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from benchmarks.context import Context
from benchmarks.load import LoadRun
from benchmarks.report import ScenarioReport, Table, fmt_ratio, ratio
from benchmarks.scenarios.common import (
    LENGTH,
    MODEL_DEPLOYMENTS,
    _ms_to_s,
    describe_args,
    generation_load,
    nocache_args,
)

TUNING_CLIENTS = 32


def _model_queues(ongoing: int, queued: int, content_threads: int | None = None) -> dict:
    """The three model deployments' queue limits (and the ContentModel's torch threads)."""
    # The autoscaling target stays below the cap (the settings refuse it otherwise); with one
    # replica per model here it only has to be valid.
    queues = {
        "max_ongoing_requests": ongoing,
        "max_queued_requests": queued,
        "target_ongoing_requests": max(1, ongoing // 2),
    }
    options = {name: dict(queues) for name in MODEL_DEPLOYMENTS.values()}
    if content_threads:
        options["ContentModel"]["torch_threads"] = content_threads
    return options


# The sampling of prompt version 4, and the one before it (the penalty covered the prompt too).
SAMPLING = {"repetition_penalty": 1.05, "penalize_prompt_tokens": False}
SAMPLING_V3 = {"repetition_penalty": 1.15, "penalize_prompt_tokens": True}


def _variant(
    rows: int,
    continuous: bool,
    quantization: str = "none",
    content_threads: int | None = None,
    sampling: dict[str, Any] = SAMPLING,
) -> dict:
    return {
        "batching": {
            "max_batch_size": rows,
            "batch_wait_timeout_s": 0.01,
            "continuous": continuous,
        },
        "model": {"dtype": "float32", "quantization": quantization},
        "generation": {"shared_prefix_min_tokens": 16, **sampling},
        # A replica decodes `rows` requests and holds as many more waiting to join.
        "deployments": _model_queues(rows, rows, content_threads),
    }


# Spelled out rather than {}: the labels stay true when the defaults change. Earlier runs compared
# batch 8/50 ms, 16/100 ms and bfloat16 (benchmarks/results/2026-11-23-before-tuning/), the shared
# prefix off and on and two threads in every model replica
# (benchmarks/results/2026-11-23-shared-prefix/), and a preallocated KV cache under transformers'
# generate (benchmarks/results/2026-11-23-kv-cache/).
TUNING_VARIANTS: dict[str, dict[str, Any]] = {
    "fixed batches of 32 (rows join only an empty batch)": _variant(32, continuous=False),
    "continuous batching, 32 rows": _variant(32, continuous=True),
    "continuous batching, 32 rows, penalty 1.15 on the prompt too (before v4)": _variant(
        32, continuous=True, sampling=SAMPLING_V3
    ),
    "continuous batching, 32 rows, ContentModel 2 torch threads": _variant(
        32, continuous=True, content_threads=2
    ),
    "continuous batching, 32 rows, int8": _variant(32, continuous=True, quantization="int8"),
}


def _each_variant(
    ctx: Context, scenario: str, variants: dict[str, dict[str, Any]], clients: int
) -> Iterator[tuple[str, dict[str, Any], LoadRun]]:
    """For each variant, one after another: the graph (cache off) with the variant's settings
    over the defaults, and `clients` clients asking for fresh posts."""
    for label, changes in variants.items():
        args = {**nocache_args(ctx), **changes}
        with ctx.step(f"{scenario}: start Serve, {label}"):
            url = ctx.apps.deploy(args)
        with ctx.step(f"{scenario}: {clients} clients, {label}"):
            run = generation_load(ctx, url, clients)
        yield label, args, run


def tuning(ctx: Context) -> ScenarioReport:
    """Before/after rows: the graph at 32 clients (cache off) under the service's defaults and
    under changed batching and dtype, one after another in the same run."""
    base = ctx.baseline.headline.get("posts_per_s", math.nan) if ctx.baseline else math.nan
    rows: list[list[Any]] = []
    described: list[str] = []
    for label, args, run in _each_variant(ctx, "tuning", TUNING_VARIANTS, TUNING_CLIENTS):
        described.append(f"{label}: " + describe_args(args))
        stats = run.stats()
        tokens = ctx.count_tokens([r.info["text"] for r in run.ok_records()])
        rows.append(
            [
                label,
                stats.requests,
                stats.throughput,
                fmt_ratio(ratio(stats.throughput, base)),
                _ms_to_s(stats.p50_ms),
                _ms_to_s(stats.p95_ms),
                stats.ok,
                stats.errors_5xx + stats.rejected + stats.failed,
                tokens / stats.wall_s,
            ]
        )
    table = Table(
        title=f"Tuning at {TUNING_CLIENTS} clients, cache off: before and after",
        description=(
            f"POST /v1/posts, `{LENGTH}` posts, cache off, {TUNING_CLIENTS} clients in closed "
            "loop, one variant of the settings after another in the same run."
        ),
        headers=[
            "variant",
            "requests",
            "posts/s",
            "vs baseline",
            "p50 s",
            "p95 s",
            "2xx",
            "not 2xx",
            "tokens/s (est.)",
        ],
        rows=rows,
        notes=described,
    )
    return ScenarioReport(name="tuning", tables=[table], throughput_unit="posts/s")
