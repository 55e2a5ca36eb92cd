"""Calls from one deployment to another that survive the death of the replica answering them.

Serve's router retries a request whose replica died before taking it, but not one the replica
had taken: a replica stopped by a scale-down or a redeploy just as a request reached it, or one
on a node that died, fails that request with ActorDiedError (ray#15282 describes the race). Our
calls are safe to send twice (a post is written once per key by single-flight; a generation job
is a seeded row), so a call whose own replica died is sent once more, to another replica. An
error that comes from further down (the replica is alive; something it called died) arrives
wrapped in a RayTaskError and is not retried here: the deployment that made that call has.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ray.exceptions import ActorDiedError, ActorUnavailableError, RayTaskError
from ray.serve.handle import DeploymentResponse, DeploymentResponseGenerator

logger = logging.getLogger("ray.serve")


def replica_died(exc: BaseException) -> bool:
    """The replica that took the call died or cannot be reached (not something it called)."""
    return isinstance(exc, ActorDiedError | ActorUnavailableError) and not isinstance(
        exc, RayTaskError
    )


async def call(send: Callable[[], DeploymentResponse], what: str) -> Any:
    """`send()`'s result; sent once more when the replica answering it died. Cancelling the
    caller, or any other failure, cancels the call down the graph."""
    for attempt in (1, 2):
        response = send()
        try:
            return await response
        except BaseException as exc:
            response.cancel()  # stops the work down the graph, not just our wait for it
            if attempt == 2 or not replica_died(exc):
                raise
            logger.warning("%s: its replica died before answering; sending it again: %r", what, exc)
    raise AssertionError("unreachable")


async def stream(
    open_stream: Callable[[], DeploymentResponseGenerator],
    what: str,
    on_item: Callable[[Any], None],
) -> Any:
    """A streaming call (`handle.options(stream=True)`): every item but the last goes to
    `on_item`, the last is returned. Sent once more only when its replica died before sending
    anything (a second stream after some items would repeat them)."""
    for attempt in (1, 2):
        items = open_stream()
        received = False
        last: Any = None
        try:
            async for item in items:
                if received:
                    on_item(last)
                last, received = item, True
            if not received:
                raise RuntimeError(f"{what}: the stream ended without an item")
            return last
        except BaseException as exc:
            items.cancel()
            if attempt == 2 or received or not replica_died(exc):
                raise
            logger.warning("%s: its replica died before streaming; opening it again: %r", what, exc)
    raise AssertionError("unreachable")
