"""The edge of the service: API-key auth, rate limits, body size and content type.

One ASGI middleware, so the order is explicit and cheap checks run before expensive ones:
open paths pass; then the address's failed-key limit (429), auth (401), the request limit (429),
content type (415) and body size (413), all before FastAPI parses a byte of the body. Limits are
charged by cost: every request costs one unit of the request limit, and every post a request
generates (known once the cache has been read) one of the generation limit, charged by the
Ingress through `Edge.charge_generations`. Every refusal uses the error envelope.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import time
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from limits import RateLimitItem, parse
from limits.aio.strategies import FixedWindowRateLimiter
from limits.storage import storage_from_string
from starlette.exceptions import HTTPException

from deployments.edge.errors import ApiError, error_response
from deployments.settings import AppSettings

logger = logging.getLogger("ray.serve")

Scope = dict[str, Any]
Message = dict[str, Any]


@dataclass(frozen=True)
class Caller:
    identity: str  # what the limits count: "key:<name>" or "ip:<address>"
    request_limit: RateLimitItem  # every request costs 1 (a cache hit costs no more)
    generation_limit: RateLimitItem  # every post generated costs 1 (a batch of N misses, N)


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    remaining: int
    reset: float  # epoch seconds

    def retry_after_s(self) -> int:
        return max(1, math.ceil(self.reset - time.time()))


class EdgeRefusal(HTTPException):
    """An HTTPException so that FastAPI passes it through body parsing untouched and the one
    error mapper renders it."""

    def __init__(self, status: int, message: str, headers: dict[str, str]) -> None:
        super().__init__(status_code=status, detail=message, headers=headers)


class RateLimiter:
    """Fixed windows kept in Redis so a limit holds across every ingress replica and node.

    Every hit is also counted in this replica's memory, so that while Redis is unreachable the
    replica limits from the count it already has instead of starting every window over (logged
    once per outage)."""

    def __init__(self, redis_url: str | None, socket_timeout_s: float = 0.25) -> None:
        self.local = FixedWindowRateLimiter(storage_from_string("async+memory://"))
        self.shared: FixedWindowRateLimiter | None = None
        if redis_url:
            uri = "async+" + redis_url if not redis_url.startswith("async+") else redis_url
            storage = storage_from_string(
                uri,
                implementation="redispy",
                socket_timeout=socket_timeout_s,
                socket_connect_timeout=socket_timeout_s,
            )
            self.shared = FixedWindowRateLimiter(storage)
        self._shared_down = False

    async def hit(self, limit: RateLimitItem, identity: str, cost: int = 1) -> Verdict:
        """Count `cost` against the limit; allowed while the count stays within it."""
        local = await _ask(self.local, "hit", limit, identity, cost)
        shared = await self._on_shared("hit", limit, identity, cost)
        return shared if shared is not None else local

    async def test(self, limit: RateLimitItem, identity: str, cost: int = 1) -> Verdict:
        """Whether `cost` more would be allowed, counting nothing."""
        shared = await self._on_shared("test", limit, identity, cost)
        if shared is not None:
            return shared
        return await _ask(self.local, "test", limit, identity, cost)

    async def _on_shared(
        self, verb: str, limit: RateLimitItem, identity: str, cost: int
    ) -> Verdict | None:
        """The verdict of the shared storage; None when there is none or it is unreachable."""
        if self.shared is None:
            return None
        try:
            verdict = await _ask(self.shared, verb, limit, identity, cost)
        except Exception as exc:
            if not self._shared_down:
                logger.warning("rate limiter storage unreachable, limiting per replica: %r", exc)
                self._shared_down = True
            return None
        if self._shared_down:
            logger.warning("rate limiter storage is back: limits are shared again")
            self._shared_down = False
        return verdict


async def _ask(
    limiter: FixedWindowRateLimiter, verb: str, limit: RateLimitItem, identity: str, cost: int
) -> Verdict:
    """`limiter.hit` or `limiter.test`, and the window it leaves."""
    allowed = await getattr(limiter, verb)(limit, identity, cost=cost)
    stats = await limiter.get_window_stats(limit, identity)
    return Verdict(allowed, stats.remaining, stats.reset_time)


class Edge:
    """Decides, per request, who is calling and whether the request may go on; charges the
    posts a request generates."""

    def __init__(self, settings: AppSettings) -> None:
        security = settings.security
        self.auth_enabled = security.auth_enabled
        self.keys = security.all_keys()
        metrics_path = ("/metrics",) if security.metrics == "open" else ()
        self.open_paths = frozenset((*security.open_paths, *metrics_path))
        self.rate_limit_enabled = security.rate_limit_enabled
        self.generation_limit = parse(security.rate_limit)
        self.request_limit = parse(security.request_rate_limit)
        self.anonymous_generation_limit = parse(security.anonymous_rate_limit)
        self.anonymous_request_limit = parse(security.anonymous_request_rate_limit)
        self.auth_failure_limit = parse(security.auth_failure_limit)
        self.key_limits = {k.sha256: parse(k.rate_limit) for k in self.keys if k.rate_limit}
        self.max_body_bytes = settings.http.max_body_bytes
        self.limiter = RateLimiter(security.rate_limit_redis_url or settings.cache.redis_url)

    def caller(self, scope: Scope, headers: dict[str, str]) -> Caller:
        presented = _bearer(headers.get("authorization", ""))
        anonymous = Caller(
            f"ip:{_address(scope)}", self.anonymous_request_limit, self.anonymous_generation_limit
        )
        if presented is None:
            if self.auth_enabled:
                raise _unauthorized("missing API key: send 'Authorization: Bearer <key>'")
            return anonymous
        digest = hashlib.sha256(presented.encode()).hexdigest()
        # Compare against every key, in constant time each, so timing reveals nothing.
        match = None
        for key in self.keys:
            if hmac.compare_digest(digest, key.sha256):
                match = key
        if match is None:
            if self.auth_enabled:
                raise _unauthorized("invalid API key")
            return anonymous
        generation = self.key_limits.get(match.sha256, self.generation_limit)
        return Caller(f"key:{match.name}", self.request_limit, generation)

    async def admit(self, scope: Scope) -> dict[str, str]:
        """Checks a request; returns the headers to add to its response, or raises. The caller
        is left in the request's state for `charge_generations`."""
        if scope["path"] in self.open_paths or scope["method"] == "OPTIONS":
            return {}
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        caller = await self._authenticate(scope, headers)
        limit_headers: dict[str, str] = {}
        if self.rate_limit_enabled:
            verdict = await self.limiter.hit(caller.request_limit, caller.identity)
            limit_headers = {
                "X-RateLimit-Limit": str(caller.request_limit.amount),
                "X-RateLimit-Remaining": str(max(0, verdict.remaining)),
                "X-RateLimit-Reset": str(math.ceil(verdict.reset)),
            }
            if not verdict.allowed:
                retry_after = verdict.retry_after_s()
                raise EdgeRefusal(
                    429,
                    f"rate limit of {caller.request_limit} requests exceeded; retry in "
                    f"{retry_after} s",
                    {**limit_headers, "Retry-After": str(retry_after)},
                )
        if scope["method"] == "POST":
            self._check_body_headers(headers)
        scope.setdefault("state", {})["caller"] = caller
        return limit_headers

    async def _authenticate(self, scope: Scope, headers: dict[str, str]) -> Caller:
        """The caller, or a 401; an address with too many failed keys is refused before its
        key is even looked at, so keys cannot be guessed at full speed."""
        counts_failures = self.auth_enabled and self.rate_limit_enabled
        failures = f"auth-failures:{_address(scope)}"
        if counts_failures:
            verdict = await self.limiter.test(self.auth_failure_limit, failures)
            if not verdict.allowed:
                retry_after = verdict.retry_after_s()
                raise EdgeRefusal(
                    429,
                    f"too many failed API keys from this address ({self.auth_failure_limit}); "
                    f"retry in {retry_after} s",
                    {"Retry-After": str(retry_after)},
                )
        try:
            return self.caller(scope, headers)
        except EdgeRefusal:
            if counts_failures:
                await self.limiter.hit(self.auth_failure_limit, failures)
            raise

    async def charge_generations(self, caller: Caller | None, count: int) -> None:
        """Charge `count` generated posts to the caller, or raise a 429 charging nothing."""
        if caller is None or count <= 0 or not self.rate_limit_enabled:
            return
        limit = caller.generation_limit
        identity = f"generations:{caller.identity}"
        verdict = await self.limiter.test(limit, identity, cost=count)
        if verdict.allowed:
            verdict = await self.limiter.hit(limit, identity, cost=count)
        if not verdict.allowed:
            retry_after = verdict.retry_after_s()
            raise ApiError(
                429,
                f"generation limit of {limit} posts exceeded: this request generates {count}, "
                f"{max(0, verdict.remaining)} left; cached posts are still served; retry in "
                f"{retry_after} s",
                headers={"Retry-After": str(retry_after)},
            )

    def _check_body_headers(self, headers: dict[str, str]) -> None:
        media_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type != "application/json":
            raise EdgeRefusal(
                415,
                f"expected content-type application/json, got {media_type or 'none'!r}",
                {},
            )
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
            raise _too_large(self.max_body_bytes)


class EdgeMiddleware:
    """ASGI middleware applying `Edge`; configured by the Ingress through `app.state.edge`."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        edge: Edge | None = (
            getattr(scope.get("app").state, "edge", None) if scope.get("app") else None
        )
        if scope["type"] != "http" or edge is None:
            await self.app(scope, receive, send)
            return
        try:
            extra_headers = await edge.admit(scope)
        except EdgeRefusal as refusal:
            await _send_error(scope, receive, send, refusal)
            return

        received = 0

        async def limited_receive() -> Message:
            # Bodies without a Content-Length (chunked) are counted as they arrive; the refusal
            # is an HTTPException, so the app's error mapper answers it.
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > edge.max_body_bytes:
                    raise _too_large(edge.max_body_bytes)
            return message

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start" and extra_headers:
                message = dict(message)
                message["headers"] = list(message.get("headers", [])) + [
                    (k.lower().encode(), v.encode()) for k, v in extra_headers.items()
                ]
            await send(message)

        await self.app(scope, limited_receive, send_with_headers)


def _address(scope: Scope) -> str:
    client = scope.get("client") or ("unknown", 0)
    return str(client[0])


def _bearer(value: str) -> str | None:
    scheme, _, token = value.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def _unauthorized(message: str) -> EdgeRefusal:
    return EdgeRefusal(401, message, {"WWW-Authenticate": "Bearer"})


def _too_large(limit: int) -> EdgeRefusal:
    return EdgeRefusal(413, f"request body over {limit} bytes", {})


async def _send_error(scope: Scope, receive: Any, send: Any, refusal: EdgeRefusal) -> None:
    response = error_response(refusal.status_code, str(refusal.detail), headers=refusal.headers)
    await response(scope, receive, send)


def add_cors(api: FastAPI, origins: list[str]) -> None:
    """Browsers on `origins` may call the API and read its request id, Retry-After and rate
    limit headers; no origins, no CORS."""
    if not origins:
        return
    api.add_middleware(
        CORSMiddleware,
        allow_origins=origins,
        allow_methods=["GET", "POST", "DELETE"],
        allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
        expose_headers=[
            "X-Request-ID",
            "Retry-After",
            "X-RateLimit-Limit",
            "X-RateLimit-Remaining",
            "X-RateLimit-Reset",
        ],
    )
