"""deployments.edge.proxy_guard without Ray: what Serve's proxy lets through, and how its own
errors are answered. (tests/test_edge.py sends the same through a real proxy.)"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from deployments.edge.proxy_guard import ProxyGuard
from deployments.settings import ProxySettings


async def echo_headers(scope: dict, receive: Any, send: Any) -> None:
    """The app behind the proxy: answers with the headers it was given, or a plain-text error
    as Serve's proxy writes one (`/fail/<status>`)."""
    path = scope["path"]
    if path == "/raise":  # the proxy failing outright
        raise RuntimeError("ActorDiedError")
    if path == "/silent":  # what Serve's proxy does when the replica it called died
        return
    if path.startswith("/fail/"):
        status = int(path.rsplit("/", 1)[1])
        headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"x-request-id", b"abc")]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"Internal ", "more_body": True})
        await send({"type": "http.response.body", "body": b"Server Error"})
        return
    if path == "/full":  # the Ingress's queue full: Serve's BackPressureError, as its proxy says
        headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"retry-after", b"3")]
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        body = b"Request dropped due to backpressure (num_queued_requests=8, max_queued_requests=8)"
        await send({"type": "http.response.body", "body": body})
        return
    body = json.dumps([[k.decode(), v.decode("latin-1")] for k, v in scope["headers"]]).encode()
    start = {"type": "http.response.start", "status": 200}
    await send({**start, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, int, str, str]] = []

    def record(self, route: str, status: int, outcome: str, reason: str, seconds: float) -> None:
        assert seconds >= 0
        self.calls.append((route, status, outcome, reason))


def client(recorder: Recorder | None = None) -> httpx.AsyncClient:
    guard = ProxyGuard(
        echo_headers,
        ProxySettings(max_header_bytes=1024, max_headers_bytes=4096),
        metrics=recorder or Recorder(),
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=guard), base_url="http://t")


async def seen_headers(**headers: Any) -> dict[str, list[str]]:
    async with client() as http:
        response = await http.get("/", headers=headers)
    assert response.status_code == 200
    seen: dict[str, list[str]] = {}
    for name, value in response.json():
        seen.setdefault(name, []).append(value)
    return seen


async def test_serves_internal_headers_are_dropped() -> None:
    seen = await seen_headers(
        **{
            "x-request-disconnect-disabled": "?1",
            "x-request-timeout-seconds": "0",
            "serve_multiplexed_model_id": "other",
            "x-kept": "yes",
        }
    )
    assert seen["x-kept"] == ["yes"]
    for name in ("x-request-disconnect-disabled", "x-request-timeout-seconds"):
        assert name not in seen
    assert "serve_multiplexed_model_id" not in seen


@pytest.mark.parametrize(
    "request_id",
    [b"id-\xff\xfe", "x" * 200, "two words", "line\\nbreak", "", "-leading-dash", "{json}"],
)
async def test_a_request_id_that_is_no_short_token_is_dropped(request_id: Any) -> None:
    assert "x-request-id" not in await seen_headers(**{"X-Request-ID": request_id})


@pytest.mark.parametrize("request_id", ["req-123", "d2db0c59-c435-4c15", "a.b:c_d", "A" * 128])
async def test_a_short_token_request_id_is_kept(request_id: str) -> None:
    assert (await seen_headers(**{"X-Request-ID": request_id}))["x-request-id"] == [request_id]


async def test_oversized_headers_are_a_json_431() -> None:
    async with client() as http:
        one_line = await http.get("/", headers={"x-big": "a" * 2000})
        many = await http.get("/", headers={f"x-h{i}": "a" * 900 for i in range(6)})
    for response in (one_line, many):
        assert response.status_code == 431
        assert response.json()["error"]["code"] == "headers_too_large"
    assert "line over 1024" in one_line.json()["error"]["message"]
    assert "over 4096 in all" in many.json()["error"]["message"]


@pytest.mark.parametrize(("status", "answered"), [(500, 503), (502, 503), (503, 503), (504, 504)])
async def test_the_proxys_plain_text_errors_become_the_json_envelope(
    status: int, answered: int
) -> None:
    async with client() as http:
        response = await http.get(f"/fail/{status}")
    assert response.status_code == answered
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"]["code"] == ("timeout" if answered == 504 else "overloaded")
    assert response.headers["x-request-id"] == "abc"
    assert ("retry-after" in response.headers) == (answered == 503)


@pytest.mark.parametrize("path", ["/raise", "/silent"])
async def test_a_request_the_proxy_fails_or_leaves_unanswered_is_a_json_503(path: str) -> None:
    async with client() as http:
        response = await http.get(path)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "overloaded"
    assert response.headers["retry-after"]


@pytest.mark.parametrize(
    ("path", "recorded"),
    [
        ("/full", (503, "shed", "ingress_full")),
        ("/fail/503", (503, "shed", "unavailable")),
        ("/fail/504", (504, "timed_out", "proxy_timeout")),
        ("/fail/500", (503, "failed", "proxy_failed")),
        ("/raise", (503, "failed", "proxy_failed")),
        ("/silent", (503, "failed", "replica_lost")),
    ],
)
async def test_what_the_proxy_answers_itself_is_counted_with_its_reason(
    path: str, recorded: tuple[int, str, str]
) -> None:
    recorder = Recorder()
    async with client(recorder) as http:
        response = await http.get(path)
        assert (response.status_code, *recorded[1:]) == recorded
        assert (await http.get("/")).status_code == 200  # the Ingress's answers: not counted here
        await http.get("/", headers={"x-big": "x" * 2000})
    assert recorder.calls == [("proxy", *recorded), ("proxy", 431, "rejected", "headers_too_large")]


async def test_an_ingress_full_503_keeps_retry_after_in_the_envelope() -> None:
    async with client() as http:
        response = await http.get("/full")
    assert response.json()["error"]["code"] == "overloaded"
    assert response.headers["retry-after"]


@pytest.mark.parametrize("http", ["httptools", "h11"])
def test_uvicorns_own_400_becomes_the_json_envelope(http: str) -> None:
    import socket
    import threading
    import time

    import uvicorn

    from deployments.edge.proxy_guard import answer_protocol_errors_in_json
    from tests.conftest import free_port

    answer_protocol_errors_in_json()  # as the proxy callback does
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(echo_headers, host="127.0.0.1", port=port, http=http, log_level="error")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"GARBAGE\r\n\r\n")
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), answer
    assert b"content-type: application/json" in head.lower()
    assert json.loads(body)["error"]["message"].startswith("malformed HTTP")
