"""The hardened ingress in a real Serve app: auth, rate limits across two ingress replicas, body
size and content type, backpressure, timeouts, client disconnects, CORS."""

from __future__ import annotations

import asyncio
import hashlib
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
BATCH_KEY = "batch-key-" + uuid.uuid4().hex
AUTH = {"Authorization": f"Bearer {KEY}"}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


NOWHERE = "0" * 64  # a well-formed cache key that is not stored: a cheap authenticated request


def sha256(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@pytest.fixture(scope="module")
def app(
    start_app: Callable[[dict], ServeApp],
    tiny_settings_args: dict,
    tmp_path_factory: pytest.TempPathFactory,
) -> ServeApp:
    run = uuid.uuid4().hex[:8]
    # Keys as an operator gives them: sha256 in the arguments (which Serve logs), plain in a
    # mounted file (which it does not).
    keys_file = tmp_path_factory.mktemp("secrets") / "api-keys.yaml"
    keys_file.write_text(
        json.dumps(
            [
                {"name": f"limited-{run}", "key": LIMITED_KEY, "rate_limit": "6/minute"},
                {"name": f"batch-{run}", "key": BATCH_KEY, "rate_limit": "10/minute"},
            ]
        )
    )
    return start_app(
        {
            **tiny_settings_args,
            "security": {
                "auth_enabled": True,
                "api_keys": [
                    {"name": f"main-{run}", "sha256": sha256(KEY), "rate_limit": "1000/minute"},
                ],
                "api_keys_file": str(keys_file),
                # Every client here is 127.0.0.1: the last test of the module exhausts it.
                "auth_failure_limit": "12/minute",
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
                "CacheLookup": {
                    "max_ongoing_requests": 4,
                    "max_queued_requests": 2,
                    "target_ongoing_requests": 2,
                },
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
    # The headers describe the request limit (every request costs 1); generated posts are
    # charged to the key's own rate_limit.
    assert response.headers["x-ratelimit-limit"] == "1200"
    assert int(response.headers["x-ratelimit-remaining"]) < 1200
    assert int(response.headers["x-ratelimit-reset"]) > time.time() - 1


def test_generation_limit_holds_across_ingress_replicas(app: ServeApp) -> None:
    headers = bearer(LIMITED_KEY)  # 6 generated posts a minute

    async def burst() -> list[httpx.Response]:
        # Concurrent misses spread over both ingress replicas; a per-replica limiter would
        # let up to 12 through.
        async with httpx.AsyncClient(base_url=app.url, timeout=60) as client:
            return await asyncio.gather(
                *(
                    client.post("/v1/posts", json={"topic": f"Limited {i}"}, headers=headers)
                    for i in range(16)
                )
            )

    statuses = [r.status_code for r in asyncio.run(burst())]
    # Exactly 6 charged (answered 200, or 503 when the small CacheLookup queue of this app is
    # full); the other 10 refused.
    assert statuses.count(429) == 10, statuses
    assert all(s in (200, 503) for s in statuses if s != 429), statuses
    refused = app.post("/v1/posts/batch", json={"requests": [{"topic": "More"}]}, headers=headers)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    assert "generation limit" in refused.json()["error"]["message"]
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    # Requests that generate nothing are still served under the request limit.
    cheap = app.client.delete("/v1/cache", params={"key": NOWHERE}, headers=headers)
    assert cheap.status_code == 200, cheap.text


def test_a_batch_is_charged_one_unit_per_post_it_generates(app: ServeApp) -> None:
    headers = bearer(BATCH_KEY)  # 10 generated posts a minute
    batch = [{"topic": f"Charged batch {i}", "length": "short"} for i in range(7)]
    first = app.post("/v1/posts/batch", json={"requests": batch}, headers=headers)
    assert first.status_code == 200, first.text
    # The same 7 again are cache hits: nothing charged.
    again = app.post("/v1/posts/batch", json={"requests": batch}, headers=headers)
    assert again.status_code == 200, again.text
    assert all(p["metadata"]["cache"]["hit"] for p in again.json()["posts"])
    more = [{"topic": f"Charged batch more {i}", "length": "short"} for i in range(4)]
    refused = app.post("/v1/posts/batch", json={"requests": more}, headers=headers)
    assert refused.status_code == 429, refused.text
    assert "generates 4, 3 left" in refused.json()["error"]["message"]


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


# Serve's own header for turning cancellation off is dropped at the proxy: a caller cannot keep
# the graph working after hanging up.
@pytest.mark.parametrize("extra", [{}, {"x-request-disconnect-disabled": "?1"}])
def test_client_disconnect_cancels_generation(app: ServeApp, extra: dict) -> None:
    content = serve.get_deployment_handle("ContentModel", app_name=app.name)
    before = content.info.remote().result()["cancelled"]
    request = {"topic": f"Disconnect me {extra}", "length": "long", "use_cache": False}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{app.url}/v1/posts", json=request, headers={**AUTH, **extra}, timeout=0.3)
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

    async def flood_and_poll() -> tuple[list, list[tuple[int, float, str]]]:
        # /readyz is polled while the flood runs: busy is still ready, and it answers fast.
        async def poll() -> list[tuple[int, float, str]]:
            polls = []
            async with httpx.AsyncClient(base_url=app.url, timeout=10) as client:
                await asyncio.sleep(0.3)
                for _ in range(8):
                    started = time.monotonic()
                    ready = await client.get("/readyz")
                    polls.append(
                        (ready.status_code, time.monotonic() - started, ready.json()["status"])
                    )
                    await asyncio.sleep(0.1)
            return polls

        return await asyncio.gather(flood(), poll())

    results, polls = asyncio.run(flood_and_poll())
    assert all(code == 200 for code, _, _ in polls), polls
    assert all(elapsed < 1.5 for _, elapsed, _ in polls), polls
    assert {status for _, _, status in polls} <= {"ok", "busy"}, polls
    statuses = [r.status_code for r, _ in results]
    assert set(statuses) <= {503, 504}, statuses
    shed = [(r, elapsed) for r, elapsed in results if r.status_code == 503]
    assert len(shed) >= 4, statuses  # 4 running + 2 queued at CacheLookup; the rest shed
    for response, elapsed in shed:
        assert response.headers["retry-after"]
        assert response.json()["error"]["code"] == "overloaded"
        # Shed at once rather than queued until the overall timeout (which would be a 504).
        assert elapsed < app.settings.http.request_timeout_s, "a rejection must not be queued"


def test_a_model_replica_killed_mid_generation_is_sent_again_and_not_ready_until_replaced(
    app: ServeApp,
) -> None:
    [replica] = [
        actor["name"]
        for actor in ray.util.list_named_actors(all_namespaces=True)
        if "#ContentModel#" in actor["name"]
    ]
    request = {"topic": "Killed mid-generation", "length": "long", "use_cache": False}

    async def in_flight_then_kill() -> list[tuple[httpx.Response, float]]:
        async with httpx.AsyncClient(base_url=app.url, timeout=30) as client:

            async def one() -> tuple[httpx.Response, float]:
                started = time.monotonic()
                response = await client.post("/v1/posts", json=request, headers=AUTH)
                return response, time.monotonic() - started

            calls = [asyncio.ensure_future(one()) for _ in range(2)]
            await asyncio.sleep(0.5)
            ray.kill(ray.get_actor(replica, namespace="serve"), no_restart=True)
            return await asyncio.gather(*calls)

    # The calls in flight on the dead replica are sent once more (deployments.replica_calls) and
    # wait for its replacement: answered, or, past this app's 3 s timeout, a JSON 504 that
    # cancels them. Never a plain 500, never a hang.
    for response, elapsed in asyncio.run(in_flight_then_kill()):
        assert response.status_code in (200, 504), response.text
        if response.status_code == 504:
            assert response.json()["error"]["code"] == "timeout"
        assert elapsed < app.settings.http.request_timeout_s + 5, "answered by the timeout"

    # Not ready while ContentModel has no running replica, and fast about it; ready again once
    # Serve has replaced it.
    readiness: list[tuple[int, float]] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        started = time.monotonic()
        ready = app.get("/readyz")
        readiness.append((ready.status_code, time.monotonic() - started))
        if ready.status_code == 503:
            assert ready.json()["error"]["details"]["not_running"] == ["ContentModel"]
        elif any(code == 503 for code, _ in readiness):
            break
        time.sleep(0.2)
    assert readiness[-1][0] == 200 and any(code == 503 for code, _ in readiness), readiness
    assert max(elapsed for _, elapsed in readiness) < 1.5, readiness


def test_an_ingress_replica_killed_mid_request_is_a_json_503_never_a_plain_500(
    app: ServeApp,
) -> None:
    # Serve's proxy sends nothing when the replica it called dies, and uvicorn then writes a
    # plain-text 500; the proxy guard answers the JSON envelope instead.
    victim = next(
        actor["name"]
        for actor in ray.util.list_named_actors(all_namespaces=True)
        if "#Ingress#" in actor["name"]
    )
    request = {"topic": "Ingress killed mid-request", "length": "long", "use_cache": False}

    async def in_flight_then_kill() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=app.url, timeout=30) as client:
            calls = [
                asyncio.ensure_future(client.post("/v1/posts", json=request, headers=AUTH))
                for _ in range(6)
            ]
            await asyncio.sleep(0.5)
            ray.kill(ray.get_actor(victim, namespace="serve"), no_restart=True)
            return await asyncio.gather(*calls)

    responses = asyncio.run(in_flight_then_kill())
    failed = [r for r in responses if r.status_code >= 500 and r.status_code != 504]
    assert failed, [r.status_code for r in responses]  # some were on the killed replica
    for response in failed:
        assert response.status_code == 503, response.text
        assert response.headers["content-type"] == "application/json"
        assert response.headers["retry-after"]
    deadline = time.monotonic() + 120
    while app.get("/readyz").status_code != 200:
        assert time.monotonic() < deadline, "the Ingress replica was not replaced"
        time.sleep(0.5)
    # The killed replica's calls downstream are not cancelled with it (Serve cancels a call when
    # its caller cancels it, not when its caller dies): they decode their 3000 tokens to the end.
    # Until then posts are slow (2.0, 1.7, 0.8, 0.5 s one after another, measured), and in make
    # test the next tests' posts timed out at this app's 3 s three times. Wait for the models to
    # stop decoding (one replica each here), then for a post to be served.
    models = [
        serve.get_deployment_handle(name, app_name=app.name)
        for name in ("TitleModel", "ContentModel", "HashtagModel")
    ]

    def steps() -> list[int]:
        return [model.info.remote().result()["steps"] for model in models]

    previous, current = None, steps()
    while current != previous:  # steady for a second
        assert time.monotonic() < deadline, "the models went on decoding"
        time.sleep(1)
        previous, current = current, steps()
    fresh = {"topic": "After the Ingress was replaced", "use_cache": False, "length": "short"}
    while app.post("/v1/posts", json=fresh, headers=AUTH).status_code != 200:
        assert time.monotonic() < deadline, "no post was served after the Ingress was replaced"
        time.sleep(1)


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


def test_no_plain_key_reaches_any_log(app: ServeApp) -> None:
    """Last: after every request of this module, no log file of the Ray session (the
    controller's, the proxy's, every replica's, the workers') holds either key."""
    for key in (KEY, LIMITED_KEY):
        response = app.post("/v1/posts", json={"topic": "Logged keys"}, headers=bearer(key))
        assert response.status_code in (200, 429), response.text
    time.sleep(2)  # log lines are flushed by their writers
    logs = Path(ray._private.worker._global_node.get_session_dir_path()) / "logs"
    files = [path for path in logs.rglob("*") if path.is_file()]
    assert len(files) > 10, "the session's logs were not found"
    leaked = [
        str(path)
        for path in files
        if KEY.encode() in path.read_bytes() or LIMITED_KEY.encode() in path.read_bytes()
    ]
    assert not leaked, leaked


def test_an_address_guessing_keys_is_refused_before_auth(app: ServeApp) -> None:
    """Last: it leaves 127.0.0.1 locked out for the rest of the window."""
    statuses = [
        app.post("/v1/posts", json={"topic": "Guess"}, headers=bearer(f"guess-{i}")).status_code
        for i in range(14)
    ]
    assert statuses.count(401) <= 12 and statuses[-1] == 429, statuses
    refused = app.post("/v1/posts", json={"topic": "Right key now"}, headers=AUTH)
    assert refused.status_code == 429, "a right guess must not be told apart from a wrong one"
    assert "failed API keys" in refused.json()["error"]["message"]
    assert int(refused.headers["retry-after"]) >= 1
