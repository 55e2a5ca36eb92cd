"""The edge's limits without Ray (deployments.edge.limits): failed keys are limited per address
before auth, limits are charged by cost, and a Redis outage does not restart the windows."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import pytest
from limits import parse

from deployments.edge.errors import ApiError
from deployments.edge.limits import Edge, EdgeRefusal, RateLimiter
from deployments.settings import AppSettings
from tests.redis_server import RedisServer

KEY = "limits-key-" + uuid.uuid4().hex


def edge(**security: Any) -> Edge:
    digest = hashlib.sha256(KEY.encode()).hexdigest()
    settings = AppSettings.load(
        {
            "cache": {"redis_url": None},
            "security": {
                "auth_enabled": True,
                "api_keys": [{"name": "k", "sha256": digest}],
                **security,
            },
        }
    )
    return Edge(settings)


def scope(key: str | None, address: str = "10.0.0.1", method: str = "POST") -> dict:
    headers = [(b"content-type", b"application/json")]
    if key is not None:
        headers.append((b"authorization", f"Bearer {key}".encode()))
    return {
        "type": "http",
        "path": "/v1/posts",
        "method": method,
        "headers": headers,
        "client": (address, 4321),
    }


async def status(e: Edge, s: dict) -> int:
    try:
        await e.admit(s)
    except EdgeRefusal as refusal:
        return refusal.status_code
    return 200


async def test_failed_keys_are_limited_per_address_before_auth() -> None:
    e = edge(auth_failure_limit="3/minute")
    guesses = [await status(e, scope(f"guess-{i}")) for i in range(6)]
    assert guesses == [401, 401, 401, 429, 429, 429]
    assert await status(e, scope(None)) == 429  # a missing key is a failure too
    # The address is refused whatever it sends now, so a right guess is not recognisable...
    assert await status(e, scope(KEY)) == 429
    # ... while other addresses are served.
    assert await status(e, scope(KEY, address="10.0.0.2")) == 200


async def test_good_keys_do_not_count_as_failures() -> None:
    e = edge(auth_failure_limit="3/minute")
    assert [await status(e, scope(KEY)) for _ in range(10)] == [200] * 10


async def test_generations_are_charged_by_count_and_a_refusal_costs_nothing() -> None:
    e = edge(rate_limit="10/minute")
    s = scope(KEY)
    await e.admit(s)
    caller = s["state"]["caller"]
    await e.charge_generations(caller, 7)  # a batch of 7 misses
    with pytest.raises(ApiError) as refused:
        await e.charge_generations(caller, 4)
    assert refused.value.status == 429
    assert "generates 4, 3 left" in refused.value.message
    assert 1 <= int(refused.value.headers["Retry-After"]) <= 60
    await e.charge_generations(caller, 3)  # the refused 4 were not charged
    with pytest.raises(ApiError):
        await e.charge_generations(caller, 1)


async def test_cache_hits_do_not_spend_the_generation_limit() -> None:
    e = edge(rate_limit="2/minute", request_rate_limit="100/minute")
    statuses = []
    for _ in range(50):  # fifty requests answered from the cache: no generation charged
        s = scope(KEY)
        statuses.append(await status(e, s))
        await e.charge_generations(s["state"]["caller"], 0)
    assert statuses == [200] * 50
    await e.charge_generations(s["state"]["caller"], 2)


async def test_the_request_limit_counts_every_request() -> None:
    e = edge(request_rate_limit="5/minute")
    assert [await status(e, scope(KEY)) for _ in range(7)] == [200] * 5 + [429] * 2


async def test_a_redis_outage_keeps_counting_instead_of_starting_over() -> None:
    limit = parse("10/minute")
    with RedisServer() as server:
        limiter = RateLimiter(server.url)
        verdicts = [await limiter.hit(limit, "ip:10.0.0.9") for _ in range(10)]
        assert all(v.allowed for v in verdicts)
        assert verdicts[-1].remaining == 0
        server.stop()
        # Redis is gone: this replica still has its own count of the window.
        after = [await limiter.hit(limit, "ip:10.0.0.9") for _ in range(3)]
    assert not any(v.allowed for v in after)
