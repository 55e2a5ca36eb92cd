"""Prometheus metrics: the service's own, recorded through Ray, and `/metrics` to read them.

Each replica records into `ray.util.metrics`; Ray's metrics agent on every node aggregates them
with Serve's built-in metrics (request counts, latencies, queue lengths) and exports them all in
Prometheus text on the node's metrics export port. `/metrics` answers with that node's export,
so one scrape through the proxy sees the whole graph on a single machine; on a cluster,
Prometheus scrapes every node's port directly (KubeRay sets this up).
"""

from __future__ import annotations

import httpx
import ray
from ray.util.metrics import Counter, Histogram

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_BATCH_BOUNDARIES = [1, 2, 4, 8, 16, 32, 64]
_STREAM_BOUNDARIES = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40]


class CacheMetrics:
    """Created inside the Ingress and CacheLookup replicas (Ray metrics belong to the process
    using them)."""

    def __init__(self) -> None:
        self.answers = Counter(
            "linkedin_posts_cache_answers",
            description="Posts answered, by cache layer ('miss': generated).",
            tag_keys=("layer",),
        )

    def record(self, layer: str | None) -> None:
        self.answers.inc(tags={"layer": layer or "miss"})


class ModelMetrics:
    """Created inside each model replica."""

    def __init__(self, part: str) -> None:
        self.tags = {"part": part}
        self.batch_size = Histogram(
            "linkedin_posts_batch_size",
            description="Mean rows decoding together over each request's decode steps.",
            boundaries=_BATCH_BOUNDARIES,
            tag_keys=("part",),
        )
        self.tokens = Counter(
            "linkedin_posts_generated_tokens",
            description="New tokens decoded.",
            tag_keys=("part",),
        )

        self.first_piece = Histogram(
            "linkedin_posts_stream_first_piece_seconds",
            description="Streaming: seconds from a part's job reaching its replica to the first "
            "piece of its text sent.",
            boundaries=_STREAM_BOUNDARIES,
            tag_keys=("part",),
        )
        self.piece_gap = Histogram(
            "linkedin_posts_stream_piece_gap_seconds",
            description="Streaming: seconds between two pieces of one part's text.",
            boundaries=_STREAM_BOUNDARIES,
            tag_keys=("part",),
        )

    def record_row(self, mean_batch: int, new_tokens: int) -> None:
        self.batch_size.observe(mean_batch, tags=self.tags)
        self.tokens.inc(new_tokens, tags=self.tags)

    def record_piece(self, seconds: float, *, first: bool) -> None:
        (self.first_piece if first else self.piece_gap).observe(seconds, tags=self.tags)


def _node_metrics_url() -> str:
    node_id = ray.get_runtime_context().get_node_id()
    node = next(n for n in ray.nodes() if n["NodeID"] == node_id)
    return f"http://{node['NodeManagerAddress']}:{node['MetricsExportPort']}/metrics"


class NodeMetrics:
    """Reads this node's Prometheus export (the address is looked up once)."""

    def __init__(self, timeout_s: float = 5) -> None:
        self.timeout_s = timeout_s
        self._url: str | None = None

    async def text(self) -> str:
        if self._url is None:
            self._url = _node_metrics_url()
        async with httpx.AsyncClient(timeout=self.timeout_s, trust_env=False) as client:
            response = await client.get(self._url)
            response.raise_for_status()
            return response.text
