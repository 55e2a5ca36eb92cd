"""Posts written in this process, without Ray, the way an idle graph writes them.

The CLI (`linkedin-posts generate` without --url) and the quality harness both use it: each post
goes through `write_post` (every candidate, the Compiler, one more body where clean-up left the
body short or off the topic), its jobs on in-process engines built by `build_engine` (one per
distinct part model), all posts at once so the engines batch their rows as the model replicas do.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from deployments.engine import GenerationEngine, build_engine
from deployments.post.compiler import PostCompiler
from deployments.post.writer import OnPiece, first_of_each_part, write_post
from deployments.schemas import (
    PARTS,
    GenerationJob,
    GenerationResult,
    Post,
    PostPart,
    PostRequest,
)
from deployments.settings import AppSettings, GenerationSettings


@dataclass
class WrittenPosts:
    posts: list[Post]
    # Each part's model text per request: its candidates, in order (none: the part was not asked).
    raw: dict[str, list[list[str]]]
    seconds: float = 0.0  # writing every post, all parts together
    new_tokens: dict[str, int] = field(default_factory=dict)  # tokens written per part


def part_engines(settings: AppSettings) -> dict[PostPart, GenerationEngine]:
    """An engine per part, shared by the parts that run the same model."""
    engines: dict[PostPart, GenerationEngine] = {}
    for part in PARTS:
        model = settings.model_for(part)
        same = next((p for p in engines if settings.model_for(p) == model), None)
        engines[part] = (
            engines[same]
            if same is not None
            else build_engine(model, settings.generation, settings.batching)
        )
    return engines


def close_engines(engines: Mapping[PostPart, GenerationEngine]) -> None:
    for engine in {id(e): e for e in engines.values()}.values():
        engine.close()


def write_posts(
    engines: Mapping[PostPart, GenerationEngine],
    compiler: PostCompiler,
    requests: Sequence[PostRequest],
    seeds: Sequence[int],
    generation: GenerationSettings,
    *,
    on_written: Callable[[], None] = lambda: None,
    on_piece: OnPiece | None = None,
) -> WrittenPosts:
    """The posts of `requests` (request i drawn from seeds[i]), every candidate of every part;
    `on_written()` is called as each post is done; `on_piece`, as in `write_post`."""

    async def run_jobs(
        jobs: Sequence[tuple[PostPart, GenerationJob]], on_piece: OnPiece | None
    ) -> list[GenerationResult]:
        loop = asyncio.get_running_loop()
        streamed = first_of_each_part(jobs) if on_piece is not None else set()

        def sink(part: PostPart) -> Callable[[str], None]:
            assert on_piece is not None
            return lambda piece: loop.call_soon_threadsafe(on_piece, part, piece)

        futures = [
            engines[part].submit([job], on_text=[sink(part)] if i in streamed else None)[0]
            for i, (part, job) in enumerate(jobs)
        ]
        try:
            return list(await asyncio.gather(*(asyncio.wrap_future(f) for f in futures)))
        except Exception as exc:
            raise RuntimeError(f"a {jobs[0][0]} job of a post failed: {exc}") from exc

    async def compile_parts(
        request: PostRequest, by_part: dict[PostPart, list[GenerationResult]]
    ) -> Post:
        return compiler.compile_candidates(request, by_part)

    async def write(request: PostRequest, seed: int) -> tuple[Post, dict]:
        written = await write_post(
            request,
            seed,
            generation,
            all_candidates=True,
            run_jobs=run_jobs,
            compile_parts=compile_parts,
            on_piece=on_piece,
        )
        on_written()
        return written.post, written.candidates

    async def write_all() -> list[tuple[Post, dict]]:
        return await asyncio.gather(*(write(r, s) for r, s in zip(requests, seeds)))

    started = time.perf_counter()
    results = asyncio.run(write_all())
    raw: dict[str, list[list[str]]] = {part: [] for part in PARTS}
    tokens = dict.fromkeys(PARTS, 0)
    for _, candidates in results:
        for part in PARTS:
            raw[part].append([r.text for r in candidates.get(part, [])])
            tokens[part] += sum(r.new_tokens for r in candidates.get(part, []))
    return WrittenPosts([post for post, _ in results], raw, time.perf_counter() - started, tokens)
