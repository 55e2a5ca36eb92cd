"""The edge in front of the edge: an ASGI middleware that runs inside Serve's HTTP proxy.

Some of what a caller sends is read by Serve's proxy before any replica sees it: `X-Request-ID`
(decoded as UTF-8: bytes that are not are a plain-text 500), `x-request-disconnect-disabled`
(keeps a request running after its client hangs up), `x-request-timeout-seconds` (a client's own
timeout, 0 disabling it), the multiplexing header. And some of what the proxy answers is not ours:
a replica force-killed or dead mid-request, or a full Ingress queue, becomes a plain-text 500 or
503. This middleware, installed through Serve's proxy callback, makes the proxy:

- drop Serve's internal headers from outside callers;
- replace an `X-Request-ID` that is not a short printable token with a generated one, so it is
  never echoed raw or written to a log as given;
- refuse request headers over `proxy.max_header_bytes` per line or `proxy.max_headers_bytes` in
  all with a JSON 431, as nginx caps them;
- answer its own non-JSON 5xx in the service's JSON envelope: 503 with `Retry-After` (504 for a
  timeout), so a client never has to parse a plain-text 500;
- count what it answers itself in the request metrics (route `proxy`), with a reason: the
  Ingress's queue full (`ingress_full`), no Ingress replica to take it (`unavailable`), the
  replica lost mid-request (`replica_lost`), the proxy failing (`proxy_failed`), a timeout,
  oversized headers. The Ingress never sees these requests, so they are counted nowhere else.

Install it by starting Ray with `PROXY_ENV` in the environment (`make run` and the tests do): the
proxy actor reads `RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH` when it starts.
"""

from __future__ import annotations

import json
import logging
import re
import time
from typing import Any

from starlette.middleware import Middleware

from deployments.edge.errors import error_response
from deployments.edge.request_metrics import RequestMetrics
from deployments.settings import AppSettings, HttpSettings, ProxySettings

logger = logging.getLogger("ray.serve")

Scope = dict[str, Any]
Message = dict[str, Any]

CALLBACK = "deployments.edge.proxy_guard:middlewares"
PROXY_ENV = {
    "RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH": CALLBACK,
}

# Headers Serve's proxy and replicas act on; only the service itself may set them.
INTERNAL_HEADERS = frozenset(
    {
        b"x-request-disconnect-disabled",
        b"x-request-timeout-seconds",
        b"serve_multiplexed_model_id",
        b"serve-multiplexed-model-id",
    }
)
REQUEST_ID_HEADER = b"x-request-id"
_REQUEST_ID = re.compile(rb"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


def middlewares() -> list[Middleware]:
    """Serve's proxy callback: the middlewares to wrap the proxy's ASGI app in. It runs in the
    proxy's process before its HTTP server starts, so it also sets how that server answers
    malformed HTTP."""
    answer_protocol_errors_in_json()
    settings = AppSettings.load()
    return [
        Middleware(ProxyGuard, settings=settings.proxy, retry_after_s=settings.http.retry_after_s)
    ]


def protocol_error_body(reason: str) -> bytes:
    body = {
        "error": {"code": "bad_request", "message": f"malformed HTTP: {reason}", "details": None}
    }
    return json.dumps(body).encode()


def answer_protocol_errors_in_json() -> None:
    """Malformed HTTP (a broken request line, an invalid header) is rejected by uvicorn before
    any ASGI app runs, with a plain-text 400 of its own; make it the JSON envelope. Both of
    uvicorn's HTTP implementations write that answer in one method, replaced here."""
    from uvicorn.protocols.http import h11_impl, httptools_impl

    def httptools_400(self: Any, msg: str) -> None:
        body = protocol_error_body(msg)
        head = [httptools_impl.STATUS_LINE[400]]
        for name, value in self.server_state.default_headers:
            head.extend([name, b": ", value, b"\r\n"])
        head.extend(
            [
                b"content-type: application/json\r\n",
                b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
                b"connection: close\r\n\r\n",
                body,
            ]
        )
        self.transport.write(b"".join(head))
        self.transport.close()

    def h11_400(self: Any, msg: str) -> None:
        import h11

        body = protocol_error_body(msg)
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode("ascii")),
            (b"connection", b"close"),
        ]
        for event in (
            h11.Response(status_code=400, headers=headers, reason=b"Bad Request"),
            h11.Data(data=body),
            h11.EndOfMessage(),
        ):
            self.transport.write(self.conn.send(event))
        self.transport.close()

    httptools_impl.HttpToolsProtocol.send_400_response = httptools_400  # type: ignore[method-assign]
    h11_impl.H11Protocol.send_400_response = h11_400  # type: ignore[method-assign]


PROXY_ROUTE = "proxy"  # the route label of what the proxy answers itself


class ProxyGuard:
    def __init__(
        self,
        app: Any,
        settings: ProxySettings | None = None,
        retry_after_s: int = HttpSettings().retry_after_s,
        metrics: Any = None,
    ) -> None:
        self.app = app
        self.settings = settings or ProxySettings()
        self.retry_after_s = retry_after_s
        self._metrics = metrics

    @property
    def metrics(self) -> Any:
        if self._metrics is None:  # in the proxy's process, at its first answer of its own
            self._metrics = RequestMetrics()
        return self._metrics

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers, refusal = self._filter_headers(scope.get("headers", []))
        if refusal is not None:
            await refusal(scope, receive, send)
            self._record(431, "rejected", "headers_too_large", started)
            return
        scope = {**scope, "headers": headers}
        answer = _JsonServerErrors(send, self.retry_after_s)
        try:
            await self.app(scope, receive, answer)
        except Exception as exc:
            # The proxy itself failed: uvicorn would answer a plain-text 500. Before the first
            # byte, the envelope goes out instead.
            if answer.started:
                raise
            logger.warning("the proxy failed a request before answering it: %r", exc)
            await answer.send_envelope(500)
            self._record(503, "failed", "proxy_failed", started)
            return
        if not answer.started:
            # Serve's proxy answers nothing at all when the replica it called died (it sends a
            # response only for 408, 429 and 503), and uvicorn then writes a plain-text 500.
            await answer.send_envelope(500)
            self._record(503, "failed", "replica_lost", started)
        elif answer.replaced is not None:
            self._record(*answer.replaced, started)

    def _record(self, status: int, outcome: str, reason: str, started: float) -> None:
        try:
            self.metrics.record(PROXY_ROUTE, status, outcome, reason, time.perf_counter() - started)
        except Exception:  # counting must never cost the caller an answer
            logger.exception("recording a proxy answer failed")

    def _filter_headers(self, raw: list[tuple[bytes, bytes]]) -> tuple[list, Any]:
        limit, total_limit = self.settings.max_header_bytes, self.settings.max_headers_bytes
        total = 0
        kept: list[tuple[bytes, bytes]] = []
        request_id_seen = False
        for name, value in raw:
            size = len(name) + len(value) + 4  # "name: value\r\n"
            total += size
            if size > limit or total > total_limit:
                over = f"a line over {limit}" if size > limit else f"over {total_limit} in all"
                return [], error_response(431, f"request headers too large: {over} bytes")
            lowered = name.lower()
            if lowered in INTERNAL_HEADERS:
                continue
            if lowered == REQUEST_ID_HEADER:
                # One id, and only a short printable token: anything else is dropped, and
                # Serve generates an id instead.
                if request_id_seen or not _REQUEST_ID.fullmatch(value):
                    continue
                request_id_seen = True
            kept.append((name, value))
        return kept, None


class _JsonServerErrors:
    """Wraps `send`: a 5xx that is not JSON (the proxy's own) goes out as the JSON envelope."""

    def __init__(self, send: Any, retry_after_s: float) -> None:
        self.send = send
        self.retry_after_s = retry_after_s
        self.held: Message | None = None
        self.held_body = b""  # its first bytes: Serve's message says why
        self.started = False  # a response start was sent or held
        self.replaced: tuple[int, str, str] | None = None  # status, outcome, reason sent instead

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
            if _is_plain_server_error(message):
                self.held = message
                return
        if self.held is None:
            await self.send(message)
            return
        if message["type"] == "http.response.body":
            self.held_body = (self.held_body + message.get("body", b""))[:512]
            if not message.get("more_body", False):
                status = await self.send_envelope(self.held["status"])
                self.replaced = (status, *_why(self.held["status"], self.held_body))

    async def send_envelope(self, original_status: int) -> int:
        """The JSON envelope in place of a server error: 504 for a timeout, else 503 (the
        status sent)."""
        self.started = True
        status = 504 if original_status == 504 else 503
        message = (
            "the request took too long; try again"
            if status == 504
            else "the service could not finish the request; retry shortly"
        )
        retry = {"Retry-After": str(round(self.retry_after_s))} if status == 503 else {}
        request_id = {
            k.decode("latin-1"): v.decode("latin-1")
            for k, v in (self.held or {}).get("headers", [])
            if k.lower() == REQUEST_ID_HEADER
        }
        response = error_response(status, message, headers={**request_id, **retry})
        await self.send(
            {"type": "http.response.start", "status": status, "headers": response.raw_headers}
        )
        await self.send({"type": "http.response.body", "body": response.body})
        return status


def _why(status: int, body: bytes) -> tuple[str, str]:
    """The outcome and reason of a server error Serve's proxy wrote (its text says which)."""
    if status == 504:
        return "timed_out", "proxy_timeout"
    if status == 503:
        # BackPressureError: "Request dropped due to backpressure (num_queued_requests=...)".
        return "shed", "ingress_full" if b"backpressure" in body else "unavailable"
    return "failed", "proxy_failed"


def _is_plain_server_error(message: Message) -> bool:
    if message.get("status", 200) < 500:
        return False
    for name, value in message.get("headers", []):
        if name.lower() == b"content-type":
            return b"json" not in value.lower()
    return True
