"""The hardened ingress in a real Serve app: auth, rate limits across two ingress replicas, body
size and content type, backpressure, timeouts, client disconnects, CORS."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import ray
from ray import serve

from tests.conftest import TINY_GENERATION, ServeApp

KEY = "test-key-" + uuid.uuid4().hex
LIMITED_KEY = "limited-key-" + uuid.uuid4().hex
AUTH = {"Authorization": f"Bearer {KEY}"}
NOWHERE = "0" * 64  # a well-formed cache key that is not stored: a cheap authenticated request


@pytest.fixture(scope="module")
def app(start_app: Callable[[dict], ServeApp], tiny_settings_args: dict) -> ServeApp:
    run = uuid.uuid4().hex[:8]
    return start_app(
        {
            **tiny_settings_args,
            "security": {
                "auth_enabled": True,
                "api_keys": [
                    {"name": f"main-{run}", "key": KEY, "rate_limit": "1000/minute"},
                    {"name": f"limited-{run}", "key": LIMITED_KEY, "rate_limit": "6/minute"},
                ],
                # Shared limiter storage: the limit holds across both ingress replicas.
                "rate_limit_redis_url": "redis://127.0.0.1:6379/14",
                "cors_origins": ["https://app.example.com"],
            },
            "http": {"max_body_bytes": 2048, "request_timeout_s": 3},
            # "long" bodies decode thousands of tokens: slow enough to time out, or to fill the
            # small CacheLookup queue and be shed.
            "generation": {
                **TINY_GENERATION,
                "content_max_new_tokens": {"short": 48, "medium": 64, "long": 3000},
                "content_min_new_tokens": {"short": 8, "medium": 8, "long": 3000},
            },
            "deployments": {
                "Ingress": {"min_replicas": 2, "max_replicas": 2},
                "CacheLookup": {"max_ongoing_requests": 4, "max_queued_requests": 2},
            },
        }
    )


def test_health_and_docs_need_no_key(app: ServeApp) -> None:
    assert app.get("/healthz").status_code == 200
    assert app.get("/readyz").status_code == 200
    assert app.get("/openapi.json").status_code == 200


def test_metrics_need_a_key_by_default(app: ServeApp) -> None:
    assert app.get("/metrics").status_code == 401
    response = app.get("/metrics", headers=AUTH)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}])
def test_missing_or_wrong_key_is_401(app: ServeApp, headers: dict) -> None:
    response = app.post("/v1/posts", json={"topic": "Auth please"}, headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    assert response.headers["www-authenticate"] == "Bearer"
    assert "traceback" not in response.text.lower()


def test_valid_key_is_served_with_rate_limit_headers(app: ServeApp) -> None:
    response = app.post("/v1/posts", json={"topic": "Authorised topic"}, headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.headers["x-ratelimit-limit"] == "1000"
    assert int(response.headers["x-ratelimit-remaining"]) < 1000
    assert int(response.headers["x-ratelimit-reset"]) > time.time() - 1


def test_rate_limit_holds_across_ingress_replicas(app: ServeApp) -> None:
    headers = {"Authorization": f"Bearer {LIMITED_KEY}"}

    async def burst() -> list[httpx.Response]:
        # Concurrent requests spread over both ingress replicas; a per-replica limiter would
        # let up to 12 through.
        async with httpx.AsyncClient(base_url=app.url, timeout=60) as client:
            return await asyncio.gather(
                *(
                    client.delete("/v1/cache", params={"key": NOWHERE}, headers=headers)
                    for _ in range(16)
                )
            )

    statuses = [r.status_code for r in asyncio.run(burst())]
    # Exactly 6 admitted by the limiter (answered 200, or 503 when the small CacheLookup queue
    # of this app is full); the other 10 refused.
    assert statuses.count(429) == 10, statuses
    assert all(s in (200, 503) for s in statuses if s != 429), statuses
    refused = app.client.delete("/v1/cache", params={"key": NOWHERE}, headers=headers)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.headers["x-ratelimit-remaining"] == "0"


def test_wrong_content_type_is_415(app: ServeApp) -> None:
    response = app.post(
        "/v1/posts",
        content=b"topic=hello",
        headers={**AUTH, "content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"


def test_oversized_body_is_413_with_or_without_content_length(app: ServeApp) -> None:
    body = b'{"topic": "' + b"x" * 4000 + b'"}'
    declared = app.post(
        "/v1/posts", content=body, headers={**AUTH, "content-type": "application/json"}
    )
    assert declared.status_code == 413
    assert declared.json()["error"]["code"] == "payload_too_large"

    def chunks():  # no Content-Length: counted as it streams in
        for start in range(0, len(body), 512):
            yield body[start : start + 512]

    streamed = app.post(
        "/v1/posts", content=chunks(), headers={**AUTH, "content-type": "application/json"}
    )
    assert streamed.status_code == 413


def test_cors_preflight_allows_the_configured_origin(app: ServeApp) -> None:
    response = app.client.options(
        "/v1/posts",
        headers={
            "Origin": "https://app.example.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "https://app.example.com"
    other = app.client.options(
        "/v1/posts",
        headers={"Origin": "https://evil.example.com", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in other.headers


def test_client_disconnect_cancels_generation(app: ServeApp) -> None:
    content = serve.get_deployment_handle("ContentModel", app_name=app.name)
    before = content.info.remote().result()["cancelled"]
    request = {"topic": "Disconnect me", "length": "long", "use_cache": False}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{app.url}/v1/posts", json=request, headers=AUTH, timeout=0.3)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if content.info.remote().result()["cancelled"] > before:
            break
        time.sleep(0.2)
    assert content.info.remote().result()["cancelled"] > before, "the model kept working"


def test_request_over_the_timeout_is_504_and_stops_the_work(app: ServeApp) -> None:
    content = serve.get_deployment_handle("ContentModel", app_name=app.name)
    before = content.info.remote().result()["cancelled"]
    started = time.monotonic()
    response = app.post(
        "/v1/posts",
        headers=AUTH,
        json={"topic": "Too slow to finish", "length": "long", "use_cache": False},
    )
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "timeout"
    assert time.monotonic() - started < 10
    time.sleep(1)
    assert content.info.remote().result()["cancelled"] > before


# Far more than CacheLookup admits (4 running + 2 queued per ingress router): each router's view
# of the replica's queue lags, so a flood of 12 was sometimes admitted whole and timed out.
FLOOD = 32


def test_overload_is_shed_fast_with_503_and_retry_after(app: ServeApp) -> None:
    async def flood() -> list[tuple[httpx.Response, float]]:
        async with httpx.AsyncClient(base_url=app.url, timeout=60) as client:

            async def one(i: int) -> tuple[httpx.Response, float]:
                started = time.monotonic()
                response = await client.post(
                    "/v1/posts",
                    headers=AUTH,
                    json={"topic": f"Flood topic {i}", "length": "long", "use_cache": False},
                )
                return response, time.monotonic() - started

            return await asyncio.gather(*(one(i) for i in range(FLOOD)))

    results = asyncio.run(flood())
    statuses = [r.status_code for r, _ in results]
    assert set(statuses) <= {503, 504}, statuses
    shed = [(r, elapsed) for r, elapsed in results if r.status_code == 503]
    assert len(shed) >= 4, statuses  # 4 running + 2 queued at CacheLookup; the rest shed
    for response, elapsed in shed:
        assert response.headers["retry-after"]
        assert response.json()["error"]["code"] == "overloaded"
        # Shed at once rather than queued until the overall timeout (which would be a 504).
        assert elapsed < app.settings.http.request_timeout_s, "a rejection must not be queued"


def test_request_id_travels_through_every_deployment_into_json_logs(app: ServeApp) -> None:
    request_id = "trace-" + uuid.uuid4().hex
    request = {"topic": "Trace this request", "use_cache": False, "length": "short"}
    response = app.post("/v1/posts", json=request, headers={**AUTH, "X-Request-ID": request_id})
    assert response.status_code == 200, response.text
    assert response.headers["x-request-id"] == request_id
    assert response.json()["metadata"]["request_id"] == request_id

    logs = Path(ray._private.worker._global_node.get_session_dir_path()) / "logs" / "serve"
    expected = {"Ingress", "CacheLookup", "TitleModel", "ContentModel", "HashtagModel", "Compiler"}
    seen: set[str] = set()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and seen != expected:
        time.sleep(0.5)
        for path in logs.glob("replica_*.log"):
            for line in path.read_text(errors="replace").splitlines():
                if request_id in line:
                    record = json.loads(line)  # structured: every line is one JSON object
                    assert record["request_id"] == request_id
                    seen.add(record["deployment"].split("_")[-1])
    assert seen == expected
