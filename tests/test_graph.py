"""The whole graph in a real Serve app on the tiny model: the API over HTTP and handles."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import diskcache
import httpx
import pytest
import redis
from ray import serve

from deployments.cli import main
from deployments.post.prompts import build_job
from deployments.schemas import LENGTH_BANDS, PostLength, PostRequest
from deployments.settings import DEPLOYMENT_NAMES, GenerationSettings
from tests.conftest import ServeApp

TAG = re.compile(r"^#[^\W_]+$")


REDIS_DB_URL = "redis://127.0.0.1:6379/14"


@pytest.fixture(scope="module")
def app(start_app: Callable[[dict], ServeApp], tiny_settings_args: dict) -> ServeApp:
    # The tiny graph with all three cache layers: L2 on a db of the shared Redis of its own.
    prefix = f"lp-test-{uuid.uuid4().hex[:8]}:"
    cache = {**tiny_settings_args["cache"], "redis_url": REDIS_DB_URL, "l2_key_prefix": prefix}
    # One model deployment with a thread count of its own (the others keep Ray's share).
    deployments = {"ContentModel": {"torch_threads": 2}}
    return start_app({**tiny_settings_args, "cache": cache, "deployments": deployments})


@pytest.fixture(scope="module")
def redis_db(app: ServeApp) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_DB_URL)
    yield client
    for key in client.scan_iter(match=app.settings.cache.l2_key_prefix + "*"):
        client.delete(key)
    client.close()


def assert_post_contract(post: dict, request: dict) -> None:
    num_hashtags = request.get("num_hashtags", 3)
    assert set(post) == {"id", "title", "content", "hashtags", "text", "metadata"}
    assert post["title"] and "\n" not in post["title"] and len(post["title"]) <= 150
    assert len(post["hashtags"]) == num_hashtags
    assert len({t.casefold() for t in post["hashtags"]}) == num_hashtags
    assert all(TAG.match(t) and any(c.isalpha() for c in t) for t in post["hashtags"])
    _, band_max = LENGTH_BANDS[PostLength(request.get("length", "medium"))]
    assert 0 < len(post["content"]) <= band_max
    if request.get("call_to_action"):
        assert post["content"].endswith(request["call_to_action"])
    parts = [post["title"], post["content"]] + (
        [" ".join(post["hashtags"])] if num_hashtags else []
    )
    assert post["text"] == "\n\n".join(parts)
    assert len(post["text"]) <= 3000
    assert "<|" not in post["text"] and "<request>" not in post["text"]
    meta = post["metadata"]
    assert meta["characters"] == len(post["text"])
    assert meta["words"] == len(post["text"].split())
    assert meta["reading_time_seconds"] >= 1
    assert meta["model"]
    assert set(meta["cache"]) == {"hit", "layer", "key"}
    assert re.fullmatch(r"[0-9a-f]{64}", meta["cache"]["key"])
    assert meta["request_id"]


def test_post_over_http_meets_the_contract(app: ServeApp) -> None:
    request = {
        "topic": "Why code review makes teams faster",
        "tone": "casual",
        "audience": "engineering managers",
        "length": "short",
        "num_hashtags": 4,
        "call_to_action": "How does your team review code?",
    }
    response = app.post("/v1/posts", json=request, headers={"X-Request-ID": "req-123"})
    assert response.status_code == 200, response.text
    post = response.json()
    assert_post_contract(post, request)
    assert post["metadata"]["request_id"] == "req-123"
    assert response.headers["x-request-id"] == "req-123"
    assert post["metadata"]["cache"]["hit"] is False
    assert post["metadata"]["cache"]["layer"] is None
    timings = post["metadata"]["timings_ms"]
    for stage in ("cache_lookup", "title", "content", "hashtags", "generation", "compile", "total"):
        assert timings[stage] >= 0, stage


def test_second_identical_request_is_a_cache_hit(app: ServeApp) -> None:
    request = {"topic": "Mentoring junior developers", "seed": 5}
    first = app.post("/v1/posts", json=request).json()
    # Case and spacing of the topic do not change the key.
    second = app.post("/v1/posts", json={**request, "topic": "  mentoring   JUNIOR developers"})
    body = second.json()
    assert body["metadata"]["cache"]["hit"] is True
    # Answered by the Ingress from the first shared layer, Redis.
    assert body["metadata"]["cache"]["layer"] == "l2"
    assert (body["id"], body["text"]) == (first["id"], first["text"])
    assert body["metadata"]["request_id"] != first["metadata"]["request_id"]


def test_hits_come_from_the_disk_then_redis_then_cachelookups_memory(
    app: ServeApp, redis_db: redis.Redis
) -> None:
    request = {"topic": "Layers of a cache hit", "seed": 8}
    first = app.post("/v1/posts", json=request).json()
    key = first["metadata"]["cache"]["key"]
    redis_key = app.settings.cache.l2_key_prefix + key

    def layer() -> str:
        body = app.post("/v1/posts", json=request).json()
        assert body["text"] == first["text"]
        return str(body["metadata"]["cache"]["layer"])

    assert redis_db.delete(redis_key) == 1
    assert layer() == "l3"  # the Ingress read the disk ...
    assert redis_db.exists(redis_key)  # ... and put the post back into Redis
    assert layer() == "l2"

    # Gone from both shared layers: the Ingress asks CacheLookup, whose memory still has it.
    redis_db.delete(redis_key)
    with diskcache.Cache(str(app.settings.cache.l3_dir)) as disk:
        assert disk.delete(key)
    assert layer() == "l1"


def test_each_read_counts_once_for_the_popular_key_refresh(
    app: ServeApp, redis_db: redis.Redis
) -> None:
    request = {"topic": "Counted once per read", "seed": 9}
    key = app.post("/v1/posts", json=request).json()["metadata"]["cache"]["key"]  # a miss
    for _ in range(2):
        assert app.post("/v1/posts", json=request).json()["metadata"]["cache"]["hit"]
    buckets = app.settings.cache.l2_key_prefix + "popular:*"

    def reads() -> float:
        return sum(redis_db.zscore(b, key) or 0 for b in redis_db.scan_iter(match=buckets))

    deadline = time.monotonic() + 30
    while reads() < 3 and time.monotonic() < deadline:
        time.sleep(1.1)  # counts are sent with a later read, at most once a second
        app.post("/v1/posts", json={"topic": "Counted once, flush", "seed": 9})
    time.sleep(1)
    assert reads() == 3


def _redis_commands_during(client: redis.Redis, action: Callable[[], Any]) -> list[str]:
    """Every command Redis ran while `action` ran (MONITOR), as 'NAME arg ...' strings."""
    seen: list[str] = []
    stop = f"monitor-stop-{uuid.uuid4().hex}"
    ready = threading.Event()

    def watch() -> None:
        with client.monitor() as monitor:
            ready.set()
            for command in monitor.listen():
                if stop in command["command"]:
                    return
                seen.append(command["command"])

    watcher = threading.Thread(target=watch)
    watcher.start()
    ready.wait(10)
    time.sleep(0.2)
    try:
        action()
    finally:
        redis.Redis.from_url(REDIS_DB_URL).echo(stop)
        watcher.join(30)
    return seen


def test_a_miss_reads_the_shared_layers_once(app: ServeApp, redis_db: redis.Redis) -> None:
    # One pass down the graph: the Ingress reads Redis and the disk and hands the miss on with
    # the layers it read; CacheLookup reads only its memory, and the writer does not read again.
    # The one other read is single-flight's: the leader looks once more after taking the lock,
    # in case another replica stored the post between the miss and the lock.
    request = {"topic": "Read once on the way down", "seed": 12}
    answers: list[dict] = []
    commands = _redis_commands_during(
        redis_db, lambda: answers.append(app.post("/v1/posts", json=request).json())
    )
    key = app.settings.cache.l2_key_prefix + answers[0]["metadata"]["cache"]["key"]
    reads = [c for c in commands if c.split()[0] in ("GET", "MGET") and key in c]
    assert answers[0]["metadata"]["cache"]["hit"] is False
    assert len(reads) == 2, reads


def test_use_cache_false_generates_again_and_seed_makes_it_repeatable(app: ServeApp) -> None:
    request = {"topic": "Remote onboarding that works", "seed": 42, "use_cache": False}
    first = app.post("/v1/posts", json=request).json()
    second = app.post("/v1/posts", json=request).json()
    assert second["metadata"]["cache"]["hit"] is False
    assert second["id"] != first["id"]
    for field in ("title", "content", "hashtags", "text"):
        assert second[field] == first[field], field
    other_seed = app.post("/v1/posts", json={**request, "seed": 43}).json()
    assert other_seed["text"] != first["text"]


def test_zero_hashtags_skips_the_hashtag_line(app: ServeApp) -> None:
    request = {"topic": "Writing clear commit messages", "num_hashtags": 0, "length": "long"}
    post = app.post("/v1/posts", json=request).json()
    assert_post_contract(post, request)
    assert "hashtags" not in post["metadata"]["timings_ms"]


def test_batch_endpoint_keeps_order(app: ServeApp) -> None:
    requests = [
        {"topic": "Batch topic one", "num_hashtags": 0},
        {"topic": "Batch topic two", "num_hashtags": 2, "length": "short"},
        {"topic": "Batch topic three", "num_hashtags": 5, "call_to_action": "Tell me more."},
    ]
    response = app.post("/v1/posts/batch", json={"requests": requests})
    assert response.status_code == 200, response.text
    posts = response.json()["posts"]
    assert len(posts) == 3
    for post, request in zip(posts, requests):
        assert_post_contract(post, request)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "topic"),
        ({"topic": "  a "}, "topic"),
        ({"topic": "x" * 501}, "topic"),
        ({"topic": "ok topic", "tone": "angry"}, "tone"),
        ({"topic": "ok topic", "length": "epic"}, "length"),
        ({"topic": "ok topic", "num_hashtags": 11}, "num_hashtags"),
        ({"topic": "ok topic", "num_hashtags": -1}, "num_hashtags"),
        ({"topic": "ok topic", "audience": "a" * 201}, "audience"),
        ({"topic": "ok topic", "call_to_action": "c" * 201}, "call_to_action"),
        ({"topic": "ok topic", "seed": -3}, "seed"),
        ({"topic": "bad\x00topic"}, "topic"),
        ({"topic": "ok topic", "colour": "blue"}, "colour"),
        # Valid JSON escapes of strings that are not valid text, or not visible.
        ({"topic": "Reliability \ud800 testing"}, "topic"),
        ({"topic": "Reliability \udfff testing", "use_cache": False}, "topic"),
        ({"topic": "ok topic", "audience": "site \ud800 engineers"}, "audience"),
        ({"topic": "\u200b\u200b\u200b"}, "topic"),
        ({"topic": "ok topic", "call_to_action": "Read more \u202etxt.exe"}, "call_to_action"),
    ],
)
def test_invalid_input_is_a_422_naming_the_field(app: ServeApp, body: dict, field: str) -> None:
    # json.dumps escapes what is not ASCII, lone surrogates included ("\\ud800"): valid JSON.
    content = json.dumps(body).encode()
    response = app.post("/v1/posts", content=content, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert field in error["message"]
    assert any(d["field"] == field for d in error["details"])


def test_malformed_json_unknown_route_and_oversized_batch(app: ServeApp) -> None:
    malformed = app.post(
        "/v1/posts", content=b'{"topic": ', headers={"content-type": "application/json"}
    )
    assert malformed.status_code == 400
    assert malformed.json()["error"]["code"] == "bad_request"

    missing = app.get("/v1/nothing-here")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"

    too_many = app.post("/v1/posts/batch", json={"requests": [{"topic": "t" * 5}] * 33})
    assert too_many.status_code == 422
    assert "requests" in too_many.json()["error"]["message"]

    empty = app.post("/v1/posts/batch", json={"requests": []})
    assert empty.status_code == 422


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
def test_a_method_a_route_does_not_take_is_405_with_allow(app: ServeApp, method: str) -> None:
    response = app.client.request(method, "/v1/posts", json={"topic": "Wrong method"})
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
    assert response.headers["allow"] == "POST"


@pytest.mark.parametrize("request_id", [b"id-\xff\xfe", b"x" * 4096, b"forged\tlog {line}"])
def test_a_bad_request_id_is_replaced_never_echoed(app: ServeApp, request_id: bytes) -> None:
    request = {"topic": "Request ids from outside", "seed": 11}
    response = app.post("/v1/posts", json=request, headers={"X-Request-ID": request_id})
    assert response.status_code == 200, response.text
    given = response.headers["x-request-id"]
    assert given.encode() != request_id and 0 < len(given) <= 128
    assert response.json()["metadata"]["request_id"] == given


@pytest.mark.parametrize(
    "raw",
    [
        b"GARBAGE\r\n\r\n",
        b"POST /v1/posts HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n",
    ],
)
def test_malformed_http_is_a_json_400(app: ServeApp, raw: bytes) -> None:
    import socket
    from urllib.parse import urlparse

    address = urlparse(app.url)
    with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
        sock.sendall(raw)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), answer
    assert b"content-type: application/json" in head.lower()
    assert json.loads(body)["error"]["code"] == "bad_request"


def test_oversized_request_headers_are_a_json_431(app: ServeApp) -> None:
    headers = {f"x-padding-{i}": "p" * 4000 for i in range(25)}  # 100 KB
    response = app.post("/v1/posts", json={"topic": "Big headers"}, headers=headers)
    assert response.status_code == 431
    assert response.json()["error"]["code"] == "headers_too_large"
    one_line = app.post("/v1/posts", json={"topic": "Big header"}, headers={"x-big": "b" * 9000})
    assert one_line.status_code == 431


def test_ray_listens_on_loopback_only(app: ServeApp) -> None:
    # The metrics agent's Prometheus export has no auth: `make run` keeps every Ray port on
    # 127.0.0.1 (deployments/local_ray.py), whatever security.metrics says.
    import ipaddress

    import psutil
    import ray

    metrics_port = ray.nodes()[0]["MetricsExportPort"]
    ray_pids = _ray_pids()
    listening = [
        (c.laddr, c.pid)
        for c in psutil.net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN and c.pid in ray_pids
    ]
    assert any(addr.port == metrics_port for addr, _ in listening), (metrics_port, listening)

    def loopback(ip: str) -> bool:
        address = ipaddress.ip_address(ip.split("%")[0])
        mapped = getattr(address, "ipv4_mapped", None)
        return bool(address.is_loopback or (mapped and mapped.is_loopback))

    exposed = [(a, psutil.Process(pid).name()) for a, pid in listening if not loopback(a.ip)]
    assert not exposed, exposed


def _ray_pids() -> set[int]:
    import psutil

    names = ("raylet", "gcs_server", "ray::", "dashboard", "default_worker", "log_monitor")
    pids = set()
    for process in psutil.process_iter(["pid", "name", "cmdline"]):
        command = " ".join(process.info["cmdline"] or [process.info["name"] or ""])
        if any(name in command for name in names):
            pids.add(process.info["pid"])
    return pids


def test_health_readiness_and_openapi(app: ServeApp) -> None:
    assert app.get("/healthz").json() == {"status": "ok"}
    ready = app.get("/readyz")
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "ok" and body["ready"] is True and body["busy"] is False
    assert {m["part"] for m in body["models"].values()} == {"title", "content", "hashtags"}
    assert body["cache"] == {"l1": "ok", "l2": "ok", "l3": "ok"}
    assert set(body["deployments"]) == set(DEPLOYMENT_NAMES)
    assert all(d["running"] >= 1 for d in body["deployments"].values())
    schema = app.get("/openapi.json").json()
    assert {"/v1/posts", "/v1/posts/batch", "/healthz", "/readyz"} <= set(schema["paths"])
    assert app.get("/docs").status_code == 200


def test_python_handle_returns_the_same_shape(app: ServeApp) -> None:
    request = {"topic": "Shipping small pull requests", "num_hashtags": 2, "seed": 3}
    handle = serve.get_app_handle(app.name)
    via_handle = handle.generate.remote(request).result(timeout_s=120)
    assert_post_contract(via_handle, request)
    via_http = app.post("/v1/posts", json=request).json()
    assert set(via_handle) == set(via_http)
    assert set(via_handle["metadata"]) == set(via_http["metadata"])
    # The handle wrote the post to the cache: HTTP answers the same post.
    assert via_http["text"] == via_handle["text"]


def test_model_deployment_batches_concurrent_requests(app: ServeApp) -> None:
    handle = serve.get_deployment_handle("ContentModel", app_name=app.name)
    jobs = [
        build_job("content", PostRequest(topic=f"Concurrent topic {i}"), i, GenerationSettings())
        for i in range(6)
    ]

    async def fan_out() -> list:
        return await asyncio.gather(*(handle.generate.remote(job) for job in jobs))

    results = asyncio.run(fan_out())
    assert len(results) == 6
    assert max(r.batch_size for r in results) > 1, "concurrent requests were not batched"


def test_a_model_deployment_can_have_its_own_thread_count(app: ServeApp) -> None:
    def info(name: str) -> dict:
        handle = serve.get_deployment_handle(name, app_name=app.name)
        return handle.info.remote().result(timeout_s=30)

    content, title = info("ContentModel"), info("TitleModel")
    assert (content["torch_threads"], content["threads_follow_load"]) == (2, False)
    # Unset, a CPU replica's threads follow the load (engine.core_share): 1 or 2 on 2 cores.
    assert title["threads_follow_load"] and title["torch_threads"] in (1, 2)


def test_concurrent_identical_requests_write_one_post(app: ServeApp) -> None:
    request = {"topic": "Single flight over HTTP", "seed": 77}

    async def burst() -> list[dict]:
        async with httpx.AsyncClient(base_url=app.url, timeout=120) as client:
            responses = await asyncio.gather(
                *(client.post("/v1/posts", json=request) for _ in range(8))
            )
        return [r.json() for r in responses]

    posts = asyncio.run(burst())
    assert len({p["id"] for p in posts}) == 1, "identical requests generated more than once"
    assert sum(not p["metadata"]["cache"]["hit"] for p in posts) >= 1


def test_warm_then_requests_hit_and_delete_drops(app: ServeApp, redis_db: redis.Redis) -> None:
    requests = [{"topic": f"Warm topic {i}", "length": "short", "seed": i} for i in range(3)]
    warmed = app.post("/v1/cache/warm", json={"requests": requests})
    assert warmed.status_code == 200, warmed.text
    assert warmed.json() == {"requested": 3, "generated": 3, "already_cached": 0}
    again = app.post("/v1/cache/warm", json={"requests": requests}).json()
    assert again == {"requested": 3, "generated": 0, "already_cached": 3}

    post = app.post("/v1/posts", json=requests[0]).json()
    assert post["metadata"]["cache"]["hit"] is True
    key = post["metadata"]["cache"]["key"]
    prefix = app.settings.cache.l2_key_prefix
    assert redis_db.exists(prefix + key), "the post was not written to L2"

    assert app.client.delete("/v1/cache", params={"key": key}).json() == {"deleted": key}
    assert not redis_db.exists(prefix + key)
    fresh = app.post("/v1/posts", json=requests[0]).json()
    assert fresh["metadata"]["cache"]["hit"] is False

    assert app.client.delete("/v1/cache").json() == {"deleted": "all"}
    assert not list(redis_db.scan_iter(match=prefix + "*"))
    after = app.post("/v1/posts", json=requests[1]).json()
    assert after["metadata"]["cache"]["hit"] is False

    bad_key = app.client.delete("/v1/cache", params={"key": "not-a-key"})
    assert bad_key.status_code == 422
    assert "key" in bad_key.json()["error"]["message"]


def test_cli_generate_and_warm_against_the_service(
    app: ServeApp, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["generate", "CLI topic over HTTP", "--url", app.url, "--json", "--seed", "4"]) == 0
    assert_post_contract(json.loads(capsys.readouterr().out), {"topic": "CLI topic over HTTP"})

    file = tmp_path / "warm.jsonl"
    file.write_text("\n".join(json.dumps({"topic": f"CLI warm {i}", "seed": i}) for i in range(3)))
    assert main(["warm", str(file), "--url", app.url, "--chunk", "2"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == {
        "generated": 3,
        "already_cached": 0,
        "failed": 0,
    }
    hit = app.post("/v1/posts", json={"topic": "CLI warm 1", "seed": 1}).json()
    assert hit["metadata"]["cache"]["hit"] is True


def test_metrics_count_cache_answers_and_batches(app: ServeApp) -> None:
    app.post("/v1/posts", json={"topic": "Metrics topic", "seed": 3})
    app.post("/v1/posts", json={"topic": "Metrics topic", "seed": 3})
    wanted = ("linkedin_posts_cache_answers", "linkedin_posts_batch_size", "serve_")
    deadline = time.monotonic() + 60  # Ray's agents export every few seconds
    while True:
        response = app.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        if all(name in response.text for name in wanted) or time.monotonic() > deadline:
            break
        time.sleep(2)
    for name in wanted:
        assert name in response.text, f"{name} not exported"
    miss = re.search(
        r'linkedin_posts_cache_answers_total\{[^}]*layer="miss"[^}]*\} (\S+)', response.text
    )
    assert miss and float(miss.group(1)) >= 1


class Load:
    """Clients asking for fresh posts and for cached ones until stopped; every status kept."""

    def __init__(self, app: ServeApp, generations: int = 4, hits: int = 2) -> None:
        self.app = app
        self.stop = threading.Event()
        self.statuses: list[int] = []
        self.in_flight = 0
        self.lock = threading.Lock()
        self.threads = [
            threading.Thread(target=self._client, args=(w, w < generations))
            for w in range(generations + hits)
        ]

    def _client(self, worker: int, generate: bool) -> None:
        with httpx.Client(base_url=self.app.url, timeout=120) as http:
            i = 0
            while not self.stop.is_set():
                if generate:
                    request = {"topic": f"Redeploy load {worker} {i}", "use_cache": False}
                else:
                    request = {"topic": f"Redeploy hit {worker}", "seed": 1}
                with self.lock:
                    self.in_flight += generate
                status = http.post("/v1/posts", json=request).status_code
                with self.lock:
                    self.in_flight -= generate
                    self.statuses.append(status)
                i += 1

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        # Under way: answers coming back and a generation in flight (a busy machine is slower).
        deadline = time.monotonic() + 120
        while len(self.statuses) < 2 or not self.in_flight:
            assert time.monotonic() < deadline, "the load did not get going"
            time.sleep(0.1)
        return self

    def __exit__(self, *exc: object) -> None:
        time.sleep(2)  # requests to the new replicas too
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=120)


def _redeploy(app: ServeApp, **changes: dict) -> None:
    from graph import build_app

    args = app.settings.model_dump(mode="json")
    for section, values in changes.items():
        args[section] = {**args[section], **values}
    serve.run(build_app(args), name=app.name, route_prefix="/")


def test_redeploy_and_scale_down_under_load_lose_nothing(app: ServeApp) -> None:
    """Last in this module: replaces every replica (new settings), then removes one, while
    clients keep asking for generations and cache hits."""
    with Load(app) as load:
        before = len(load.statuses)
        in_flight = load.in_flight
        # New init args, and a second ContentModel replica: every replica is replaced.
        _redeploy(
            app,
            generation={"temperature": 0.8},
            deployments={"ContentModel": {"min_replicas": 2, "max_replicas": 2, "num_cpus": 0.2}},
        )
    assert before > 0 and len(load.statuses) > before, "no load before or after the redeploy"
    assert in_flight > 0, "no generation was in flight when the redeploy began"
    assert set(load.statuses) == {200}, f"lost requests: {[s for s in load.statuses if s != 200]}"

    with Load(app) as load:
        in_flight = load.in_flight
        # Only the replica count changes: Serve stops one ContentModel replica in place.
        _redeploy(
            app,
            generation={"temperature": 0.8},
            deployments={"ContentModel": {"min_replicas": 1, "max_replicas": 1, "num_cpus": 0.2}},
        )
    assert in_flight > 0
    assert set(load.statuses) == {200}, f"lost requests: {[s for s in load.statuses if s != 200]}"
