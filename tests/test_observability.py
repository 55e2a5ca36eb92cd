"""The dashboard and the alerts against a real Prometheus over the graph on a real Ray cluster.

`deploy/local_cluster.py` starts three Ray nodes with the graph (the real default model, API keys
on, small model queues, the cache's L2 on a Redis of this test's own); Debian's Prometheus runs
`deploy/prometheus/prometheus.yml`, finding the nodes through the service-discovery file of
that cluster's head. A bounded mixed load (misses, cache hits, a burst the model queues shed, a
bad key, callers over their request limit) goes through; then every query of every panel of
`deploy/grafana/linkedin-posts.json` must return data, and with Redis taken away the cache
alert's expression must turn true.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.local_cluster_cli import cluster
from tests.redis_server import RedisServer, free_port

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
PROMETHEUS_DIR = REPO / "deploy" / "prometheus"
DASHBOARD = REPO / "deploy" / "grafana" / "linkedin-posts.json"
URL = "http://127.0.0.1:8000"
KEY = "observability-test-key"
MODELS = ("TitleModel", "ContentModel", "HashtagModel")


def observed_config(tmp_path: Path, redis_url: str) -> Path:
    """config/cluster-local.yaml with keys, a low request limit, small model queues and the
    test's Redis."""
    config = yaml.safe_load((REPO / "config" / "cluster-local.yaml").read_text())
    app = config["applications"][0]
    app["runtime_env"]["env_vars"]["REDIS_URL"] = redis_url
    args = app["args"]
    args["security"] = {
        "auth_enabled": True,
        "api_keys": [{"name": "ops", "sha256": hashlib.sha256(KEY.encode()).hexdigest()}],
        # Counted by each Ingress replica on its own (no rate_limit_redis_url).
        "request_rate_limit": "6/minute",
        "metrics": "open",
    }
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
    """The repository's config, pointed at this cluster's discovery file."""
    prometheus = shutil.which("prometheus")
    assert prometheus, "prometheus is missing: `make prometheus-install`"
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    config["rule_files"] = [str(PROMETHEUS_DIR / name) for name in config["rule_files"]]
    config["scrape_configs"][0]["file_sd_configs"][0]["files"] = [str(discovery_file)]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
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
    """Misses, hits, a burst the model queues shed, a bad key, a caller over its limit."""
    statuses: dict[int, int] = {}
    async with httpx.AsyncClient(base_url=URL, timeout=600, trust_env=False) as client:

        async def send(topic: str, **kwargs: Any) -> None:
            answer = await client.post("/v1/posts", **_post(topic, **kwargs))
            statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1

        await send("Observability for small teams")  # a miss, then written to every layer
        await send("Observability for small teams")  # a hit
        # Six posts at once (three hook lines each): more than the model queues take, 503.
        await asyncio.gather(*(send(f"Burst topic {i}", use_cache=False) for i in range(6)))
        await send("Observability for small teams", key="not-a-key")
        for _ in range(8):  # past the key's requests a minute: 429
            await send("Observability for small teams")
    return statuses


def test_every_panel_of_the_dashboard_has_data_in_prometheus(observed: Observed) -> None:
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


def test_the_redis_alert_turns_true_when_redis_goes_away(observed: Observed) -> None:
    expr = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())["groups"][0]["rules"]
    redis_down = next(rule["expr"] for rule in expr if rule["alert"] == "LinkedinPostsRedisDown")
    assert observed.query(redis_down) == [], "Redis answers: the expression is false"
    observed.redis.stop()
    try:
        with httpx.Client(base_url=URL, timeout=600, trust_env=False) as client:
            # Up to a minute of 429s first: the key's request limit (mixed_load spent it).
            deadline = time.monotonic() + 180
            while not observed.query(redis_down):
                assert time.monotonic() < deadline, "the Redis alert's expression stayed false"
                # A fresh post asks L2 in the Ingress and in CacheLookup.
                client.post("/v1/posts", **_post(f"Redis is away {time.monotonic()}"))
                time.sleep(3)
    finally:
        observed.redis.start()
