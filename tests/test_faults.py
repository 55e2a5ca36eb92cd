"""Faults under load, in a real Serve app on the tiny model with a Redis of its own: Redis
SIGKILLed while cache hits are served, then back."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest
import redis

from tests.conftest import ServeApp
from tests.redis_server import RedisServer


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="module")
def app(
    start_app: Callable[[dict], ServeApp],
    tiny_settings_args: dict,
    redis_server: RedisServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> ServeApp:
    cache = {
        **tiny_settings_args["cache"],
        "redis_url": redis_server.url,
        "l3_dir": str(tmp_path_factory.mktemp("faults-l3")),
        "l2_key_prefix": f"lp-faults-{uuid.uuid4().hex[:8]}:",
    }
    return start_app({**tiny_settings_args, "cache": cache})


def test_redis_killed_under_hits_loses_no_answer_and_no_entry(
    app: ServeApp, redis_server: RedisServer
) -> None:
    requests = [{"topic": f"Fault topic {i}", "length": "short", "seed": i} for i in range(6)]
    texts = {}
    for i, request in enumerate(requests):
        response = app.post("/v1/posts", json=request)
        assert response.status_code == 200, response.text
        texts[i] = response.json()["text"]

    stop = threading.Event()
    answers: list[tuple[int, bool]] = []  # status, same text as first written

    def client(worker: int) -> None:
        with httpx.Client(base_url=app.url, timeout=60) as http:
            i = worker
            while not stop.is_set():
                index = i % len(requests)
                response = http.post("/v1/posts", json=requests[index])
                same = response.status_code == 200 and response.json()["text"] == texts[index]
                answers.append((response.status_code, same))
                i += 1

    threads = [threading.Thread(target=client, args=(w,)) for w in range(3)]
    for thread in threads:
        thread.start()
    time.sleep(1)
    redis_server.kill()
    time.sleep(3)  # hits served from L1 and L3 while Redis is gone
    during = len(answers)
    redis_server.start()
    time.sleep(2)
    stop.set()
    for thread in threads:
        thread.join(timeout=60)

    assert during > 10 and len(answers) > during
    assert {status for status, _ in answers} == {200}, [s for s, _ in answers if s != 200]
    assert all(same for _, same in answers), "a cached post changed or was lost"

    # L2 is used again once Redis answers: a new post reaches the restarted server.
    client_ = redis.Redis.from_url(redis_server.url)
    deadline = time.monotonic() + 60
    written = False
    while time.monotonic() < deadline and not written:
        key = app.post("/v1/posts", json={"topic": f"After the outage {time.monotonic()}"})
        assert key.status_code == 200
        prefix = app.settings.cache.l2_key_prefix
        time.sleep(0.5)  # written in the background
        written = bool(client_.exists(prefix + key.json()["metadata"]["cache"]["key"]))
    client_.close()
    assert written, "L2 was not used again after Redis came back"
