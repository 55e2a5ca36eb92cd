"""batch: POST /v1/posts/batch with N requests against N concurrent POST /v1/posts."""

from __future__ import annotations

import math
import statistics
import time
from typing import Any

import httpx

from benchmarks.context import Context
from benchmarks.report import ScenarioReport, Table, fmt_ratio, ratio
from benchmarks.scenarios.common import (
    LENGTH,
    Load,
    describe_args,
    http_target,
    nocache_args,
    run_load,
)
from benchmarks.workload import request_body


def batch(ctx: Context) -> ScenarioReport:
    plan = ctx.plan
    count = plan.batch_requests
    args = nocache_args(ctx)
    with ctx.step("batch: start Serve (cache off)"):
        url = ctx.apps.deploy(args)
    seeds = [ctx.next_seed() for _ in range(count)]
    bodies = [request_body(i, seeds[i], length=LENGTH, use_cache=False) for i in range(count)]

    def singles() -> tuple[float, int]:
        load = Load(count, plan.batch_budget_s, count, plan.batch_budget_s)
        run = run_load(
            http_target(f"{url}/v1/posts", bodies.__getitem__, count, plan.batch_budget_s), load
        )
        return run.wall_s, run.stats().ok

    def one_batch() -> tuple[float, int]:
        with httpx.Client(timeout=plan.batch_budget_s, trust_env=False) as client:
            started = time.perf_counter()
            response = client.post(f"{url}/v1/posts/batch", json={"requests": bodies})
            wall = time.perf_counter() - started
        ok = len(response.json()["posts"]) if response.status_code == 200 else 0
        return wall, ok

    rows: list[list[Any]] = []
    walls: dict[str, list[float]] = {"singles": [], "batch": []}
    for round_index in range(plan.batch_rounds):
        order = [("singles", singles), ("batch", one_batch)]
        if round_index % 2:
            order.reverse()
        for mode, measure in order:
            with ctx.step(f"batch: round {round_index + 1}, {mode}"):
                wall, ok = measure()
            walls[mode].append(wall)
            label = (
                f"{count} concurrent POST /v1/posts"
                if mode == "singles"
                else (f"1 POST /v1/posts/batch of {count}")
            )
            rows.append([round_index + 1, label, ok, wall, ok / wall if wall > 0 else math.nan])
    singles_s = statistics.median(walls["singles"])
    batch_s = statistics.median(walls["batch"])
    table = Table(
        title=f"One batch request against {count} single requests",
        description=(
            f"The same {count} `{LENGTH}` requests (same seeds, cache off) sent as one "
            f"POST /v1/posts/batch and as {count} concurrent POST /v1/posts, in alternating "
            "order per round; wall time from first send to last answer."
        ),
        headers=["round", "how", "posts ok", "wall s", "posts/s"],
        rows=rows,
        notes=[
            f"Median wall time: singles {singles_s:.2f} s, batch {batch_s:.2f} s; the batch "
            f"takes {fmt_ratio(ratio(batch_s, singles_s))} the singles' time "
            f"(singles/batch = {fmt_ratio(ratio(singles_s, batch_s))}).",
            describe_args(args),
        ],
    )
    return ScenarioReport(name="batch", tables=[table], throughput_unit="posts/s")
