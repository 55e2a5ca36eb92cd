"""router: the graph at 128 clients, cache off, under Ray Serve's default router retry backoff
and a shorter one; Ray is restarted for each."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from benchmarks.context import Context
from benchmarks.load import Stats
from benchmarks.report import ScenarioReport, Table, fmt_ratio, ratio
from benchmarks.scenarios.common import (
    LENGTH,
    OVERLOAD_HEADERS,
    _overload_row,
    describe_args,
    generation_load,
    nocache_args,
)

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
