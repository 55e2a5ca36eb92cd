"""POST /v1/posts/stream: one request's answer as server-sent events.

The Ingress hands over its shared-layer hit, or CacheLookup's stream (`post_stream`: a hit, or
PostWriting, the parts' pieces as the models write them (PartPieces), then the CachedPost). Out come
`meta`, pieces of `title`, `content` and `hashtags` (cleaned as far as is safe while streaming),
then `post`, exactly the Post that POST /v1/posts answers; or `error` with the error envelope.
A failure before anything was sent raises ApiError instead, so that the HTTP answer is a JSON
503 or 504 rather than a stream.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi.responses import StreamingResponse

from deployments.edge.errors import ApiError, error_body
from deployments.post.pieces import PieceCleaner
from deployments.schemas import PARTS, CachedPost, PartPieces, Post, PostWriting, StreamEvent

# Turns a CachedPost into the Post the API answers (cache info, timings, request id).
FinishPost = Callable[[CachedPost], Post]
# Maps an exception from down the graph to the ApiError it answers (edge.errors.downstream_error).
ErrorOf = Callable[[BaseException], ApiError]


def meta_event(request_id: str, key: str, layer: str | None) -> StreamEvent:
    data = {"request_id": request_id, "key": key, "hit": layer is not None, "layer": layer}
    return StreamEvent(event="meta", data=data)


def post_event(post: Post) -> StreamEvent:
    return StreamEvent(event="post", data=post.model_dump(mode="json"))


def error_event(error: ApiError) -> StreamEvent:
    return StreamEvent(event="error", data=error_body(error.status, error.message, error.details))


async def post_events(
    items: AsyncIterator[Any],
    *,
    request_id: str,
    deadline: float,
    finish_post: FinishPost,
    error_of: ErrorOf,
) -> AsyncIterator[StreamEvent]:
    """The events of one request from CacheLookup's stream `items`, which must answer by
    `deadline` (time.perf_counter()). Raises ApiError before the first event; after it, a
    failure is an `error` event and the stream ends."""
    first = await _next(items, deadline, error_of)
    if isinstance(first, CachedPost):
        yield meta_event(request_id, first.key, first.layer)
        yield post_event(finish_post(first))
        return
    if not isinstance(first, PostWriting):
        raise error_of(RuntimeError(f"unexpected first item of a post stream: {first!r}"))
    yield meta_event(request_id, first.key, None)
    cleaners = {part: PieceCleaner() for part in PARTS}
    try:
        while True:
            item = await _next(items, deadline, error_of)
            if isinstance(item, PartPieces):
                for piece in item.pieces:
                    text = cleaners[piece.part].feed(piece.text)
                    if text:
                        yield StreamEvent(event=piece.part, data={"text": text})
            elif isinstance(item, CachedPost):
                yield post_event(finish_post(item))
                return
            else:
                raise error_of(RuntimeError(f"unexpected item of a post stream: {item!r}"))
    except ApiError as error:
        yield error_event(error)


async def _next(items: AsyncIterator[Any], deadline: float, error_of: ErrorOf) -> Any:
    try:
        return await asyncio.wait_for(anext(items), max(0.0, deadline - time.perf_counter()))
    except asyncio.CancelledError:
        raise
    except StopAsyncIteration as exc:
        raise error_of(RuntimeError("the post stream ended without a post")) from exc
    except Exception as exc:
        raise error_of(exc) from exc


def sse(event: StreamEvent) -> bytes:
    """One server-sent event: its name and its data as one line of JSON."""
    return f"event: {event.event}\ndata: {json.dumps(event.data)}\n\n".encode()


def event_stream_response(
    first: StreamEvent, rest: AsyncIterator[StreamEvent]
) -> StreamingResponse:
    """The answer once the first event is known: `text/event-stream`, never cached or buffered
    by a proxy. The events' generator is closed however the stream ends (the client gone too),
    which stops the work down the graph."""

    async def body() -> AsyncIterator[bytes]:
        try:
            yield sse(first)
            async for event in rest:
                yield sse(event)
        finally:
            await rest.aclose()  # type: ignore[attr-defined]

    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(body(), media_type="text/event-stream", headers=headers)
