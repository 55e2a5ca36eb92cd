"""The tiered cache against real Redis servers (never mocks): the shared one on 127.0.0.1:6379
(db 13, keys under a per-test prefix, removed afterwards) and throwaway ones started here."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import diskcache
import pytest
import pytest_asyncio
import redis

from deployments.cache import TieredCache
from deployments.cache.codec import decode, encode
from deployments.cache.keys import cache_key
from deployments.cache.layers import DiskLayer, Layer, MemoryLayer, RedisLayer
from deployments.schemas import PostRequest
from tests.redis_server import RedisServer

SHARED_URL = "redis://127.0.0.1:6379/13"

pytestmark = pytest.mark.timeout(60)


def _delete_prefix(client: redis.Redis, prefix: str) -> None:
    keys = list(client.scan_iter(match=prefix + "*", count=500))
    if keys:
        client.delete(*keys)


@pytest.fixture
def prefix() -> Iterator[str]:
    """This test's key prefix on db 13 of the shared server; its keys are removed afterwards
    (after every cache built by `make_cache` is closed, which sends its last read counts)."""
    prefix = f"test-cache:{uuid.uuid4().hex[:10]}:"
    yield prefix
    try:
        with redis.Redis.from_url(SHARED_URL, socket_timeout=1) as client:
            _delete_prefix(client, prefix)
    except redis.ConnectionError:
        pass


@pytest.fixture
def shared_redis(prefix: str) -> Iterator[redis.Redis]:
    """A synchronous client of db 13 of the shared server."""
    client = redis.Redis.from_url(SHARED_URL, socket_timeout=1)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        client.close()
        # .ci/run starts one; a missing server is a broken environment, not a reason to skip.
        raise RuntimeError("these tests need a Redis server on 127.0.0.1:6379") from exc
    yield client
    client.close()


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    """A throwaway server for tests that read its INFO (nothing else writes to it)."""
    with RedisServer() as server:
        yield server


CacheFactory = Callable[..., TieredCache]


@pytest_asyncio.fixture(loop_scope="function")
async def make_cache(prefix: str, tmp_path: Path) -> AsyncIterator[CacheFactory]:
    """Builds TieredCaches (L1 + L2 on db 13 of the shared server + L3 under tmp_path by default)
    and closes them afterwards. Two caches built here share Redis like two replicas would."""
    made: list[TieredCache] = []

    def make(
        *,
        l1: bool = True,
        redis_url: str | None = SHARED_URL,
        disk: Path | bool | None = True,
        l1_ttl_s: float = 60,
        l1_max_entries: int = 1000,
        l1_max_bytes: int = 1 << 20,
        l2_ttl_s: float = 60,
        retry_after_s: float = 2.0,
        compression_threshold: int = 1024,
        **options: Any,
    ) -> TieredCache:
        layers: list[Layer] = []
        if l1:
            layers.append(MemoryLayer(l1_max_entries, l1_max_bytes, l1_ttl_s))
        if redis_url:
            layers.append(
                RedisLayer(
                    redis_url,
                    ttl_s=l2_ttl_s,
                    key_prefix=prefix,
                    socket_timeout_s=0.5,
                    max_connections=32,
                    retry_after_s=retry_after_s,
                )
            )
        if disk:
            directory = disk if isinstance(disk, Path) else tmp_path / f"l3-{len(made)}"
            layers.append(DiskLayer(directory, size_limit=16 << 20, ttl_s=3600))
        options.setdefault("poll_interval_s", 0.01)
        cache = TieredCache(layers, compression_threshold, **options)
        made.append(cache)
        return cache

    yield make
    for cache in made:
        await cache.close()


def layer(cache: TieredCache, name: str) -> Any:
    found = cache.layer(name)
    assert found is not None
    return found


class Generator:
    """A stand-in for the models: counts its calls, optionally slow or failing."""

    def __init__(self, delay_s: float = 0.1, error: Exception | None = None) -> None:
        self.delay_s = delay_s
        self.error = error
        self.calls = 0
        self.cancelled = 0

    async def __call__(self) -> dict[str, Any]:
        self.calls += 1
        call = self.calls
        try:
            await asyncio.sleep(self.delay_s)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        if self.error is not None:
            raise self.error
        return {"text": f"post #{call}", "call": call}


def ray_serve_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "ray.serve" and r.levelno >= logging.WARNING]


# --- promotion, expiry, bounds, persistence ---------------------------------------------------


async def test_l3_hit_fills_l2_and_l1(make_cache: CacheFactory, shared_redis, prefix) -> None:
    cache = make_cache()
    value = {"text": "from disk"}
    await layer(cache, "l3").set_many([("k", encode(value, 1024))])

    hit = await cache.get("k")
    assert hit is not None and hit.layer == "l3" and hit.value == value
    assert decode(shared_redis.get(prefix + "k")) == value
    assert await layer(cache, "l1").get_many(["k"]) == [encode(value, 1024)]

    hit = await cache.get("k")
    assert hit is not None and hit.layer == "l1"


async def test_each_key_skips_the_layers_already_read(make_cache: CacheFactory) -> None:
    # What the Ingress read and missed is not read again by CacheLookup.
    cache = make_cache(redis_url=None)
    in_l3 = {"text": "only on disk"}
    await layer(cache, "l3").set_many([(k, encode(in_l3, 1024)) for k in ("disk", "disk-2")])
    await cache.put("both", {"text": "everywhere"})
    hits = await cache.get_each(
        ["disk", "disk-2", "both", "both"],
        [frozenset(), frozenset({"l3"}), frozenset({"l1"}), frozenset({"l1", "l3"})],
    )
    assert [h.layer if h else None for h in hits] == ["l3", None, "l3", None]


async def test_a_hit_fills_the_layers_above_it_even_those_skipped(
    make_cache: CacheFactory, shared_redis, prefix
) -> None:
    # The Ingress on another node missed in Redis; this replica's disk has the post: it goes
    # back into Redis as well as into memory.
    cache = make_cache()
    value = {"text": "on this node's disk"}
    await layer(cache, "l3").set_many([("k", encode(value, 1024))])
    (hit,) = await cache.get_each(["k"], [frozenset({"l2"})])
    assert hit is not None and hit.layer == "l3"
    assert decode(shared_redis.get(prefix + "k")) == value
    assert await layer(cache, "l1").get_many(["k"]) == [encode(value, 1024)]


async def test_l2_hit_fills_l1(make_cache: CacheFactory, shared_redis, prefix) -> None:
    cache = make_cache()
    value = {"text": "from redis"}
    shared_redis.set(prefix + "k", encode(value, 1024))

    hit = await cache.get("k")
    assert hit is not None and hit.layer == "l2" and hit.value == value
    assert await layer(cache, "l1").get_many(["k"]) == [encode(value, 1024)]
    assert (await cache.get("k")).layer == "l1"


async def test_put_writes_every_layer(make_cache: CacheFactory, shared_redis, prefix) -> None:
    cache = make_cache()
    await cache.put("k", {"n": 1})
    for name in ("l1", "l3"):
        assert decode((await layer(cache, name).get_many(["k"]))[0]) == {"n": 1}
    assert decode(shared_redis.get(prefix + "k")) == {"n": 1}


async def test_l1_ttl_expires() -> None:
    l1 = MemoryLayer(max_entries=10, max_bytes=1 << 20, ttl_s=0.2)
    await l1.set_many([("k", b"jvalue")])
    assert await l1.get_many(["k"]) == [b"jvalue"]
    await asyncio.sleep(0.3)
    assert await l1.get_many(["k"]) == [None]


async def test_l2_ttl_expires(make_cache: CacheFactory, shared_redis, prefix) -> None:
    cache = make_cache(l1=False, disk=False, l2_ttl_s=0.3)
    await cache.put("k", {"n": 1})
    assert 0 < shared_redis.pttl(prefix + "k") <= 300
    assert (await cache.get("k")).layer == "l2"
    await asyncio.sleep(0.4)
    assert await cache.get("k") is None
    assert shared_redis.exists(prefix + "k") == 0


async def test_l1_entry_bound_evicts() -> None:
    l1 = MemoryLayer(max_entries=3, max_bytes=1 << 20, ttl_s=60)
    await l1.set_many([(f"k{i}", b"jx") for i in range(5)])
    assert len(l1) == 3
    assert await l1.get_many(["k0", "k1"]) == [None, None]
    assert await l1.get_many(["k4"]) == [b"jx"]


async def test_l1_byte_bound_evicts() -> None:
    l1 = MemoryLayer(max_entries=100, max_bytes=250, ttl_s=60)
    await l1.set_many([(f"k{i}", b"j" + b"x" * 99) for i in range(4)])  # 100 bytes each
    assert len(l1) == 2
    assert await l1.get_many(["k2", "k3"]) == [b"j" + b"x" * 99] * 2
    await l1.set_many([("huge", b"j" + b"x" * 300)])  # larger than the whole bound: not kept
    assert await l1.get_many(["huge"]) == [None]


async def test_l3_persists_across_instances(make_cache: CacheFactory, tmp_path: Path) -> None:
    directory = tmp_path / "persisted"
    first = make_cache(redis_url=None, disk=directory)
    await first.put("k", {"text": "kept"})
    await first.close()

    second = make_cache(redis_url=None, disk=directory)
    hit = await second.get("k")
    assert hit is not None and hit.layer == "l3" and hit.value == {"text": "kept"}


# --- corrupt entries and compression ------------------------------------------------------------

GARBAGE = [b"\xff\x00garbage", b"znot zstd at all", b"j{not json", b"j[1, 2]", b""]


@pytest.mark.parametrize("garbage", GARBAGE, ids=["header", "zstd", "json", "not-object", "empty"])
@pytest.mark.parametrize("where", ["l2", "l3"])
async def test_corrupt_entry_is_a_miss_dropped_and_replaced(
    make_cache: CacheFactory, shared_redis, prefix, tmp_path: Path, where: str, garbage: bytes
) -> None:
    directory = tmp_path / "l3"
    cache = make_cache(disk=directory)
    if where == "l2":
        shared_redis.set(prefix + "k", garbage)
    else:
        with diskcache.Cache(str(directory)) as raw:
            raw.set("k", garbage)

    assert await cache.get("k") is None
    generate = Generator(delay_s=0)
    value, hit_layer = await cache.get_or_generate("k", generate)
    assert (value, hit_layer, generate.calls) == ({"text": "post #1", "call": 1}, None, 1)

    # Replaced in every layer by the fresh value; the garbage is never returned.
    assert decode(shared_redis.get(prefix + "k")) == value
    assert decode((await layer(cache, "l3").get_many(["k"]))[0]) == value
    fresh = make_cache(disk=directory)  # empty L1: reads L2 then L3
    assert (await fresh.get("k")).value == value


async def test_corrupt_entry_is_dropped_without_regeneration(
    make_cache: CacheFactory, shared_redis, prefix, caplog: pytest.LogCaptureFixture
) -> None:
    cache = make_cache(l1=False)
    shared_redis.set(prefix + "k", b"\x00junk")
    with caplog.at_level(logging.WARNING, logger="ray.serve"):
        assert await cache.get("k") is None
    assert shared_redis.exists(prefix + "k") == 0
    assert any("corrupt l2 cache entry k" in r.getMessage() for r in caplog.records)


async def test_compression_above_threshold(make_cache: CacheFactory, shared_redis, prefix) -> None:
    cache = make_cache(l1=False, disk=False, compression_threshold=200)
    small = {"text": "short"}
    large = {"text": "word " * 1000, "hashtags": ["#a", "#b"]}
    await cache.put_many([("small", small), ("large", large)])

    small_blob, large_blob = shared_redis.get(prefix + "small"), shared_redis.get(prefix + "large")
    assert small_blob.startswith(b"j")
    assert large_blob.startswith(b"z")
    assert len(large_blob) < len(large["text"]) // 4
    assert decode(large_blob) == large
    assert [hit.value for hit in await cache.get_many(["small", "large"])] == [small, large]


# --- get_many / put_many ------------------------------------------------------------------------


def _mget_calls(client: redis.Redis) -> int:
    return client.info("commandstats").get("cmdstat_mget", {}).get("calls", 0)


async def test_get_many_mixed_layers_one_round_trip_each(
    make_cache: CacheFactory, redis_server: RedisServer
) -> None:
    cache = make_cache(redis_url=redis_server.url)
    l1, l2, l3 = layer(cache, "l1"), layer(cache, "l2"), layer(cache, "l3")
    blob = {name: encode({"from": name}, 1024) for name in ("l1", "l2", "l3", "all")}
    await l1.set_many([("a", blob["l1"])])
    await l2.set_many([("b", blob["l2"])])
    await l3.set_many([("c", blob["l3"])])
    await cache.put_many([("e", {"from": "all"}), ("f", {"from": "all"})])

    with redis_server.client() as client:
        before = _mget_calls(client)
        hits = await cache.get_many(["a", "b", "c", "d", "e", "f"], count=False)
        assert _mget_calls(client) - before == 1  # b, c and d asked of Redis together

    assert [hit.layer if hit else None for hit in hits] == ["l1", "l2", "l3", None, "l1", "l1"]
    assert [hit.value if hit else None for hit in hits] == [
        {"from": "l1"},
        {"from": "l2"},
        {"from": "l3"},
        None,
        {"from": "all"},
        {"from": "all"},
    ]
    # The L3 hit went up to L2 and L1; the L2 hit to L1.
    assert await l1.get_many(["b", "c"]) == [blob["l2"], blob["l3"]]
    assert await l2.get_many(["c"]) == [blob["l3"]]


# --- single flight ------------------------------------------------------------------------------


@pytest.mark.parametrize("with_redis", [True, False], ids=["redis", "in-process"])
async def test_concurrent_misses_generate_once(
    make_cache: CacheFactory, shared_redis, with_redis: bool
) -> None:
    cache = make_cache(redis_url=SHARED_URL if with_redis else None)
    generate = Generator(delay_s=0.2)
    results = await asyncio.gather(*(cache.get_or_generate("k", generate) for _ in range(20)))
    assert generate.calls == 1
    assert all(result == ({"text": "post #1", "call": 1}, None) for result in results)
    assert await cache.get_or_generate("k", generate) == ({"text": "post #1", "call": 1}, "l1")
    assert generate.calls == 1


async def test_two_replicas_generate_once(make_cache: CacheFactory, shared_redis) -> None:
    replicas = [make_cache(), make_cache()]  # own L1 and L3, one Redis
    followed: list[list[str]] = [[], []]  # what each replica's follower counter hears
    for replica, heard in zip(replicas, followed):
        replica.single_flight.on_follow = heard.append
    generates = [Generator(delay_s=0.3), Generator(delay_s=0.3)]
    results = await asyncio.gather(
        *(
            replica.get_or_generate("k", generate)
            for _ in range(10)
            for replica, generate in zip(replicas, generates)
        )
    )
    assert generates[0].calls + generates[1].calls == 1
    leader = 0 if generates[0].calls else 1
    assert {value["call"] for value, _ in results} == {1}
    layers_by_replica = [{hit for i, (_, hit) in enumerate(results) if i % 2 == r} for r in (0, 1)]
    assert layers_by_replica[leader] == {None}
    assert layers_by_replica[1 - leader] == {"l2"}  # the follower read the leader's result
    # In each replica 9 callers joined the first; the other replica's first read the result.
    assert sorted(followed[leader]) == ["same_process"] * 9
    assert sorted(followed[1 - leader]) == ["other_process"] + ["same_process"] * 9


async def test_leader_lock_is_renewed_while_generating(
    make_cache: CacheFactory, shared_redis
) -> None:
    # The lock lives 0.3 s but generation takes 0.9 s: renewal keeps the follower waiting.
    replicas = [make_cache(lock_ttl_s=0.3), make_cache(lock_ttl_s=0.3)]
    generates = [Generator(delay_s=0.9), Generator(delay_s=0.9)]
    first = asyncio.ensure_future(replicas[0].get_or_generate("k", generates[0]))
    await asyncio.sleep(0.05)
    second = await replicas[1].get_or_generate("k", generates[1])
    assert (generates[0].calls, generates[1].calls) == (1, 0)
    assert second == ((await first)[0], "l2")


async def test_leader_failure_reaches_every_waiter_and_the_next_call_retries(
    make_cache: CacheFactory, shared_redis, prefix
) -> None:
    cache = make_cache()
    failing = Generator(delay_s=0.1, error=RuntimeError("model crashed"))
    results = await asyncio.gather(
        *(cache.get_or_generate("k", failing) for _ in range(10)), return_exceptions=True
    )
    assert failing.calls == 1
    assert all(isinstance(r, RuntimeError) and str(r) == "model crashed" for r in results)
    assert shared_redis.exists(prefix + "lock:k") == 0  # released on failure

    working = Generator(delay_s=0)
    assert await cache.get_or_generate("k", working) == ({"text": "post #1", "call": 1}, None)
    assert working.calls == 1


async def test_follower_generates_after_a_remote_leader_fails(
    make_cache: CacheFactory, shared_redis
) -> None:
    replicas = [make_cache(), make_cache()]
    failing = Generator(delay_s=0.2, error=RuntimeError("model crashed"))
    working = Generator(delay_s=0)
    leader = asyncio.ensure_future(replicas[0].get_or_generate("k", failing))
    await asyncio.sleep(0.05)
    value, hit_layer = await replicas[1].get_or_generate("k", working)
    assert (value["call"], hit_layer, working.calls) == (1, None, 1)
    with pytest.raises(RuntimeError, match="model crashed"):
        await leader


async def test_follower_takes_over_when_the_leader_dies(
    make_cache: CacheFactory, shared_redis, prefix
) -> None:
    cache = make_cache(follower_wait_s=5)
    # A "leader" elsewhere took the lock and died: it never writes, its lock lapses in 0.4 s.
    assert shared_redis.set(prefix + "lock:k", b"dead-leader", nx=True, px=400)
    generate = Generator(delay_s=0)
    started = time.monotonic()
    value, hit_layer = await cache.get_or_generate("k", generate)
    elapsed = time.monotonic() - started
    assert (value["call"], hit_layer, generate.calls) == (1, None, 1)
    assert 0.3 <= elapsed < 2.0
    assert decode(shared_redis.get(prefix + "k")) == value


async def test_follower_stops_waiting_after_follower_wait_s(
    make_cache: CacheFactory, shared_redis, prefix
) -> None:
    cache = make_cache(follower_wait_s=0.3)
    followed: list[str] = []
    cache.single_flight.on_follow = followed.append
    assert shared_redis.set(prefix + "lock:k", b"stuck-leader", nx=True, px=30_000)
    generate = Generator(delay_s=0)
    started = time.monotonic()
    _, hit_layer = await cache.get_or_generate("k", generate)
    assert 0.3 <= time.monotonic() - started < 1.5
    assert (hit_layer, generate.calls, followed) == (None, 1, ["gave_up"])
    assert shared_redis.get(prefix + "lock:k") == b"stuck-leader"  # never someone else's lock


async def test_read_false_skips_reads_but_stores(
    make_cache: CacheFactory, shared_redis, prefix
) -> None:
    cache = make_cache()
    await cache.put("k", {"text": "old"})
    generate = Generator(delay_s=0)
    value, hit_layer = await cache.get_or_generate("k", generate, read=False)
    assert (value, hit_layer, generate.calls) == ({"text": "post #1", "call": 1}, None, 1)
    assert (await cache.get("k")).value == value
    assert decode(shared_redis.get(prefix + "k")) == value


async def test_cancelled_waiters(make_cache: CacheFactory, shared_redis, prefix) -> None:
    cache = make_cache()
    generate = Generator(delay_s=0.3)
    first = asyncio.ensure_future(cache.get_or_generate("k", generate))
    second = asyncio.ensure_future(cache.get_or_generate("k", generate))
    await asyncio.sleep(0.05)
    first.cancel()
    assert (await second)[0]["call"] == 1  # one caller leaving doesn't stop the others
    assert first.cancelled() and generate.cancelled == 0

    lone = asyncio.ensure_future(cache.get_or_generate("other", generate))
    await asyncio.sleep(0.05)
    lone.cancel()
    await asyncio.sleep(0.05)
    assert generate.cancelled == 1  # nobody left waiting: generation stopped, lock released
    assert shared_redis.exists(prefix + "lock:other") == 0
    assert not cache.single_flight.in_flight("other")


# --- deletes across replicas and nodes -----------------------------------------------------------


async def _eventually(check: Callable[[], Awaitable[bool]], timeout_s: float = 3) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.01)
    return False


async def test_a_delete_reaches_every_other_caches_memory_and_disk(
    make_cache: CacheFactory, shared_redis
) -> None:
    """Two replicas on two nodes: their own L1, their own L3 (two folders), one Redis."""
    here, there = make_cache(), make_cache()
    there.listen_for_deletes()
    assert there.invalidation is not None
    await asyncio.wait_for(there.invalidation.subscribed.wait(), 5)
    blobs = [(k, encode({"k": k}, 1024)) for k in ("k1", "k2", "k3")]
    for cache in (here, there):
        for name in ("l1", "l3"):
            await layer(cache, name).set_many(blobs)
    await here.put_many([(k, {"k": k}) for k in ("k1", "k2", "k3")])

    async def held_by_there(key: str) -> list[bool]:
        return [(await layer(there, n).get_many([key]))[0] is not None for n in ("l1", "l3")]

    await here.delete(["k1"])
    assert await _eventually(lambda: _gone(held_by_there, "k1"))
    assert await held_by_there("k2") == [True, True]  # only what was deleted
    assert await there.get("k1") is None

    await here.clear()
    assert await _eventually(lambda: _gone(held_by_there, "k2"))
    assert await _eventually(lambda: _gone(held_by_there, "k3"))


async def _gone(held: Callable[[str], Awaitable[list[bool]]], key: str) -> bool:
    return not any(await held(key))


async def test_a_cache_ignores_its_own_deletes_and_malformed_messages(
    make_cache: CacheFactory, shared_redis, prefix: str
) -> None:
    cache = make_cache()
    cache.listen_for_deletes()
    assert cache.invalidation is not None
    await asyncio.wait_for(cache.invalidation.subscribed.wait(), 5)
    shared_redis.publish(prefix + "invalidate", b"not json")
    await cache.put("kept", {"n": 1})
    await cache.invalidation.publish(None)  # its own "clear everything": not applied twice
    await asyncio.sleep(0.2)
    assert (await cache.get("kept")).layer == "l1"
    assert not cache.invalidation._listener.done()  # type: ignore[union-attr]


# --- Redis outage -------------------------------------------------------------------------------


async def test_redis_outage_serves_from_l1_and_l3_with_one_warning(
    make_cache: CacheFactory, caplog: pytest.LogCaptureFixture
) -> None:
    server = RedisServer().start()
    try:
        cache = make_cache(redis_url=server.url, retry_after_s=0.2)
        states: list[bool] = []  # what the replica's redis-up gauge hears
        layer(cache, "l2").on_state = states.append
        await cache.put("in-all", {"text": "everywhere"})
        await layer(cache, "l3").set_many([("on-disk", encode({"text": "disk"}, 1024))])
        assert cache.status() == {"l1": "ok", "l2": "ok", "l3": "ok"}
        caplog.set_level(logging.INFO, logger="ray.serve")

        for outage in (1, 2):
            caplog.clear()
            server.stop()
            started = time.monotonic()
            while time.monotonic() - started < 0.6:  # long enough for the breaker to retry twice
                assert (await cache.get("in-all")).layer == "l1"
                assert await cache.get("nowhere") is None  # asks Redis (once the breaker allows)
                assert (await cache.get("on-disk")).layer in ("l3", "l1")
                generate = Generator(delay_s=0)
                value, _ = await cache.get_or_generate(f"new-{outage}", generate)
                assert value["text"].startswith("post #")
                assert await cache.popular_keys() == []
                assert await cache.entries_due_for_refresh() == []
                await asyncio.sleep(0.02)
            assert cache.status()["l2"] == "degraded"
            warnings = ray_serve_warnings(caplog)
            assert len(warnings) == 1, [r.getMessage() for r in warnings]
            assert "Redis cache unavailable" in warnings[0].getMessage()

            server.start()
            await asyncio.sleep(0.25)  # past retry_after_s
            with server.client() as client:  # the restarted server is empty
                client.set(layer(cache, "l2").key_prefix + f"back-{outage}", encode({"n": 1}, 9))
            hit = await cache.get(f"back-{outage}")
            assert hit is not None and hit.layer == "l2"
            assert cache.status()["l2"] == "ok"
            await cache.put(f"after-{outage}", {"n": 2})
            with server.client() as client:
                key = layer(cache, "l2").key_prefix + f"after-{outage}"
                assert decode(client.get(key)) == {"n": 2}
            assert len(ray_serve_warnings(caplog)) == 1  # the recovery is logged at INFO
        assert states == [True, False, True, False, True], "each change once, no repeats"
    finally:
        server.stop()


# --- popularity and refresh-ahead ---------------------------------------------------------------


async def test_popular_keys_count_reads_across_replicas(
    make_cache: CacheFactory, shared_redis
) -> None:
    replicas = [make_cache(), make_cache()]
    await replicas[0].put("a", {"n": 1})
    for replica, key in [(0, "a"), (1, "a"), (1, "a"), (0, "b"), (1, "b"), (0, "c")]:
        await replicas[replica].get(key)  # misses count as reads too
    await replicas[0].get_many(["c", "d"], count=False)  # not counted
    # Counts are sent at most once a second per replica; a replica's own are sent when asked.
    await replicas[1].popularity.flush()
    assert await replicas[0].popular_keys(2) == ["a", "b"]
    assert await replicas[1].popular_keys() == ["a", "b", "c"]
    assert await replicas[1].popular_keys(0) == []


async def test_entries_due_for_refresh_and_refresh(
    make_cache: CacheFactory, shared_redis, prefix
) -> None:
    replicas = [make_cache(refresh_ahead_s=1), make_cache(refresh_ahead_s=1)]
    refreshes: list[str] = []  # what the refresh counters hear
    for replica in replicas:
        replica.on_refresh = refreshes.append
    cache = replicas[0]
    await cache.put_many([(key, {"key": key}) for key in ("hot", "warm", "cold", "gone")])
    for key in ("hot", "hot", "warm", "gone"):
        await cache.get(key)
    shared_redis.pexpire(prefix + "hot", 500)  # about to expire
    shared_redis.pexpire(prefix + "cold", 500)  # about to expire, but nobody reads it
    shared_redis.delete(prefix + "gone")  # not in L2 any more: the next read regenerates it

    assert await cache.entries_due_for_refresh() == ["hot"]
    assert await cache.entries_due_for_refresh(n=10, refresh_ahead_s=120) == ["hot", "warm"]
    assert await cache.entries_due_for_refresh(n=1, refresh_ahead_s=0.1) == []

    # Both replicas see "hot" due; it is regenerated once.
    generates = [Generator(delay_s=0.2), Generator(delay_s=0.2)]
    refreshed = await asyncio.gather(
        *(replica.refresh("hot", g) for replica, g in zip(replicas, generates))
    )
    assert generates[0].calls + generates[1].calls == 1
    assert sorted(refreshed, key=lambda r: r is None) == [{"text": "post #1", "call": 1}, None]
    assert shared_redis.pttl(prefix + "hot") > 50_000
    assert await cache.entries_due_for_refresh() == []
    assert (await replicas[1].get("hot")).value == {"text": "post #1", "call": 1}

    # A late replica that still thinks "hot" is due finds it fresh once it holds the lock.
    late = Generator(delay_s=0)
    assert await replicas[1].refresh("hot", late) is None
    assert late.calls == 0
    assert sorted(refreshes) == ["rewritten", "skipped", "skipped"]

    with pytest.raises(RuntimeError, match="model crashed"):
        failing = Generator(delay_s=0, error=RuntimeError("model crashed"))
        await cache.refresh("warm", failing, refresh_ahead_s=10**6)  # due at once
    assert refreshes[-1] == "failed"


# --- cache keys ---------------------------------------------------------------------------------

BASE = {
    "topic": "Remote work and team culture",
    "tone": "professional",
    "audience": "engineering managers",
    "length": "medium",
    "num_hashtags": 3,
    "call_to_action": "Share your experience below.",
    "seed": 7,
}


def _key(model: str = "model-a", **changes: Any) -> str:
    return cache_key(PostRequest(**{**BASE, **changes}), model)


def test_cache_key_changes_with_the_model() -> None:
    assert _key("model-a") != _key("model-b")


@pytest.mark.parametrize(
    "change",
    [
        {"topic": "Remote work and team rituals"},
        {"tone": "casual"},
        {"audience": "new graduates"},
        {"audience": None},
        {"length": "long"},
        {"num_hashtags": 5},
        {"call_to_action": "Follow for more."},
        {"call_to_action": None},
        {"seed": 8},
        {"seed": None},
    ],
    ids=lambda change: next(iter(change)) + "=" + str(next(iter(change.values()))),
)
def test_cache_key_changes_with_every_output_field(change: dict[str, Any]) -> None:
    assert _key(**change) != _key()


@pytest.mark.parametrize(
    "change",
    [
        {"use_cache": False},
        {"topic": "  remote WORK and   team Culture "},
        {"topic": "REMOTE WORK AND TEAM CULTURE"},
        {"audience": "  engineering   managers "},
    ],
    ids=["use_cache", "topic-whitespace", "topic-case", "audience-whitespace"],
)
def test_cache_key_ignores_use_cache_and_topic_case_and_whitespace(
    change: dict[str, Any],
) -> None:
    assert _key(**change) == _key()
