"""The edge of the service: API-key auth, rate limits, body size and content type.

One ASGI middleware, so the order is explicit and cheap checks run before expensive ones:
open paths pass; then auth (401), rate limit (429), content type (415) and body size (413),
all before FastAPI parses a byte of the body. Every refusal uses the error envelope.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import time
from dataclasses import dataclass
from typing import Any

from limits import RateLimitItem, parse
from limits.aio.strategies import FixedWindowRateLimiter
from limits.storage import storage_from_string
from starlette.exceptions import HTTPException

from deployments.errors import error_response
from deployments.settings import AppSettings

logger = logging.getLogger("ray.serve")

Scope = dict[str, Any]
Message = dict[str, Any]


@dataclass(frozen=True)
class Caller:
    identity: str  # what the rate limit counts: "key:<name>" or "ip:<address>"
    limit: RateLimitItem


class EdgeRefusal(HTTPException):
    """An HTTPException so that FastAPI passes it through body parsing untouched and the one
    error mapper renders it."""

    def __init__(self, status: int, message: str, headers: dict[str, str]) -> None:
        super().__init__(status_code=status, detail=message, headers=headers)


class RateLimiter:
    """Fixed windows kept in Redis so the limit holds across every ingress replica and node;
    while Redis is unreachable, each replica limits on its own (logged once per outage)."""

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

    async def hit(self, caller: Caller) -> tuple[bool, int, float]:
        """(allowed, remaining, reset time as epoch seconds)."""
        if self.shared is not None:
            try:
                allowed = await self.shared.hit(caller.limit, caller.identity)
                stats = await self.shared.get_window_stats(caller.limit, caller.identity)
                if self._shared_down:
                    logger.warning("rate limiter storage is back: limits are shared again")
                    self._shared_down = False
                return allowed, stats.remaining, stats.reset_time
            except Exception as exc:
                if not self._shared_down:
                    logger.warning(
                        "rate limiter storage unreachable, limiting per replica: %r", exc
                    )
                    self._shared_down = True
        allowed = await self.local.hit(caller.limit, caller.identity)
        stats = await self.local.get_window_stats(caller.limit, caller.identity)
        return allowed, stats.remaining, stats.reset_time


class Edge:
    """Decides, per request, who is calling and whether the request may go on."""

    def __init__(self, settings: AppSettings) -> None:
        security = settings.security
        self.auth_enabled = security.auth_enabled
        self.keys = security.all_keys()
        metrics_path = ("/metrics",) if security.metrics == "open" else ()
        self.open_paths = frozenset((*security.open_paths, *metrics_path))
        self.rate_limit_enabled = security.rate_limit_enabled
        self.default_limit = parse(security.rate_limit)
        self.anonymous_limit = parse(security.anonymous_rate_limit)
        self.key_limits = {k.sha256: parse(k.rate_limit) for k in self.keys if k.rate_limit}
        self.max_body_bytes = settings.http.max_body_bytes
        self.limiter = RateLimiter(security.rate_limit_redis_url or settings.cache.redis_url)

    def caller(self, scope: Scope, headers: dict[str, str]) -> Caller:
        presented = _bearer(headers.get("authorization", ""))
        if presented is None:
            if self.auth_enabled:
                raise _unauthorized("missing API key: send 'Authorization: Bearer <key>'")
            client = scope.get("client") or ("unknown", 0)
            return Caller(f"ip:{client[0]}", self.anonymous_limit)
        digest = hashlib.sha256(presented.encode()).hexdigest()
        # Compare against every key, in constant time each, so timing reveals nothing.
        match = None
        for key in self.keys:
            if hmac.compare_digest(digest, key.sha256):
                match = key
        if match is None:
            if self.auth_enabled:
                raise _unauthorized("invalid API key")
            client = scope.get("client") or ("unknown", 0)
            return Caller(f"ip:{client[0]}", self.anonymous_limit)
        return Caller(f"key:{match.name}", self.key_limits.get(match.sha256, self.default_limit))

    async def admit(self, scope: Scope) -> dict[str, str]:
        """Checks a request; returns the headers to add to its response, or raises."""
        if scope["path"] in self.open_paths or scope["method"] == "OPTIONS":
            return {}
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        caller = self.caller(scope, headers)
        limit_headers: dict[str, str] = {}
        if self.rate_limit_enabled:
            allowed, remaining, reset = await self.limiter.hit(caller)
            limit_headers = {
                "X-RateLimit-Limit": str(caller.limit.amount),
                "X-RateLimit-Remaining": str(max(0, remaining)),
                "X-RateLimit-Reset": str(math.ceil(reset)),
            }
            if not allowed:
                retry_after = max(1, math.ceil(reset - time.time()))
                raise EdgeRefusal(
                    429,
                    f"rate limit of {caller.limit} exceeded; retry in {retry_after} s",
                    {**limit_headers, "Retry-After": str(retry_after)},
                )
        if scope["method"] in ("POST", "PUT", "PATCH"):
            self._check_body_headers(headers)
        return limit_headers

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
