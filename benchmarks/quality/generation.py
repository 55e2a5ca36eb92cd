"""Posts written in this process with the real default model, exactly as an idle service
writes them (the model deployments' decode loop and the Compiler, without Ray)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from deployments.schemas import PostRequest

CHUNK = 8  # jobs decoded together; a row's text does not depend on its batch


@dataclass
class Generated:
    requests: list[PostRequest]
    posts: list[Any]  # deployments.schemas.Post
    model_id: str
    seconds: dict[str, float] = field(default_factory=dict)
    new_tokens: dict[str, int] = field(default_factory=dict)
    # Each part's model text per request: its candidates, in order (none: the part was not asked).
    raw: dict[str, list[list[str]]] = field(default_factory=dict)


def generate_posts(
    requests: Sequence[PostRequest],
    *,
    chunk: int = CHUNK,
    on_step: Callable[[str], Any] = lambda description: None,
    on_done: Callable[[], None] = lambda: None,
) -> Generated:
    """Each post through `write_post` with every candidate (as an idle service asks them, the
    request's seed), its jobs on in-process engines that batch up to `chunk` rows continuously,
    then `PostCompiler.compile`, and one more body where the body came out short: the model
    deployments' engine and the service's writer, without Ray."""
    from transformers.utils import logging as transformers_logging

    from deployments.engine.model_loader import post_model_id
    from deployments.post.compiler import PostCompiler
    from deployments.post.local_writer import close_engines, part_engines, write_posts
    from deployments.settings import AppSettings

    transformers_logging.disable_progress_bar()
    on_step("quality: load model")
    settings = AppSettings.load({"batching": {"max_batch_size": chunk}})
    engines = part_engines(settings)
    model_id = post_model_id(settings)
    on_done()
    on_step(f"quality: write {len(requests)} posts, {chunk} rows at once")
    try:
        written = write_posts(
            engines,
            PostCompiler(model_id),
            requests,
            [request.seed or 0 for request in requests],
            settings.generation,
        )
    finally:
        close_engines(engines)
    on_done()
    return Generated(
        list(requests),
        written.posts,
        model_id,
        {"all parts": written.seconds},
        written.new_tokens,
        written.raw,
    )
