"""The dashboard and the alerts against a real Prometheus over the graph on a real Ray cluster.

`deploy/local_cluster.py` starts three Ray nodes with the graph (the real default model, API keys
on, small Ingress and model queues, refresh-ahead every 20 s, the cache's L2 on a Redis of this
test's own); Debian's Prometheus runs `deploy/prometheus/prometheus.yml`, finding the nodes
through the service-discovery file of that cluster's head. With Redis taken away the cache
alert's expression must turn true. Then a bounded mixed load (a miss asked twice at once, cache
hits, a burst that fills the Ingress's and the model queues, a bad key, callers over their
request limit) goes through, and every query of every panel of
`deploy/grafana/linkedin-posts.json` must return data.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from deploy.run_prometheus import write_config
from tests.local_cluster_cli import cluster
from tests.redis_server import RedisServer, free_port

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
PROMETHEUS_DIR = REPO / "deploy" / "prometheus"
DASHBOARD = REPO / "deploy" / "grafana" / "linkedin-posts.json"
URL = "http://127.0.0.1:8000"
KEY = "observability-test-key"
# A topic of this run's own: L3 (each node's disk) keeps posts between runs, and the first
# request must be a miss.
TOPIC = f"Observability for small teams, run {uuid.uuid4().hex[:8]}"
REDIS_KEY = "observability-redis-key"  # the Redis test's own: its request limit is not KEY's
MODELS = ("TitleModel", "ContentModel", "HashtagModel")


def observed_config(tmp_path: Path, redis_url: str) -> Path:
    """config/cluster-local.yaml with keys, a low request limit, small Ingress and model queues,
    a refresh-ahead that finds every popular post due, and the test's Redis."""
    config = yaml.safe_load((REPO / "config" / "cluster-local.yaml").read_text())
    app = config["applications"][0]
    app["runtime_env"]["env_vars"]["REDIS_URL"] = redis_url
    args = app["args"]
    args["security"] = {
        "auth_enabled": True,
        "api_keys": [
            {"name": name, "sha256": hashlib.sha256(key.encode()).hexdigest()}
            for name, key in (("ops", KEY), ("redis", REDIS_KEY))
        ],
        # Counted by each Ingress replica on its own (no rate_limit_redis_url).
        "request_rate_limit": "6/minute",
        "metrics": "open",
    }
    # Two Ingress replicas taking 2 requests each, 3 queued in the proxy: Serve's router counts
    # requests sent at once as queued until it assigns them, so two at once pass and a burst of
    # ten overflows; Serve's proxy answers the rest (counted as ingress_full).
    args["deployments"]["Ingress"].update(
        min_replicas=2,
        max_replicas=2,
        max_ongoing_requests=2,
        max_queued_requests=3,
        target_ongoing_requests=1,
    )
    # Every popular post is due at once: a refresh-ahead rewrite within the test's minutes.
    args.setdefault("cache", {}).update(refresh_interval_s=20, refresh_ahead_s=10**7)
    for name in MODELS:
        args["deployments"][name].update(
            # One idle post asks three hook lines at once, which Serve's router counts as queued
            # before it assigns them (with 2 queued, even one post was shed); a burst overflows.
            max_replicas=1,
            max_ongoing_requests=4,
            max_queued_requests=4,
            target_ongoing_requests=2,
        )
    path = tmp_path / "cluster-observed.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@dataclass
class Observed:
    prometheus: str
    redis: RedisServer

    def query(self, expr: str) -> list[dict[str, Any]]:
        answer = httpx.get(
            f"{self.prometheus}/api/v1/query", params={"query": expr}, timeout=30, trust_env=False
        )
        answer.raise_for_status()
        body = answer.json()
        assert body["status"] == "success", body
        return body["data"]["result"]


def start_prometheus(tmp_path: Path, discovery_file: Path) -> tuple[subprocess.Popen, str]:
    """The repository's config, pointed at this cluster's discovery file (as `make prometheus`
    writes it)."""
    prometheus = shutil.which("prometheus")
    assert prometheus, "prometheus is missing: `make prometheus-install`"
    path = write_config(discovery_file, tmp_path / "prometheus.yml")
    port = free_port()
    process = subprocess.Popen(
        [
            prometheus,
            f"--config.file={path}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "prometheus.log").open("w"),
    )
    return process, f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Observed]:
    tmp_path = tmp_path_factory.mktemp("observed")
    redis = RedisServer().start()
    prometheus: subprocess.Popen | None = None
    try:
        cluster("up", "--config", str(observed_config(tmp_path, redis.url)))
        state = json.loads((REPO / ".cluster" / "state.json").read_text())
        discovery = Path(state["temp_dir"]) / "prom_metrics_service_discovery.json"
        prometheus, url = start_prometheus(tmp_path, discovery)
        _wait_for(lambda: _ready(url), 60, "Prometheus ready")
        observed = Observed(url, redis)
        _wait_for(lambda: len(observed.query('up{job="ray"} == 1')) >= 3, 120, "3 nodes scraped")
        yield observed
    finally:
        if prometheus is not None:
            prometheus.terminate()
            prometheus.wait(30)
        cluster("down", timeout=120)
        redis.stop()


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/-/ready", timeout=5, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False


def _wait_for(condition: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(3)
    raise AssertionError(f"not within {timeout_s} s: {what}")


def _post(topic: str, *, key: str = KEY, use_cache: bool = True) -> dict[str, Any]:
    return {
        "json": {"topic": topic, "length": "short", "use_cache": use_cache},
        "headers": {"Authorization": f"Bearer {key}"},
    }


async def mixed_load() -> dict[int, int]:
    """A miss asked twice at once, hits, a burst the Ingress and model queues shed, a bad key,
    a caller over its limit."""
    statuses: dict[int, int] = {}
    async with httpx.AsyncClient(base_url=URL, timeout=600, trust_env=False) as client:

        async def send(topic: str, **kwargs: Any) -> None:
            answer = await client.post("/v1/posts", **_post(topic, **kwargs))
            statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1

        # A miss, generated once: the second caller follows the first (single-flight).
        await asyncio.gather(*(send(TOPIC) for _ in range(2)))
        await send(TOPIC)  # a hit
        # Ten posts at once: more than the Ingress admits, and than the model queues take.
        await asyncio.gather(*(send(f"Burst topic {i}", use_cache=False) for i in range(10)))
        await send(TOPIC, key="not-a-key")
        for _ in range(8):  # past the key's requests a minute: 429
            await send(TOPIC)
    return statuses


def _redis_down_expr() -> str:
    rules = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())["groups"][0]["rules"]
    return next(rule["expr"] for rule in rules if rule["alert"] == "LinkedinPostsRedisDown")


def take_redis_away(observed: Observed) -> None:
    """Stop the cluster's Redis until the Redis alert's expression is true, then start it again
    (the replicas reconnect at their next use)."""
    observed.redis.stop()
    try:
        with httpx.Client(base_url=URL, timeout=600, trust_env=False) as client:
            deadline = time.monotonic() + 180
            while not observed.query(_redis_down_expr()):
                assert time.monotonic() < deadline, "the Redis alert's expression stayed false"
                # A fresh post asks L2 in the Ingress and in CacheLookup (past the key's limit,
                # a 429 that still read L2 is enough).
                topic = f"Redis is away {time.monotonic()}"
                client.post("/v1/posts", **_post(topic, key=REDIS_KEY))
                time.sleep(3)
    finally:
        observed.redis.start()


def test_the_redis_alert_turns_true_when_redis_goes_away(observed: Observed) -> None:
    assert observed.query(_redis_down_expr()) == [], "Redis answers: the expression is false"
    take_redis_away(observed)  # fails unless the expression turned true


def test_every_panel_of_the_dashboard_has_data_in_prometheus(observed: Observed) -> None:
    if not observed.query("ray_linkedin_posts_redis_outages_total"):
        take_redis_away(observed)  # the Redis outage and reconnect series (run alone)
    statuses = asyncio.run(mixed_load())
    assert statuses.get(200, 0) >= 2 and statuses.get(503, 0) >= 1, statuses
    assert statuses.get(401) == 1 and statuses.get(429, 0) >= 1, statuses
    assert not any(code >= 500 and code != 503 for code in statuses), statuses
    has_gpu = bool(observed.query("ray_node_gpus_available"))
    panels = json.loads(DASHBOARD.read_text())["panels"]
    queries = [
        (panel["title"], target["expr"])
        for panel in panels
        for target in panel["targets"]
        if has_gpu or "gram" not in target["expr"]  # GPU memory exists only where a GPU does
    ]
    empty: list[str] = []

    def all_have_data() -> bool:
        empty[:] = [f"{title}: {expr}" for title, expr in queries if not observed.query(expr)]
        return not empty

    try:
        _wait_for(all_have_data, 120, "every panel's queries return data")
    except AssertionError:
        pytest.fail("panels without data:\n" + "\n".join(empty))
    # Serve's proxy answered part of the burst itself (the Ingress was full): counted too.
    proxy = 'ray_linkedin_posts_http_requests_total{route="proxy", reason="ingress_full"}'
    assert observed.query(proxy), "the proxy's own 503s were not counted"
