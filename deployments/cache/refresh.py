"""Refresh-ahead: popular posts are written again shortly before they expire, so that their
readers never meet a miss."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from deployments.cache.tiered import TieredCache
from deployments.schemas import PostRequest

logger = logging.getLogger("ray.serve")


async def refresh_popular_entries(
    cache: TieredCache,
    write: Callable[[PostRequest], Awaitable[dict[str, Any]]],
    interval_s: float,
) -> None:
    """Every `interval_s`, rewrite the popular entries due for refresh with `write(request)`
    (the request is stored with each post); runs until cancelled, and never fails."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            for key in await cache.entries_due_for_refresh():
                hit = (await cache.get_many([key], count=False))[0]
                if hit is None or "request" not in hit.value:
                    continue
                request = PostRequest.model_validate(hit.value["request"])
                await cache.refresh(key, functools.partial(write, request))
        except Exception as exc:  # a refresh never takes the replica down
            logger.warning("refreshing popular cache entries failed: %r", exc)
