"""streaming: POST /v1/posts/stream against POST /v1/posts, cache off, at rising concurrency,
in the same run: time to first byte, time to the first written piece, time to the finished post,
and what streaming costs in posts/s.

Each round runs every level twice, once per endpoint, the order alternating between rounds so
that neither endpoint always meets a warmer or a more tired machine; the summary takes medians
over rounds.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from benchmarks.context import Context
from benchmarks.load import Outcome, Record, Send, http_client, median, percentile
from benchmarks.report import ScenarioReport, Table, fmt_ratio, ratio, records_table
from benchmarks.scenarios.common import (
    LENGTH,
    deploy_warm,
    describe_args,
    fresh_post_load,
    nocache_args,
    run_load,
)
from benchmarks.workload import request_body

PARTS = ("title", "content", "hashtags")
# The error envelope names its status by code; a stream's `error` event carries only the code.
_CODE_STATUS = {"overloaded": 503, "timeout": 504, "rate_limited": 429, "invalid_request": 422}
STREAM_COST_LIMIT = 0.95  # streamed posts/s at the top level over unstreamed: the bound
MODES = ("unstreamed", "streamed")


@dataclass(frozen=True)
class Timing:
    """When one answer's first byte, first written piece (streamed only) and end arrived,
    in seconds after the request was sent."""

    first_byte_s: float
    first_piece_s: float | None
    done_s: float


def parse_sse(buffer: str) -> tuple[list[tuple[str, str]], str]:
    """The complete events in `buffer` as (event, data) pairs, and what is left of it."""
    events: list[tuple[str, str]] = []
    while "\n\n" in buffer:
        block, buffer = buffer.split("\n\n", 1)
        name, data = "message", ""
        for line in block.split("\n"):
            if line.startswith("event: "):
                name = line[len("event: ") :]
            elif line.startswith("data: "):
                data = line[len("data: ") :]
        events.append((name, data))
    return events, buffer


def _stream_sender(
    client: httpx.AsyncClient, url: str, body_for: Callable[[int], dict[str, Any]]
) -> Send:
    """Reads `url`'s answer as it arrives: unstreamed, the JSON post; streamed, server-sent
    events until `post` or `error`. The Outcome carries the Timing."""

    async def send(index: int) -> Outcome:
        sent = time.perf_counter()
        first_byte: float | None = None
        first_piece: float | None = None
        status = 0
        body = b""
        buffer = ""
        async with client.stream("POST", url, json=body_for(index)) as response:
            status = response.status_code
            streamed = response.headers.get("content-type", "").startswith("text/event-stream")
            async for chunk in response.aiter_raw():
                if first_byte is None:
                    first_byte = time.perf_counter() - sent
                if not streamed:
                    body += chunk
                    continue
                events, buffer = parse_sse(buffer + chunk.decode())
                for name, data in events:
                    if name in PARTS and first_piece is None:
                        first_piece = time.perf_counter() - sent
                    elif name == "error":
                        code = json.loads(data)["error"]["code"]
                        status = _CODE_STATUS.get(code, 500)
        done = time.perf_counter() - sent
        if status == 200 and streamed and first_piece is None:
            status = 0  # a stream of a fresh post with no piece is a failure of this benchmark
        timing = Timing(first_byte if first_byte is not None else done, first_piece, done)
        return Outcome(status, {"timing": timing})

    return send


def _load(ctx: Context, url: str, path: str, clients: int) -> tuple[list[Record], float]:
    load = fresh_post_load(ctx, clients, ctx.plan.stream_duration_s)
    seeds = [ctx.next_seed() for _ in range(load.max_requests)]

    def body_for(i: int) -> dict[str, Any]:
        return request_body(i, seeds[i], length=LENGTH, use_cache=False)

    @contextlib.asynccontextmanager
    async def factory() -> Any:
        async with http_client(clients, load.hard_limit_s) as client:
            yield _stream_sender(client, f"{url}{path}", body_for)

    run = run_load(factory, load)
    return run.records, run.wall_s


@dataclass
class ModeRun:
    """One endpoint at one level in one round."""

    round: int
    clients: int
    mode: str
    requests: int
    ok: int
    other: int  # answers other than 200 with a post: 5xx, 429/503, failed
    posts_per_s: float
    first_byte_p50_s: float
    first_byte_p95_s: float
    first_piece_p50_s: float
    first_piece_p95_s: float
    done_p50_s: float
    done_p95_s: float


def _mode_run(
    round_: int, clients: int, mode: str, records: list[Record], wall_s: float
) -> ModeRun:
    ok = [r.info["timing"] for r in records if r.status == 200]
    first_byte = [t.first_byte_s for t in ok]
    first_piece = [t.first_piece_s for t in ok if t.first_piece_s is not None]
    done = [t.done_s for t in ok]
    return ModeRun(
        round=round_,
        clients=clients,
        mode=mode,
        requests=len(records),
        ok=len(ok),
        other=len(records) - len(ok),
        posts_per_s=len(ok) / wall_s if wall_s > 0 else float("nan"),
        first_byte_p50_s=percentile(first_byte, 50),
        first_byte_p95_s=percentile(first_byte, 95),
        first_piece_p50_s=percentile(first_piece, 50),
        first_piece_p95_s=percentile(first_piece, 95),
        done_p50_s=percentile(done, 50),
        done_p95_s=percentile(done, 95),
    )


def metric_counts(text: str) -> dict[str, float]:
    """The stream histograms' sample counts in Prometheus text (summed over labels)."""
    counts: dict[str, float] = {}
    for name in ("first_piece", "piece_gap"):
        metric = f"linkedin_posts_stream_{name}_seconds_count"
        # Ray's export prefixes the application's metrics with `ray_`.
        pattern = re.compile(rf"^(?:ray_)?{metric}(?:{{[^}}]*}})? (\S+)$", re.MULTILINE)
        counts[metric] = sum(float(value) for value in pattern.findall(text))
    return counts


def streaming(ctx: Context) -> ScenarioReport:
    plan = ctx.plan
    args = nocache_args(ctx)
    with ctx.step("streaming: start Serve (cache off)"):
        url = deploy_warm(ctx, args, ("/v1/posts", "/v1/posts/stream"))

    paths = {"unstreamed": "/v1/posts", "streamed": "/v1/posts/stream"}
    runs: list[ModeRun] = []
    for round_ in range(plan.stream_rounds):
        order = MODES if round_ % 2 == 0 else MODES[::-1]
        for clients in plan.stream_levels:
            for mode in order:
                with ctx.step(f"streaming: round {round_ + 1}, {clients} clients, {mode}"):
                    records, wall_s = _load(ctx, url, paths[mode], clients)
                runs.append(_mode_run(round_ + 1, clients, mode, records, wall_s))
    metrics = httpx.get(f"{url}/metrics", timeout=30, trust_env=False)
    counts = metric_counts(metrics.text)
    return ScenarioReport(
        name="streaming",
        tables=[_summary_table(plan.stream_levels, runs, args, counts), _runs_table(runs)],
        throughput_unit="posts/s",
    )


def _summary_table(
    levels: tuple[int, ...], runs: list[ModeRun], args: dict[str, Any], counts: dict[str, float]
) -> Table:
    rows: list[list[Any]] = []
    cost_at_top: float = float("nan")
    for clients in levels:
        per_mode = {
            mode: [r for r in runs if r.clients == clients and r.mode == mode] for mode in MODES
        }
        posts = {mode: median([r.posts_per_s for r in per_mode[mode]]) for mode in MODES}
        for mode in MODES:
            chosen = per_mode[mode]
            rows.append(
                [
                    clients,
                    mode,
                    len(chosen),
                    sum(r.ok for r in chosen),
                    sum(r.other for r in chosen),
                    posts[mode],
                    fmt_ratio(ratio(posts[mode], posts["unstreamed"])),
                    median([r.first_byte_p50_s for r in chosen]),
                    median([r.first_byte_p95_s for r in chosen]),
                    median([r.first_piece_p50_s for r in chosen]),
                    median([r.first_piece_p95_s for r in chosen]),
                    median([r.done_p50_s for r in chosen]),
                    median([r.done_p95_s for r in chosen]),
                ]
            )
        if clients == max(levels):
            cost_at_top = ratio(posts["streamed"], posts["unstreamed"])
    top = max(levels)
    verdict = "met" if cost_at_top >= STREAM_COST_LIMIT else "NOT met"
    notes = [
        f"At {top} clients streaming makes {fmt_ratio(cost_at_top)} the posts/s of POST /v1/posts "
        f"(median over rounds; the bound is ≥ {STREAM_COST_LIMIT:.2f}x): {verdict}.",
        "first byte: the first bytes of the answer's body (unstreamed, that is the whole post; "
        "streamed, the `meta` event). first piece: the first `title`, `content` or `hashtags` "
        "event, the first words a user sees. done: the last byte (the `post` event).",
        "Every figure is the median over rounds of that round's percentile.",
        f"The service's /metrics after the run: {json.dumps(counts)}.",
        describe_args(args),
    ]
    return Table(
        title="Streamed and unstreamed posts, cache off: medians over rounds",
        description=(
            f"POST /v1/posts and POST /v1/posts/stream with `use_cache: false`, `{LENGTH}` posts, "
            "a distinct seed per request, N clients in closed loop; both endpoints at each level "
            "in every round, the order alternating between rounds."
        ),
        headers=[
            "clients",
            "endpoint",
            "rounds",
            "2xx",
            "other",
            "posts/s",
            "vs unstreamed",
            "first byte p50 s",
            "first byte p95 s",
            "first piece p50 s",
            "first piece p95 s",
            "done p50 s",
            "done p95 s",
        ],
        rows=rows,
        notes=notes,
    )


RUN_COLUMNS = (
    ("round", "round"),
    ("clients", "clients"),
    ("endpoint", "mode"),
    ("requests", "requests"),
    ("2xx", "ok"),
    ("other", "other"),
    ("posts/s", "posts_per_s"),
    ("first byte p50 s", "first_byte_p50_s"),
    ("first piece p50 s", "first_piece_p50_s"),
    ("done p50 s", "done_p50_s"),
    ("done p95 s", "done_p95_s"),
)


def _runs_table(runs: list[ModeRun]) -> Table:
    return records_table(
        "Every run",
        "Each endpoint at each level in each round, in the order they ran.",
        runs,
        RUN_COLUMNS,
    )
