"""post_events without Ray: CacheLookup's stream items in, server-sent events out; failures
before the first event raise (a JSON answer), after it end the stream with an `error` event."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from deployments.edge.errors import ApiError
from deployments.edge.post_stream import post_events, sse
from deployments.schemas import (
    CachedPost,
    PartPiece,
    PartPieces,
    Post,
    PostMetadata,
    PostWriting,
)

POST = Post(
    id="p1",
    title="A hook.",
    content="A body.",
    hashtags=["#Tag"],
    text="A hook.\n\nA body.\n\n#Tag",
    metadata=PostMetadata(characters=24, words=5, reading_time_seconds=2, model="m"),
)
KEY = "k" * 64


async def _items(*items: Any, delay: float = 0.0) -> AsyncIterator[Any]:
    for item in items:
        await asyncio.sleep(delay)
        if isinstance(item, BaseException):
            raise item
        yield item


def _error_of(exc: BaseException) -> ApiError:
    if isinstance(exc, asyncio.TimeoutError):
        return ApiError(504, "the request took too long; try again")
    return ApiError(503, "generation failed; retry shortly")


def _run(items: AsyncIterator[Any], timeout_s: float = 5.0) -> list[tuple[str, dict]]:
    async def collect() -> list[tuple[str, dict]]:
        events = post_events(
            items,
            request_id="r1",
            deadline=time.perf_counter() + timeout_s,
            finish_post=lambda answer: answer.post,
            error_of=_error_of,
        )
        return [(event.event, event.data) async for event in events]

    return asyncio.run(collect())


def _pieces(*pieces: tuple[str, str]) -> PartPieces:
    return PartPieces(pieces=[PartPiece(part=part, text=text) for part, text in pieces])


def test_part_pieces_join_each_parts_pieces_in_order() -> None:
    joined = PartPieces.joined(
        [
            PartPiece(part="content", text="A "),
            PartPiece(part="title", text="Hook"),
            PartPiece(part="content", text="body."),
        ]
    )
    assert [(p.part, p.text) for p in joined.pieces] == [("content", "A body."), ("title", "Hook")]


def test_a_miss_is_meta_cleaned_pieces_then_the_post() -> None:
    events = _run(
        _items(
            PostWriting(key=KEY),
            _pieces(("content", "A bo")),
            _pieces(("title", "A hook.<|im_")),
            _pieces(("title", "end|>"), ("content", "dy.")),
            CachedPost(post=POST, layer=None, key=KEY, lookup_ms=1.0),
        )
    )
    assert events == [
        ("meta", {"request_id": "r1", "key": KEY, "hit": False, "layer": None}),
        ("content", {"text": "A bo"}),
        ("title", {"text": "A hook."}),
        ("title", {"text": " "}),
        ("content", {"text": "dy."}),
        ("post", POST.model_dump(mode="json")),
    ]


def test_a_hit_is_meta_and_post() -> None:
    events = _run(_items(CachedPost(post=POST, layer="l1", key=KEY, lookup_ms=0.2)))
    assert [name for name, _ in events] == ["meta", "post"]
    assert events[0][1]["hit"] is True and events[0][1]["layer"] == "l1"


def test_a_failure_before_the_first_event_raises() -> None:
    with pytest.raises(ApiError) as raised:
        _run(_items(RuntimeError("queue full")))
    assert raised.value.status == 503


def test_a_failure_mid_stream_ends_with_an_error_event() -> None:
    events = _run(_items(PostWriting(key=KEY), _pieces(("content", "A")), RuntimeError("died")))
    assert [name for name, _ in events] == ["meta", "content", "error"]
    assert events[-1][1]["error"]["code"] == "overloaded"


def test_the_deadline_mid_stream_is_a_504_event() -> None:
    events = _run(
        _items(
            PostWriting(key=KEY), CachedPost(post=POST, layer=None, key=KEY, lookup_ms=1), delay=0.3
        ),
        timeout_s=0.45,
    )
    assert [name for name, _ in events] == ["meta", "error"]
    assert events[-1][1]["error"]["code"] == "timeout"


def test_a_stream_that_ends_without_a_post_ends_with_an_error_event() -> None:
    events = _run(_items(PostWriting(key=KEY), _pieces(("title", "A"))))
    assert [name for name, _ in events] == ["meta", "title", "error"]


def test_sse_framing() -> None:
    from deployments.schemas import StreamEvent

    event = StreamEvent(event="content", data={"text": "two\nlines"})
    assert sse(event) == b'event: content\ndata: {"text": "two\\nlines"}\n\n'
