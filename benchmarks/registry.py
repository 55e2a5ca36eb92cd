"""The scenarios by name, in the order a run takes them, with the progress steps each reports.

The order matters: `graph` and `tuning` compare with the baseline's posts/s when `baseline` ran
first in the same run. Names are the CLI's (`python -m benchmarks graph cache`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from benchmarks.context import Context
from benchmarks.plan import Plan
from benchmarks.report import ScenarioReport
from benchmarks.scenarios import (
    baseline,
    batch,
    cache,
    graph,
    handle,
    peers,
    quality,
    queues,
    router,
    streaming,
    tuning,
)


@dataclass(frozen=True)
class Scenario:
    """A scenario as the runner sees it: what to call, and how far it moves the progress bar."""

    run: Callable[[Context], ScenarioReport]
    # How many `ctx.step`s the scenario takes under a plan: the progress bar's total.
    steps: Callable[[Plan], int]


SCENARIOS: dict[str, Scenario] = {
    "baseline": Scenario(baseline.baseline, lambda p: 1 + 2 * p.baseline_posts),
    "graph": Scenario(graph.graph, lambda p: 1 + len(p.graph_levels)),
    "batch": Scenario(batch.batch, lambda p: 1 + 2 * p.batch_rounds),
    # two deployments, then Zipf
    "cache": Scenario(cache.cache, lambda p: 2 * (2 + 2 * len(p.cache_levels)) + 1),
    "handle": Scenario(handle.handle, lambda p: 1 + 2 * len(p.handle_levels) + 2),
    "quality": Scenario(quality.run, lambda p: quality.STEP_COUNT),
    "tuning": Scenario(tuning.tuning, lambda p: 2 * len(tuning.TUNING_VARIANTS)),
    "router": Scenario(router.router, lambda p: 2 * len(router.ROUTER_BACKOFF_ENV)),
    "queues": Scenario(queues.queues, lambda p: 2 * len(queues.QUEUE_VARIANTS)),
    # start-up, llama.cpp, vLLM when asked, then every system at every level in every round
    "peers": Scenario(
        peers.peers,
        lambda p: (
            2 + ("vllm" in p.peers) + (1 + len(p.peers)) * len(p.peers_levels) * p.peers_rounds
        ),
    ),
    "streaming": Scenario(
        streaming.streaming, lambda p: 1 + 2 * len(p.stream_levels) * p.stream_rounds
    ),
}
