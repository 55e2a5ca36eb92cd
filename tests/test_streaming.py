"""POST /v1/posts/stream and the `stream` handle method in a real Serve app (tiny model): the
events in order, the final post the same as POST /v1/posts gives, a cached post at once, bad
input as JSON, a client that hangs up stops its rows."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest
from ray import serve

from tests.conftest import ServeApp
from tests.test_graph import assert_post_contract


@pytest.fixture(scope="module")
def app(start_app: Callable[[dict], ServeApp], tiny_settings_args: dict) -> ServeApp:
    return start_app(tiny_settings_args)


def _events(lines: Iterator[str]) -> Iterator[tuple[str, dict]]:
    """(event, data) from server-sent event lines."""
    name = None
    for line in lines:
        if line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: "):
            assert name is not None
            yield name, json.loads(line.removeprefix("data: "))
            name = None


def _stream(app: ServeApp, request: dict) -> list[tuple[str, dict]]:
    with app.client.stream("POST", "/v1/posts/stream", json=request) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        return list(_events(response.iter_lines()))


def test_a_miss_streams_meta_pieces_then_the_post_that_post_v1_posts_gives(app: ServeApp) -> None:
    request = {"topic": f"Streaming posts {uuid.uuid4().hex[:6]}", "seed": 7, "use_cache": False}
    events = _stream(app, request)
    names = [name for name, _ in events]
    assert names[0] == "meta" and names[-1] == "post"
    assert events[0][1]["hit"] is False and events[0][1]["layer"] is None
    assert len(events[0][1]["key"]) == 64 and events[0][1]["request_id"]
    pieces = names[1:-1]
    assert set(pieces) == {"title", "content", "hashtags"}, names
    assert pieces.count("content") > 1, "the body came in pieces, not at once"
    for _, data in events[1:-1]:
        assert set(data) == {"text"} and data["text"]
        assert "<|" not in data["text"]
    streamed = events[-1][1]
    assert_post_contract(streamed, request)
    answered = app.post("/v1/posts", json=request).json()
    for field in ("title", "content", "hashtags", "text"):
        assert streamed[field] == answered[field]
    assert streamed["metadata"]["request_id"] == events[0][1]["request_id"]
    assert streamed["metadata"]["cache"]["key"] == events[0][1]["key"]


def test_the_stream_histograms_reach_metrics(app: ServeApp) -> None:
    _stream(app, {"topic": "Streaming metrics", "seed": 9, "use_cache": False})
    wanted = (
        "linkedin_posts_stream_first_piece_seconds_count",
        "linkedin_posts_stream_piece_gap_seconds_count",
    )
    deadline = time.monotonic() + 60  # Ray's agents export every few seconds
    text = ""
    while time.monotonic() < deadline:
        text = app.get("/metrics").text
        if all(name in text for name in wanted):
            break
        time.sleep(2)
    for name in wanted:
        assert name in text, f"{name} not exported"
    assert re.search(r'stream_first_piece_seconds_count\{[^}]*part="content"', text)


def test_a_cached_post_is_meta_and_post_at_once(app: ServeApp) -> None:
    request = {"topic": f"Cached stream {uuid.uuid4().hex[:6]}", "seed": 3}
    first = _stream(app, request)
    again = _stream(app, request)
    assert [name for name, _ in again] == ["meta", "post"]
    assert again[0][1]["hit"] is True and again[0][1]["layer"] in ("l1", "l3")
    assert again[1][1]["text"] == first[-1][1]["text"]
    assert again[1][1]["metadata"]["cache"]["hit"] is True


def test_bad_input_is_a_json_4xx_not_a_stream(app: ServeApp) -> None:
    response = app.post("/v1/posts/stream", json={"topic": "", "length": "epic"})
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/json")
    fields = {d["field"] for d in response.json()["error"]["details"]}
    assert {"topic", "length"} <= fields


def test_the_handle_streams_the_same_events_as_dicts(app: ServeApp) -> None:
    handle = serve.get_app_handle(app.name).options(stream=True)
    request = {"topic": f"Handle stream {uuid.uuid4().hex[:6]}", "seed": 5, "use_cache": False}
    events = [(e["event"], e["data"]) for e in handle.stream.remote(request)]
    assert events[0][0] == "meta" and events[-1][0] == "post"
    assert {name for name, _ in events[1:-1]} == {"title", "content", "hashtags"}
    http = _stream(app, request)
    assert events[-1][1]["text"] == http[-1][1]["text"]
    bad = list(handle.stream.remote({"topic": "Handle stream", "num_hashtags": 99}))
    assert [e["event"] for e in bad] == ["error"]
    assert bad[0]["data"]["error"]["code"] == "invalid_request"
    assert bad[0]["data"]["error"]["details"][0]["field"] == "num_hashtags"


def test_hanging_up_mid_stream_stops_the_rows(app: ServeApp) -> None:
    content = serve.get_deployment_handle("ContentModel", app_name=app.name)
    before = content.info.remote().result()["cancelled"]
    request = {"topic": "Hang up on me", "length": "long", "use_cache": False}
    with (
        httpx.Client(base_url=app.url, timeout=60) as client,
        client.stream("POST", "/v1/posts/stream", json=request) as response,
    ):
        for name, _ in _events(response.iter_lines()):
            if name == "content":
                break  # leaving the block closes the connection mid-stream
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if content.info.remote().result()["cancelled"] > before:
            break
        time.sleep(0.2)
    assert content.info.remote().result()["cancelled"] > before, "the model kept writing"
