"""The Ingress's request metrics (deployments.edge.request_metrics): every answer counted by its
route template, status, outcome and reason, never by anything a caller sends."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from deployments.edge.errors import ApiError, install_error_handlers
from deployments.edge.request_metrics import OUTCOMES, RequestMetricsMiddleware, outcome_of


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, int, str, str]] = []
        self.seconds: list[float] = []

    def record(self, route: str, status: int, outcome: str, reason: str, seconds: float) -> None:
        self.calls.append((route, status, outcome, reason))
        self.seconds.append(seconds)


@pytest.fixture
def recorded() -> tuple[TestClient, Recorder]:
    app = FastAPI()
    install_error_handlers(app)
    recorder = Recorder()
    app.add_middleware(RequestMetricsMiddleware, metrics=recorder)

    @app.post("/v1/posts/{topic}")
    async def post(topic: str, request: Request) -> dict[str, Any]:
        if topic == "busy":
            raise ApiError(503, "busy", reason="model_queue_full")
        if topic == "slow":
            raise ApiError(504, "too long")
        request.state.outcome = "hit_l2" if topic == "cached" else "generated"
        return {"topic": topic}

    return TestClient(app, raise_server_exceptions=False), recorder


def test_each_answer_is_recorded_once_with_its_route_template_and_outcome(
    recorded: tuple[TestClient, Recorder],
) -> None:
    client, recorder = recorded
    for topic in ("cached", "fresh", "busy", "slow"):
        client.post(f"/v1/posts/{topic}")
    client.get("/nowhere")
    assert recorder.calls == [
        ("/v1/posts/{topic}", 200, "hit_l2", "none"),
        ("/v1/posts/{topic}", 200, "generated", "none"),
        ("/v1/posts/{topic}", 503, "shed", "model_queue_full"),
        ("/v1/posts/{topic}", 504, "timed_out", "none"),
        ("unmatched", 404, "rejected", "none"),
    ]
    assert all(seconds >= 0 for seconds in recorder.seconds)


@pytest.mark.parametrize(
    ("status", "stated", "outcome"),
    [
        (200, "hit_l1", "hit_l1"),
        (200, "a topic someone sent", "ok"),  # never an unbounded label
        (200, None, "ok"),
        (401, None, "unauthorized"),
        (429, None, "rate_limited"),
        (422, "generated", "rejected"),
        (503, None, "shed"),
        (504, None, "timed_out"),
        (500, None, "failed"),
    ],
)
def test_outcomes_come_from_a_fixed_set(status: int, stated: str | None, outcome: str) -> None:
    assert outcome_of(status, stated) == outcome
    assert outcome in OUTCOMES
