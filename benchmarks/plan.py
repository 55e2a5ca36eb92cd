"""The sizes and time budgets of a run: `FULL` (what RESULTS.md is measured with) and `QUICK`
(`--quick`, a smoke test). Scenarios read their plan from `Context.plan`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Plan:
    """Sizes and time budgets; every load run has a request cap and a hard time limit."""

    baseline_posts: int
    baseline_budget_s: float
    graph_levels: tuple[int, ...]
    graph_duration_s: float
    graph_requests_base: int  # a level sends at most base + 3 x clients requests
    graph_drain_s: float  # in-flight requests get this long after the duration, then cancelled
    batch_requests: int
    batch_rounds: int
    batch_budget_s: float
    cache_levels: tuple[int, ...]
    cache_duration_s: float
    cache_max_requests: int
    prefill_posts: int
    zipf_topics: int
    zipf_s: float
    zipf_requests: int
    zipf_concurrency: int
    zipf_budget_s: float
    handle_levels: tuple[int, ...]
    handle_duration_s: float
    nocache_requests: int
    nocache_concurrency: int
    nocache_budget_s: float
    stream_levels: tuple[int, ...]
    stream_duration_s: float  # each endpoint at each level sends for this long
    stream_rounds: int  # every level, both endpoints, the order alternating per round
    peers: tuple[str, ...]  # the peers measured beside the service: llama.cpp, vllm
    peers_levels: tuple[int, ...]
    peers_single_s: float  # each system sends this long at 1 client
    peers_many_s: float  # and at the other levels
    peers_rounds: int  # every system at every level, the order rotating per round
    peers_service_before: bool  # the service under BEFORE_ARGS too, in the same rounds


FULL = Plan(
    baseline_posts=16,
    baseline_budget_s=240,
    graph_levels=(1, 8, 32, 64, 128),
    graph_duration_s=60,
    graph_requests_base=20,
    graph_drain_s=600,  # a level ends when its last answer does; this only caps a stall
    batch_requests=16,
    batch_rounds=2,
    batch_budget_s=300,
    cache_levels=(1, 8, 32, 128),
    cache_duration_s=15,
    cache_max_requests=50_000,
    prefill_posts=8,
    zipf_topics=200,
    zipf_s=1.1,
    zipf_requests=400,
    zipf_concurrency=8,
    zipf_budget_s=300,
    handle_levels=(1, 8, 32, 128),
    handle_duration_s=15,
    nocache_requests=24,
    nocache_concurrency=8,
    nocache_budget_s=180,
    stream_levels=(1, 8, 32),
    stream_duration_s=90,
    stream_rounds=3,
    peers=("llama.cpp", "vllm"),
    peers_levels=(1, 32),
    peers_single_s=60,
    peers_many_s=120,
    peers_rounds=3,
    peers_service_before=True,
)

QUICK = Plan(
    baseline_posts=2,
    baseline_budget_s=90,
    graph_levels=(1, 8),
    graph_duration_s=8,
    graph_requests_base=2,
    graph_drain_s=90,
    batch_requests=8,
    batch_rounds=1,
    batch_budget_s=120,
    cache_levels=(1, 8),
    cache_duration_s=2,
    cache_max_requests=5_000,
    prefill_posts=4,
    zipf_topics=200,
    zipf_s=1.1,
    zipf_requests=24,
    zipf_concurrency=4,
    zipf_budget_s=60,
    handle_levels=(1, 8),
    handle_duration_s=2,
    nocache_requests=4,
    nocache_concurrency=4,
    nocache_budget_s=60,
    stream_levels=(1, 4),
    stream_duration_s=8,
    stream_rounds=1,
    peers=("llama.cpp",),
    peers_levels=(1, 4),
    peers_single_s=8,
    peers_many_s=8,
    peers_rounds=1,
    peers_service_before=True,
)
