"""Prometheus metrics: the service's own, recorded through Ray, and `/metrics` to read them.

Each replica records into `ray.util.metrics`; Ray's metrics agent on every node aggregates them
with Serve's built-in metrics (request counts, latencies, queue lengths) and exports them all in
Prometheus text on the node's metrics export port. `/metrics` answers with that node's export,
so one scrape through the proxy sees the whole graph on a single machine; on a cluster,
Prometheus scrapes every node's port directly (KubeRay sets this up).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

import httpx
import ray
from ray.serve.metrics import Gauge
from ray.util.metrics import Counter, Histogram

if TYPE_CHECKING:
    from deployments.cache.tiered import TieredCache
    from deployments.engine.decode_loop import EngineLoad
    from deployments.schemas import GenerationResult

logger = logging.getLogger("ray.serve")

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_BATCH_BOUNDARIES = [1, 2, 4, 8, 16, 32, 64]
_STREAM_BOUNDARIES = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40]
# Queue wait, prefill and the first token: from milliseconds (idle) to minutes (shed soon after).
_WAIT_BOUNDARIES = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120]
_TOKEN_BOUNDARIES = [0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28]


class KeptGauges:
    """Ray exports a gauge only for a while after it was last set (measured: a value set once was
    gone from the export within 40 s), so every gauge here goes through `set`, and a daemon
    thread sets each last value again every `interval_s`: a replica's settings, load and Redis
    state stay visible while nothing changes them."""

    def __init__(self, interval_s: float = 5.0) -> None:
        self.interval_s = interval_s
        self._values: dict[tuple[int, tuple[tuple[str, str], ...]], tuple[Any, float]] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def set(self, gauge: Any, value: float, tags: dict[str, str] | None = None) -> None:
        key = (id(gauge), tuple(sorted((tags or {}).items())))
        with self._lock:
            self._values[key] = (gauge, value)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="kept-gauges", daemon=True)
                self._thread.start()
        gauge.set(value, tags=tags)

    def _run(self) -> None:
        while True:
            time.sleep(self.interval_s)
            with self._lock:
                values = [
                    (gauge, value, dict(tags)) for (_, tags), (gauge, value) in self._values.items()
                ]
            for gauge, value, tags in values:
                try:
                    gauge.set(value, tags=tags or None)
                except Exception:  # a metric's failure is no reason to stop the others
                    logger.exception("setting a gauge again failed")


KEPT = KeptGauges()  # one per process


class CacheMetrics:
    """Created inside the Ingress and CacheLookup replicas (Ray metrics belong to the process
    using them)."""

    def __init__(self) -> None:
        self.answers = Counter(
            "linkedin_posts_cache_answers",
            description="Posts answered, by cache layer ('miss': generated).",
            tag_keys=("layer",),
        )
        self.followers = Counter(
            "linkedin_posts_singleflight_followers",
            description="Cache misses that did not generate but waited for another's generation, "
            "by outcome (same_process: joined a generation in this replica; other_process: "
            "another replica's result arrived; gave_up: waited follower_wait_s, then generated).",
            tag_keys=("outcome",),
        )
        self.refreshes = Counter(
            "linkedin_posts_cache_refreshes",
            description="Refresh-ahead attempts on popular entries near expiry, by outcome "
            "(rewritten; skipped: another replica had it; failed).",
            tag_keys=("outcome",),
        )

        self.redis_up = Gauge(
            "linkedin_posts_redis_up",
            description="1 while this replica's Redis (L2) answers, 0 while it is down.",
        )
        self.redis_outages = Counter(
            "linkedin_posts_redis_outages",
            description="Times this replica found Redis (L2) down after it had answered.",
        )
        self.redis_reconnects = Counter(
            "linkedin_posts_redis_reconnects",
            description="Times Redis (L2) answered this replica again after it had been down.",
        )
        self._redis_was_down = False

    def record(self, layer: str | None) -> None:
        self.answers.inc(tags={"layer": layer or "miss"})

    def record_follower(self, outcome: str) -> None:
        self.followers.inc(tags={"outcome": outcome})

    def record_refresh(self, outcome: str) -> None:
        self.refreshes.inc(tags={"outcome": outcome})

    def record_redis(self, up: bool) -> None:
        """RedisLayer.on_state: a change of Redis's state (the first answer included)."""
        KEPT.set(self.redis_up, 1 if up else 0)
        if not up:
            self.redis_outages.inc()
        elif self._redis_was_down:
            self.redis_reconnects.inc()
        self._redis_was_down = not up

    def watch(self, cache: TieredCache | None) -> None:
        """Hear a TieredCache's Redis layer change state, its single-flight followers and its
        refreshes (None: the Ingress with the cache off, or no shared layer: nothing to hear)."""
        if cache is None:
            return
        cache.single_flight.on_follow = self.record_follower
        cache.on_refresh = self.record_refresh
        if cache.l2 is not None:
            cache.l2.on_state = self.record_redis


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
        self.prompt_tokens = Counter(
            "linkedin_posts_prompt_tokens",
            description="Prompt tokens of the jobs decoded (a prefix reused from memory included).",
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

        self.queue_wait = self._seconds(
            "linkedin_posts_queue_wait_seconds",
            "seconds a job waited for a place in the running batch",
            _WAIT_BOUNDARIES,
        )
        self.prefill = self._seconds(
            "linkedin_posts_prefill_seconds",
            "seconds a job's prompt took through the model",
            _WAIT_BOUNDARIES,
        )
        self.decode = self._seconds(
            "linkedin_posts_decode_seconds",
            "seconds a job decoded, from its first token to its last",
            _WAIT_BOUNDARIES,
        )
        self.first_token = self._seconds(
            "linkedin_posts_time_to_first_token_seconds",
            "seconds from a job reaching its replica to its first token",
            _WAIT_BOUNDARIES,
        )
        self.per_token = self._seconds(
            "linkedin_posts_time_per_output_token_seconds",
            "seconds per output token after the first, per job",
            _TOKEN_BOUNDARIES,
        )
        # Gauges carry Serve's deployment and replica labels: one series per replica.
        self.rows = Gauge(
            "linkedin_posts_engine_rows",
            description="Rows in a model replica's engine, by state (running: decoding; "
            "waiting: submitted, not yet in the batch).",
            tag_keys=("part", "state"),
        )
        self.kv_bytes = Gauge(
            "linkedin_posts_engine_kv_cache_bytes",
            description="Bytes held by a model replica's KV cache (free columns included).",
            tag_keys=("part",),
        )
        self.load_seconds = Gauge(
            "linkedin_posts_model_load_seconds",
            description="Seconds a model replica took to load its model and start its engine.",
            tag_keys=("part",),
        )
        self.converted_weights = Counter(
            "linkedin_posts_converted_weights",
            description="Model loads from a GGUF file, by outcome (hit: its converted weights "
            "were on disk from an earlier start; converted: converted and saved now).",
            tag_keys=("part", "outcome"),
        )

    def _seconds(self, name: str, what: str, boundaries: list[float]) -> Histogram:
        return Histogram(
            name,
            description=f"Model replicas: {what}.",
            boundaries=boundaries,
            tag_keys=("part",),
        )

    def record_row(self, result: GenerationResult) -> None:
        tags = self.tags
        self.batch_size.observe(result.batch_size, tags=tags)
        self.tokens.inc(result.new_tokens, tags=tags)
        if result.prompt_tokens:
            self.prompt_tokens.inc(result.prompt_tokens, tags=tags)
        self.queue_wait.observe(result.queue_ms / 1000, tags=tags)
        self.prefill.observe(result.prefill_ms / 1000, tags=tags)
        self.first_token.observe(result.first_token_ms / 1000, tags=tags)
        self.decode.observe(result.decode_ms / 1000, tags=tags)
        if result.new_tokens > 1:
            self.per_token.observe(result.per_token_ms / 1000, tags=tags)

    def record_load(self, load: EngineLoad) -> None:
        """The engine's load (called from its thread, twice a second while it decodes)."""
        KEPT.set(self.rows, load.rows, {**self.tags, "state": "running"})
        KEPT.set(self.rows, load.waiting, {**self.tags, "state": "waiting"})
        KEPT.set(self.kv_bytes, load.kv_bytes, self.tags)

    def record_model_load(self, seconds: float, converted_weights: str) -> None:
        """`converted_weights`: hit, converted, or none (the model was no GGUF file)."""
        KEPT.set(self.load_seconds, seconds, self.tags)
        if converted_weights != "none":
            self.converted_weights.inc(tags={**self.tags, "outcome": converted_weights})

    def record_piece(self, seconds: float, *, first: bool) -> None:
        (self.first_piece if first else self.piece_gap).observe(seconds, tags=self.tags)


class SettingsMetrics:
    """What the alert rules compare against, from the settings (set once by each Ingress; the
    same values from every replica). Ray's own gauges: Serve reserves the `deployment` label."""

    def __init__(self) -> None:
        from ray.util.metrics import Gauge as RayGauge

        self.timeout = RayGauge(
            "linkedin_posts_request_timeout_seconds",
            description="The overall request timeout (http.request_timeout_s): past it, 504.",
        )
        self.min_replicas = RayGauge(
            "linkedin_posts_deployment_min_replicas",
            description="Each deployment's minimum replicas, as the settings give it.",
            tag_keys=("deployment",),
        )

    def record(self, request_timeout_s: float, min_replicas: dict[str, int]) -> None:
        KEPT.set(self.timeout, request_timeout_s)
        for deployment, count in min_replicas.items():
            KEPT.set(self.min_replicas, count, {"deployment": deployment})


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
