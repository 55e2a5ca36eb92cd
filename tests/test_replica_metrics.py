"""What the cache and model replicas count (deployments.metrics), driven without Ray: Redis
outages and reconnects, single-flight followers and refreshes heard from a real TieredCache,
converted-weights hits. (tests/test_observability.py reads them from a real Prometheus.)"""

from __future__ import annotations

from typing import Any

import pytest

from deployments import metrics as metrics_module
from deployments.cache.layers import MemoryLayer, RedisLayer
from deployments.cache.tiered import TieredCache
from deployments.metrics import CacheMetrics, ModelMetrics


@pytest.fixture(autouse=True)
def no_repeats(monkeypatch: pytest.MonkeyPatch) -> None:
    """Gauges are set once each here: no kept-gauges thread setting them again mid-test."""
    monkeypatch.setattr(metrics_module, "KEPT", metrics_module.KeptGauges(interval_s=3600))


class FakeCounter:
    def __init__(self) -> None:
        self.incs: list[tuple[float, dict[str, str] | None]] = []

    def inc(self, value: float = 1.0, tags: dict[str, str] | None = None) -> None:
        self.incs.append((value, tags))


class FakeGauge:
    def __init__(self) -> None:
        self.sets: list[float] = []

    def set(self, value: float, tags: Any = None) -> None:
        self.sets.append(value)


def faked(metrics: Any, counters: tuple[str, ...], gauges: tuple[str, ...] = ()) -> Any:
    for name in counters:
        setattr(metrics, name, FakeCounter())
    for name in gauges:
        setattr(metrics, name, FakeGauge())
    return metrics


def test_redis_outages_and_reconnects_are_counted_from_its_state_changes() -> None:
    metrics = faked(CacheMetrics(), ("redis_outages", "redis_reconnects"), ("redis_up",))
    for up in (True, False, True, False, True):  # the first answer, then two outages
        metrics.record_redis(up)
    assert metrics.redis_up.sets == [1, 0, 1, 0, 1]
    assert len(metrics.redis_outages.incs) == 2
    assert len(metrics.redis_reconnects.incs) == 2  # the first answer is no reconnect


def test_watch_hears_the_caches_redis_followers_and_refreshes() -> None:
    metrics = faked(CacheMetrics(), ("followers", "refreshes", "redis_outages"), ("redis_up",))
    redis = RedisLayer(
        "redis://127.0.0.1:6379/0",
        ttl_s=60,
        key_prefix="t:",
        socket_timeout_s=1,
        max_connections=2,
    )
    cache = TieredCache([MemoryLayer(10, 10_000, 60), redis])
    metrics.watch(cache)
    assert redis.on_state is not None
    redis.on_state(False)
    assert cache.single_flight.on_follow is not None and cache.on_refresh is not None
    cache.single_flight.on_follow("other_process")
    cache.on_refresh("skipped")
    assert metrics.redis_up.sets == [0]
    assert metrics.followers.incs == [(1.0, {"outcome": "other_process"})]
    assert metrics.refreshes.incs == [(1.0, {"outcome": "skipped"})]


def test_an_ingress_without_a_shared_cache_watches_nothing() -> None:
    # The Ingress with `cache.enabled: false` has no shared cache: it must still start (the
    # benchmarks' graph scenario runs so; an AttributeError here failed every Ingress replica).
    CacheMetrics().watch(None)


def test_a_model_load_counts_converted_weights_only_for_a_gguf_file() -> None:
    metrics = faked(ModelMetrics("title"), ("converted_weights",), ("load_seconds",))
    metrics.record_model_load(2.5, "converted")
    metrics.record_model_load(1.0, "hit")
    metrics.record_model_load(1.0, "none")  # a transformers folder: nothing converted
    assert metrics.converted_weights.incs == [
        (1.0, {"part": "title", "outcome": "converted"}),
        (1.0, {"part": "title", "outcome": "hit"}),
    ]
    assert metrics.load_seconds.sets == [2.5, 1.0, 1.0]
