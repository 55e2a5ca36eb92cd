"""Scenarios that compare settings of the graph with each other in one run: batching and dtype
(`tuning`), the router's retry backoff (`router`) and the model deployments' queue limits
(`queues`)."""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Iterator
from typing import Any

from benchmarks.load import LoadRun, Stats
from benchmarks.report import ScenarioReport, Table, fmt_ratio, ratio
from benchmarks.scenarios import (
    LENGTH,
    MODEL_DEPLOYMENTS,
    Context,
    Plan,
    _ms_to_s,
    describe_args,
    generation_load,
    nocache_args,
)

# ---- 6. tuning ---------------------------------------------------------------------------------

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
# batch 8/50 ms, 16/100 ms and bfloat16 (benchmarks/before-tuning/), the shared prefix off and on
# and two threads in every model replica (benchmarks/shared-prefix/), and a preallocated KV cache
# under transformers' generate (benchmarks/kv-cache/).
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


# ---- 7. router backoff -------------------------------------------------------------------------

# Ray Serve's router retries with exponential backoff when every replica of a deployment is at
# max_ongoing_requests; the model deployments reach it at 128 clients. Measured, not guessed.
ROUTER_BACKOFF_ENV = {
    "Ray defaults (0.025 s x2, max 0.5 s)": {},
    "tuned (0.01 s x2, max 0.1 s)": {
        "RAY_SERVE_ROUTER_RETRY_INITIAL_BACKOFF_S": "0.01",
        "RAY_SERVE_ROUTER_RETRY_BACKOFF_MULTIPLIER": "2",
        "RAY_SERVE_ROUTER_RETRY_MAX_BACKOFF_S": "0.1",
    },
}
ROUTER_CLIENTS = 128


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    names = {name for env in ROUTER_BACKOFF_ENV.values() for name in env}
    saved = {name: os.environ.pop(name, None) for name in names}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            os.environ.pop(name, None)
            if value is not None:
                os.environ[name] = value


def router(ctx: Context) -> ScenarioReport:
    """The graph at 128 clients, cache off, under each router backoff setting; Ray is restarted
    for each so every process (proxy and replicas) inherits the variables."""
    args = nocache_args(ctx)
    clients = ROUTER_CLIENTS
    rows: list[list[Any]] = []
    results: dict[str, Stats] = {}
    for label, env in ROUTER_BACKOFF_ENV.items():
        with _environment(env):
            with ctx.step(f"router: restart Ray, {label}"):
                ctx.apps.close()
                url = ctx.apps.deploy(args)
            with ctx.step(f"router: {clients} clients, {label}"):
                stats = generation_load(ctx, url, clients).stats()
            ctx.apps.close()  # the next scenario starts from a Ray without these variables
        results[label] = stats
        rows.append(_overload_row(label, stats))
    default, tuned = (results[label] for label in ROUTER_BACKOFF_ENV)
    table = Table(
        title=f"Router retry backoff at {clients} clients, cache off",
        description=(
            f"POST /v1/posts, `{LENGTH}` posts, cache off, {clients} clients in closed loop, "
            "under Ray's default router backoff and a shorter one (RAY_SERVE_ROUTER_RETRY_*); "
            "Ray restarted for each so every process sees the variables."
        ),
        headers=["backoff", *OVERLOAD_HEADERS],
        rows=rows,
        notes=[
            f"posts/s tuned/default = {fmt_ratio(ratio(tuned.throughput, default.throughput))}, "
            f"p50 tuned/default = {fmt_ratio(ratio(tuned.p50_ms, default.p50_ms))}.",
            describe_args(args),
        ],
    )
    return ScenarioReport(name="router", tables=[table], throughput_unit="posts/s")


# ---- 8. model queues ---------------------------------------------------------------------------

QUEUE_CLIENTS = 128
# (ongoing, queued) requests per model replica.
QUEUE_VARIANTS: dict[str, tuple[int, int]] = {
    "before: 64 ongoing + 256 queued per model replica": (64, 256),
    "16 ongoing + 16 queued per model replica (batches of 16)": (16, 16),
    "now: 32 ongoing + 32 queued per model replica": (32, 32),
}


def queues(ctx: Context) -> ScenarioReport:
    """The graph at 128 clients, cache off, under the model deployments' old and new admission
    limits, one after the other in the same run: 504s after the request timeout, or fast 503s."""
    variants = {
        label: {"deployments": _model_queues(*limits)} for label, limits in QUEUE_VARIANTS.items()
    }
    rows: list[list[Any]] = []
    described: list[str] = []
    for label, args, run in _each_variant(ctx, "queues", variants, QUEUE_CLIENTS):
        described.append(f"{label}: " + describe_args(args))
        rows.append(_overload_row(label, run.stats()))
    table = Table(
        title=f"Model queue limits at {QUEUE_CLIENTS} clients, cache off: before and after",
        description=(
            f"POST /v1/posts, `{LENGTH}` posts, cache off, {QUEUE_CLIENTS} clients in closed "
            "loop; the model deployments admit the given requests per replica and answer the "
            "rest at once with 503 + Retry-After."
        ),
        headers=["model queue limits", *OVERLOAD_HEADERS],
        rows=rows,
        notes=described,
    )
    return ScenarioReport(name="queues", tables=[table], throughput_unit="posts/s")


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


SETTINGS_SCENARIOS: dict[str, Callable[[Context], ScenarioReport]] = {
    "tuning": tuning,
    "router": router,
    "queues": queues,
}
SETTINGS_STEPS: dict[str, Callable[[Plan], int]] = {
    "tuning": lambda p: 2 * len(TUNING_VARIANTS),
    "router": lambda p: 2 * len(ROUTER_BACKOFF_ENV),
    "queues": lambda p: 2 * len(QUEUE_VARIANTS),
}
