"""Every HTTP request the Ingress answers, counted and timed by route, status and outcome.

Labels stay bounded: the route is the matched path template (`/v1/posts`, never a topic or an
id), the outcome one of a few words. Handlers say how a request went where the status alone
cannot (`request.state.outcome`: a cache layer, or `generated`); refusals say why through
`request.state.reason` (set by the error handlers from ApiError.reason).
"""

from __future__ import annotations

import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Seconds: a cache hit takes milliseconds, a generated post seconds to minutes.
LATENCY_BOUNDARIES = [
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    20,
    40,
    80,
    160,
    240,
    300,
    600,
]
OUTCOMES = (
    "hit_l1",
    "hit_l2",
    "hit_l3",
    "generated",
    "ok",
    "shed",
    "timed_out",
    "rate_limited",
    "unauthorized",
    "rejected",
    "failed",
)
REASONS = ("model_queue_full", "generation_failed", "rate_limit", "failed_keys", "none")


def outcome_of(status: int, stated: str | None) -> str:
    """What became of a request: the handler's word for a success, else the status's."""
    if status < 400:
        return stated if stated in OUTCOMES else "ok"
    if status == 503:
        return "shed"
    if status == 504:
        return "timed_out"
    if status == 429:
        return "rate_limited"
    if status == 401:
        return "unauthorized"
    return "rejected" if status < 500 else "failed"


class RequestMetrics:
    """The Ingress's request counter and latency histogram (created in its replica process)."""

    def __init__(self) -> None:
        from ray.util.metrics import Counter, Histogram

        self.requests = Counter(
            "linkedin_posts_http_requests",
            description="HTTP requests answered by the Ingress, by route, status code, outcome "
            "(hit_l1/l2/l3, generated, shed, timed_out, rate_limited, unauthorized, rejected, "
            "failed, ok) and refusal reason.",
            tag_keys=("route", "code", "outcome", "reason"),
        )
        self.latency = Histogram(
            "linkedin_posts_http_request_seconds",
            description="Seconds from a request reaching the Ingress to its answer's headers, "
            "by route and outcome (a stream: to its first byte).",
            boundaries=LATENCY_BOUNDARIES,
            tag_keys=("route", "outcome"),
        )

    def record(self, route: str, status: int, outcome: str, reason: str, seconds: float) -> None:
        self.requests.inc(
            tags={"route": route, "code": str(status), "outcome": outcome, "reason": reason}
        )
        self.latency.observe(seconds, tags={"route": route, "outcome": outcome})


def _route(scope: Scope) -> str:
    route = scope.get("route")
    return getattr(route, "path", None) or "unmatched"


class RequestMetricsMiddleware:
    """Pure ASGI: times each HTTP request to its response's start, then records it."""

    def __init__(self, app: ASGIApp, metrics: Any = None) -> None:
        self.app = app
        self._metrics = metrics

    @property
    def metrics(self) -> Any:
        if self._metrics is None:  # in the replica, at its first request
            self._metrics = RequestMetrics()
        return self._metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        recorded = False

        async def record(message: Message) -> None:
            nonlocal recorded
            if message["type"] == "http.response.start" and not recorded:
                recorded = True
                state = scope.get("state") or {}
                status = int(message["status"])
                reason = state.get("reason") if state.get("reason") in REASONS else "none"
                self.metrics.record(
                    _route(scope),
                    status,
                    outcome_of(status, state.get("outcome")),
                    reason,
                    time.perf_counter() - started,
                )
            await send(message)

        await self.app(scope, receive, record)
