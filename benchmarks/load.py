"""Closed-loop load generation (asyncio) and the statistics reported for it.

`closed_loop` runs N concurrent clients, each sending its next request as soon as the previous
one is answered, until a duration or a request count runs out; a hard limit cancels whatever is
still in flight, so a run always ends. Senders are plain `async (index) -> Outcome` functions:
over HTTP with one shared `httpx.AsyncClient`, or through a Serve handle.
"""

from __future__ import annotations

import asyncio
import bisect
import math
import random
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

TRANSPORT_ERROR = 0  # no HTTP status: connection refused/reset, client timeout
UNFINISHED = -1  # still in flight when the run's hard limit cancelled it
REJECTION_STATUSES = frozenset({429, 503})


@dataclass(frozen=True)
class Outcome:
    """What one request returned: an HTTP status (or a sentinel) and anything worth keeping."""

    status: int
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Record:
    index: int
    latency_s: float
    status: int
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


Send = Callable[[int], Awaitable[Outcome]]


@dataclass(frozen=True)
class Stats:
    concurrency: int
    requests: int
    ok: int
    errors_5xx: int  # 5xx other than 503
    rejected: int  # 429 and 503
    failed: int  # transport errors and requests cut off by the hard limit
    wall_s: float
    throughput: float  # successful requests per second of wall time
    p50_ms: float
    p95_ms: float
    p99_ms: float
    reject_p50_ms: float  # how fast rejections were answered

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class LoadRun:
    concurrency: int
    wall_s: float
    records: list[Record]

    def stats(self) -> Stats:
        return summarize(self.records, self.wall_s, self.concurrency)

    def ok_records(self) -> list[Record]:
        return [r for r in self.records if r.ok]


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) with linear interpolation between closest ranks (NumPy's
    default); NaN for no values."""
    if not values:
        return math.nan
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be in [0, 100], got {q}")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def median(values: Sequence[float]) -> float:
    """The median of the values that are numbers (NaN left out); NaN for none."""
    present = [v for v in values if not math.isnan(v)]
    return statistics.median(present) if present else math.nan


def throughput(count: int, wall_s: float) -> float:
    return count / wall_s if wall_s > 0 else math.nan


def summarize(records: Sequence[Record], wall_s: float, concurrency: int) -> Stats:
    ok_ms = [r.latency_s * 1000 for r in records if r.ok]
    rejected_ms = [r.latency_s * 1000 for r in records if r.status in REJECTION_STATUSES]
    ok = len(ok_ms)
    return Stats(
        concurrency=concurrency,
        requests=len(records),
        ok=ok,
        errors_5xx=sum(1 for r in records if 500 <= r.status < 600 and r.status != 503),
        rejected=len(rejected_ms),
        failed=sum(1 for r in records if r.status in (TRANSPORT_ERROR, UNFINISHED)),
        wall_s=wall_s,
        throughput=throughput(ok, wall_s),
        p50_ms=percentile(ok_ms, 50),
        p95_ms=percentile(ok_ms, 95),
        p99_ms=percentile(ok_ms, 99),
        reject_p50_ms=percentile(rejected_ms, 50),
    )


async def closed_loop(
    send: Send,
    *,
    concurrency: int,
    duration_s: float,
    max_requests: int,
    hard_limit_s: float,
) -> LoadRun:
    """`concurrency` clients in closed loop: no new request starts after `duration_s` or once
    `max_requests` have started; anything still running at `hard_limit_s` is cancelled and
    recorded as UNFINISHED. Wall time runs from the first send to the last answer."""
    if concurrency < 1 or max_requests < 1:
        raise ValueError("concurrency and max_requests must be at least 1")
    started = time.perf_counter()
    deadline = started + duration_s
    records: list[Record] = []
    issued = 0

    async def client() -> None:
        nonlocal issued
        while issued < max_requests and time.perf_counter() < deadline:
            index = issued
            issued += 1
            sent = time.perf_counter()
            try:
                outcome = await send(index)
            except asyncio.CancelledError:
                records.append(Record(index, time.perf_counter() - sent, UNFINISHED))
                raise
            except Exception as exc:
                outcome = Outcome(TRANSPORT_ERROR, {"error": type(exc).__name__})
            records.append(Record(index, time.perf_counter() - sent, outcome.status, outcome.info))

    tasks = [asyncio.ensure_future(client()) for _ in range(min(concurrency, max_requests))]
    _, pending = await asyncio.wait(tasks, timeout=hard_limit_s)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    return LoadRun(concurrency, time.perf_counter() - started, records)


def http_client(concurrency: int, timeout_s: float) -> httpx.AsyncClient:
    """One client for a whole load run, with a connection per concurrent client; never takes
    proxies from the environment (all traffic here is loopback)."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    return httpx.AsyncClient(limits=limits, timeout=timeout_s, trust_env=False)


def http_post_sender(
    client: httpx.AsyncClient,
    url: str,
    body_for: Callable[[int], dict[str, Any]],
    parse: Callable[[Any], dict[str, Any]] | None = None,
) -> Send:
    """POST `body_for(index)` as JSON; `parse` turns a 2xx JSON body into the record's info."""

    async def send(index: int) -> Outcome:
        response = await client.post(url, json=body_for(index))
        info: dict[str, Any] = {}
        if parse is not None and 200 <= response.status_code < 300:
            info = parse(response.json())
        return Outcome(response.status_code, info)

    return send


def zipf_weights(n_items: int, s: float) -> list[float]:
    """Unnormalised Zipf weights 1/k^s for ranks k = 1..n_items."""
    if n_items < 1:
        raise ValueError("n_items must be at least 1")
    return [1 / (k**s) for k in range(1, n_items + 1)]


def zipf_sample(n_items: int, s: float, count: int, seed: int) -> list[int]:
    """`count` item indices (0 = most popular) drawn from Zipf(s) over `n_items`; the same
    arguments always give the same sequence."""
    cumulative: list[float] = []
    total = 0.0
    for weight in zipf_weights(n_items, s):
        total += weight
        cumulative.append(total)
    rng = random.Random(seed)
    return [
        min(bisect.bisect_right(cumulative, rng.random() * total), n_items - 1)
        for _ in range(count)
    ]
